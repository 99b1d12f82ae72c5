"""The WhatsApp worker: applies stored inbound messages to their conversations' sessions and
sends the replies, off the webhook's request, in every API replica.

    worker = WhatsAppWorker(pool, settings, open_llm=None)
    worker.start()          # a task on the running loop; `worker.kick()` after a webhook
    await worker.drain()    # apply and send everything due now (tests, benchmarks)
    await worker.aclose()

Inbound: a replica claims the earliest pending message of a user (`FOR UPDATE SKIP LOCKED`,
nothing earlier of that user pending, so a user's turns run in Meta's timestamp order), finds
or starts the conversation's session (`flows.sessions.create_session`, channel `whatsapp`,
the WhatsApp id as the session's user), steps the flow with the wamid as the event id, and in
the SAME transaction writes the replies to the outbox and marks the message applied. A crash
before that commit leaves the message pending for any replica; the executor's event ids make
the second step yield what the first produced, so the user is answered once.

Outbound: a replica claims the next due outbox row (a user's messages in order) and sends it
through the Graph API. Rate limits (130429, 131056) and transient failures retry with
exponential backoff; 131047 (the 24-hour window closed) marks the conversation as needing
re-engagement; 190 (the token expired or is invalid) is recorded on the number for the
dashboard. A crash after Meta accepted a message but before the commit sends it again: the
outbox is at least once towards Meta.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from aico.errors import AicoError
from aico.settings import Settings
from db import sessions as sessions_db
from db import whatsapp_inbox as inbox_db
from db import whatsapp_outbox as outbox_db
from db.pool import Connection
from db.whatsapp_numbers import record_whatsapp_number_error
from flows.events import Action, InboundEvent, Say, SayChunk
from flows.executor import LLMOpener, StepContext, step
from flows.sessions import create_session
from flows.whatsapp_graph import (
    REENGAGEMENT_REQUIRED,
    TOKEN_INVALID,
    GraphError,
    graph_client,
    send_message,
)
from flows.whatsapp_media import (
    download_audio,
    synthesize_voice_note,
    transcribe,
    upload_media,
)
from flows.whatsapp_text import text_messages
from providers.secrets import load_secrets

log = logging.getLogger("aico.flows.whatsapp")

CANNOT_READ = "Sorry, I can only read text and voice messages here."
VOICE_REPLY = "aico_voice_reply"  # an outbox body spoken and uploaded when it is sent
CANNOT_HEAR = "Sorry, I could not make out that voice message."


def reply_texts(actions: list[Action]) -> list[str]:
    """The texts a step said, a streamed reply joined into one."""
    texts: list[str] = []
    streams: dict[str, int] = {}
    for action in actions:
        if isinstance(action, Say):
            texts.append(action.text)
        elif isinstance(action, SayChunk):
            if action.stream_id not in streams:
                streams[action.stream_id] = len(texts)
                texts.append("")
            texts[streams[action.stream_id]] += action.text
    return [t.strip() for t in texts if t.strip()]


def inbound_text(payload: dict[str, Any]) -> str | None:
    """What the user wrote or chose; None for what the flow cannot read."""
    kind = payload.get("type")
    if kind == "text":
        return str((payload.get("text") or {}).get("body") or "") or None
    if kind == "interactive":
        reply = payload.get("interactive") or {}
        chosen = reply.get("button_reply") or reply.get("list_reply") or {}
        return str(chosen.get("title") or chosen.get("id") or "") or None
    if kind == "button":
        return str((payload.get("button") or {}).get("text") or "") or None
    return None


class WhatsAppWorker:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, *,
                 open_llm: LLMOpener | None = None) -> None:
        self.pool = pool
        self.settings = settings
        self.open_llm = open_llm
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._graph: httpx.AsyncClient | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def kick(self) -> None:
        self._wake.set()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._graph is not None:
            await self._graph.aclose()
            self._graph = None

    async def drain(self) -> int:
        """Apply every pending inbound message and send every due reply; how many rows."""
        done = 0
        while await self.apply_next_inbound():
            done += 1
        while await self.send_next_outbound():
            done += 1
        return done

    async def _run(self) -> None:
        while True:
            # Cleared before the pass: a kick that arrives during it runs the next pass at once.
            self._wake.clear()
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database went away a moment: try again after a pause
                log.exception("whatsapp worker pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.whatsapp.poll_s)

    # --- inbound ------------------------------------------------------------------------

    async def apply_next_inbound(self) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await inbox_db.claim_inbox_message(conn)
            if row is None:
                return False
            try:
                async with conn.transaction():  # a savepoint: a fault undoes only this part
                    outcome, session_id, replies = await self._apply(conn, row)
            except AicoError as exc:  # the flow cannot start (unpublished, missing secrets)
                log.warning("whatsapp message %s not applied: %s", row["wamid"], exc)
                outcome, session_id, replies = f"failed: {exc.code}", None, []
            except Exception as exc:
                # A fault (a bug, a lost connection): retried with backoff, then given up, so
                # the user's later messages are not held up for ever.
                log.exception("whatsapp message %s: applying it failed", row["wamid"])
                attempts = row["attempts"] + 1
                if attempts < self.settings.whatsapp.send_attempts:
                    await inbox_db.mark_inbox_retry(
                        conn, inbox_id=row["id"], error=f"retrying: {type(exc).__name__}",
                        delay_s=self.settings.whatsapp.retry_base_s * 2 ** (attempts - 1))
                    return True
                outcome, session_id, replies = f"failed: {type(exc).__name__}", None, []
            if row["kind"] == "audio" and row["voice_replies"] and outcome == "applied":
                # Spoken at send time, by whichever replica sends it.
                bodies = [{"type": VOICE_REPLY, "text": text} for text in replies]
            else:
                bodies = text_messages(replies)
            if bodies:
                await outbox_db.insert_outbox_messages(
                    conn, org_id=row["org_id"], number_id=row["number_id"], session_id=session_id,
                    inbox_id=row["id"], wa_user=row["wa_user"], bodies=bodies)
            await inbox_db.mark_inbox_processed(conn, inbox_id=row["id"], outcome=outcome)
        return True

    async def _apply(self, conn: Connection,
                     row: asyncpg.Record) -> tuple[str, UUID | None, list[str]]:
        payload = dict(row["payload"])
        if row["kind"] == "reaction":
            return "ignored", None, []
        context = StepContext(pool=self.pool, settings=self.settings, open_llm=self.open_llm)
        replies: list[str] = []
        session_id = await self._conversation_session(conn, row)
        if session_id is None:
            new = await create_session(
                self.pool, settings=self.settings, org_id=row["org_id"], flow_id=row["flow_id"],
                channel="whatsapp", user_id=row["wa_user"])
            session_id = new.id
            await inbox_db.insert_conversation(
                conn, org_id=row["org_id"], number_id=row["number_id"], wa_user=row["wa_user"],
                flow_id=row["flow_id"], session_id=session_id, last_message_at=row["sent_at"])
            replies += reply_texts([a async for a in step(
                self.pool, session_id, InboundEvent.session_started(), context=context)])
        extra: dict[str, Any] = {}
        text: str | None
        if row["kind"] == "audio":
            text = await self._voice_note_text(row, session_id)
            if not text:
                return "unheard", session_id, [*replies, CANNOT_HEAR]
            extra["voice_note"] = True
        else:
            text = inbound_text(payload)
            if text is None:
                return "unsupported", session_id, [*replies, CANNOT_READ]
        event = InboundEvent.user_turn(text, event_id=f"wa:{row['wamid']}", **extra)
        actions = [a async for a in step(self.pool, session_id, event, context=context)]
        return "applied", session_id, [*replies, *reply_texts(actions)]

    async def _voice_note_text(self, row: asyncpg.Record, session_id: UUID) -> str:
        """The transcript of a voice note ('' when it cannot be fetched, decoded or heard)."""
        media_id = str((row["payload"].get("audio") or {}).get("id") or "")
        name = row["access_token_secret"]
        token = (await load_secrets(self.pool, org_id=row["org_id"], names=[name],
                                    settings=self.settings)).get(name)
        if not media_id or not token:
            return ""
        try:
            pcm16 = await download_audio(self.settings, self._graph_client(), media_id=media_id,
                                         access_token=token)
            return await transcribe(self.pool, session_id, pcm16, settings=self.settings)
        except Exception:  # media a user sent (undecodable, gone): answer, never loop on it
            log.exception("whatsapp voice note %s not transcribed", row["wamid"])
            return ""

    def _graph_client(self) -> httpx.AsyncClient:
        if self._graph is None:
            self._graph = graph_client(self.settings)
        return self._graph

    async def _conversation_session(self, conn: Connection, row: asyncpg.Record) -> UUID | None:
        """The open conversation's session, or None when a new one must start (none yet, its
        session ended, or it sat idle past `AICO_WHATSAPP_INACTIVITY_S`)."""
        conversation = await inbox_db.open_conversation(
            conn, org_id=row["org_id"], wa_user=row["wa_user"], flow_id=row["flow_id"])
        if conversation is None:
            return None
        idle = timedelta(seconds=self.settings.whatsapp.inactivity_s)
        brief = await sessions_db.get_session_brief(self.pool,
                                                    session_id=conversation["session_id"])
        if (row["sent_at"] - conversation["last_message_at"] > idle or brief is None
                or brief["status"] in ("ended", "failed")):
            await inbox_db.close_conversation(conn, conversation_id=conversation["id"])
            return None
        await inbox_db.touch_conversation(conn, conversation_id=conversation["id"],
                                          last_message_at=row["sent_at"])
        return UUID(str(conversation["session_id"]))

    # --- outbound -----------------------------------------------------------------------

    async def send_next_outbound(self) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await outbox_db.claim_outbox_message(conn)
            if row is None:
                return False
            await self._send(conn, row)
        return True

    async def _send(self, conn: Connection, row: asyncpg.Record) -> None:
        name = row["access_token_secret"]
        token = (await load_secrets(self.pool, org_id=row["org_id"], names=[name],
                                    settings=self.settings)).get(name)
        if not token:
            message = f"access_token_secret: the organization has no secret named {name!r}"
            await outbox_db.mark_outbox_failed(conn, outbox_id=row["id"], error_code=None,
                                               error_message=message)
            await record_whatsapp_number_error(conn, org_id=row["org_id"],
                                               number_id=row["number_id"],
                                               error={"code": None, "message": message})
            return
        body = dict(row["body"])
        try:
            if body.get("type") == VOICE_REPLY:
                note = await synthesize_voice_note(self.pool, row["session_id"], body["text"],
                                                   org_id=row["org_id"], settings=self.settings)
                media_id = await upload_media(
                    self.settings, self._graph_client(), phone_number_id=row["phone_number_id"],
                    access_token=token, data=note, mime_type="audio/ogg")
                body = {"type": "audio", "audio": {"id": media_id}}
            wamid = await send_message(self.settings, phone_number_id=row["phone_number_id"],
                                       access_token=token, to=row["wa_user"], body=body,
                                       client=self._graph_client())
        except GraphError as err:
            await self._graph_failed(conn, row, err)
            return
        except (httpx.HTTPError, OSError, ValueError, AicoError) as exc:  # unreachable, refused
            await self._graph_failed(conn, row, GraphError(None, str(exc)[:500], http_status=599))
            return
        await outbox_db.mark_outbox_sent(conn, outbox_id=row["id"], wamid=wamid)

    async def _graph_failed(self, conn: Connection, row: asyncpg.Record, err: GraphError) -> None:
        attempts = row["attempts"] + 1
        if err.retryable and attempts < self.settings.whatsapp.send_attempts:
            delay = self.settings.whatsapp.retry_base_s * 2 ** (attempts - 1)
            await outbox_db.mark_outbox_retry(conn, outbox_id=row["id"], delay_s=delay,
                                              error_code=err.code or 0, error_message=err.message)
            return
        await outbox_db.mark_outbox_failed(conn, outbox_id=row["id"], error_code=err.code,
                                           error_message=err.message)
        if err.code == REENGAGEMENT_REQUIRED and row["session_id"] is not None:
            await outbox_db.mark_reengagement_required(conn, session_id=row["session_id"])
        elif err.code == TOKEN_INVALID:
            await record_whatsapp_number_error(
                conn, org_id=row["org_id"], number_id=row["number_id"],
                error={"code": TOKEN_INVALID, "message": "the access token expired or is invalid:"
                       f" store a new one in {row['access_token_secret']!r} ({err.message})"})
