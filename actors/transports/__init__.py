"""Transports carry a call's audio and events between the caller and its pipeline.

Every transport has the same small interface (`CallTransport`), and `run_call` bridges any of
them to a `Call` from `actors.host`: caller frames and control messages in, agent audio and
events out, hang-up by either side ending both. What crosses is typed by `aico.voice_messages`:
a transport hands over `ClientMessage`s and is handed `ServerMessage`s; the pipeline's events
(dicts, as they crossed the actor boundary) are typed here, in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol
from uuid import UUID

from pydantic import ValidationError

from actors.host import VoiceHost
from aico.voice_messages import (
    ENDS_CALL,
    CallEnded,
    CallError,
    Dtmf,
    Hangup,
    Ready,
    ServerModel,
    Start,
    Stop,
    server_message,
    to_wire,
)

log = logging.getLogger("aico.actors.transports")

# The prefix of `run_call`'s reason when the pipeline's host failed rather than the call ending.
HOST_FAILED = "host_failed"


class CallTransport(Protocol):
    sample_rate: int  # of the caller's audio

    async def receive(self) -> bytes | Dtmf | Hangup | Stop | Start | None:
        """Caller audio (PCM16 at `sample_rate`), a control message, or None: hung up."""

    async def send_audio(self, pcm16: bytes, sample_rate: int) -> None: ...
    async def send_event(self, message: ServerModel) -> None: ...
    async def close(self, reason: str, *, code: int = 1000) -> None: ...


async def run_call(transport: CallTransport, host: VoiceHost, session_id: UUID | str, *,
                   connected_at: float | None = None,
                   observe: Any = None) -> str:
    """Run one call to its end; returns why it ended. `observe(event)` sees every event sent,
    as its JSON object."""
    call = await host.open(session_id, sample_rate=transport.sample_rate,
                           connected_at=connected_at or time.monotonic())
    out_rate = 16000
    reason = "hangup"

    async def caller_to_agent() -> None:
        while True:
            item = await transport.receive()
            if item is None:
                return
            if isinstance(item, bytes):
                call.push_audio(item)
            elif not isinstance(item, Start):  # a second `start` changes nothing
                await call.control(to_wire(item))
                if item.type in ENDS_CALL:
                    return

    async def agent_to_caller() -> None:
        nonlocal out_rate, reason
        async for item in call.outbound():
            if isinstance(item, bytes):
                await transport.send_audio(item, out_rate)
                continue
            try:
                message = server_message(item)
            except ValidationError as err:
                # A pipeline event this vocabulary lacks: add it to aico/voice_messages.py.
                log.error("call %s: event not in the voice vocabulary, not sent: %s",
                          session_id, err)
                continue
            if isinstance(message, Ready):
                out_rate = message.sample_rate
                if message.resumed:
                    continue  # the caller already has a ready; a restart says `resumed`
            await transport.send_event(message)
            if observe is not None:
                with contextlib.suppress(Exception):
                    await observe(to_wire(message))
            if isinstance(message, CallEnded):
                reason = message.reason or "ended"
                return

    inbound = asyncio.create_task(caller_to_agent())
    outbound = asyncio.create_task(agent_to_caller())
    done, _ = await asyncio.wait({inbound, outbound}, return_when=asyncio.FIRST_COMPLETED)
    if inbound in done:
        # The caller hung up, or the transport closed a connection that broke a bound.
        reason = getattr(transport, "end_reason", None) or "hangup"
        await call.hang_up(reason)
    outbound.cancel()
    inbound.cancel()
    for task in (inbound, outbound):
        with contextlib.suppress(BaseException):
            await task
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.warning("call %s: %r", session_id, task.exception())
            if task is outbound:
                # The call's host (its actor) is gone for good: the session did not end by
                # itself, and the route records it as failed.
                reason = f"{HOST_FAILED}: {type(task.exception()).__name__}"
    await call.hang_up(reason)
    if reason.startswith(HOST_FAILED):
        await transport.send_event(CallError(code="call_failed",
                                             message="the call's voice host failed"))
        await transport.close(reason, code=1011)
    else:
        await transport.close(reason)
    return reason
