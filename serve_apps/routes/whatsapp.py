"""The WhatsApp channel (Meta Cloud API): numbers (admin), the webhook's verification handshake
and its notifications.

A notification is authenticated over its raw bytes (`X-Hub-Signature-256`, constant time)
before it is parsed, stored in the durable inbox and acknowledged at once; this replica's
`WhatsAppWorker` (`flows.whatsapp_worker`) applies it off the request. A body over
`AICO_MAX_BODY_BYTES` is refused (413) by the app's body limit before this route reads it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from aico.errors import Conflict, Forbidden, NotFound, ValidationFailed
from db import flows as flows_db
from db import whatsapp_numbers as numbers_db
from db import whatsapp_outbox as outbox_db
from flows.whatsapp_text import MAX_TEXT_CHARS
from flows.whatsapp_webhook import receive_notification
from flows.whatsapp_worker import WhatsAppWorker
from providers.secrets import SECRET_NAME
from serve_apps.deps import AdminDep, EditorDep, PoolDep, StateDep, ViewerDep
from serve_apps.state import ApiState

router = APIRouter(prefix="/v1/channels/whatsapp", tags=["whatsapp"])

# Meta's customer-service window: free-form messages only this long after the user's last one.
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
SecretName = Annotated[str, Field(pattern=SECRET_NAME.pattern,
                                  description="the name of an organization secret")]


class NumberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone_number_id: str = Field(pattern=r"^[0-9A-Za-z_-]{1,64}$")
    display_number: str = Field(min_length=1, max_length=32)
    flow_id: UUID
    verify_token: str = Field(min_length=8, max_length=256, repr=False)
    app_secret_secret: SecretName
    access_token_secret: SecretName
    voice_replies: bool = Field(default=False,
                                description="answer a voice note with a voice note (the TTS)")


class NumberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_number: str | None = Field(default=None, min_length=1, max_length=32)
    flow_id: UUID | None = None
    verify_token: str | None = Field(default=None, min_length=8, max_length=256, repr=False)
    app_secret_secret: SecretName | None = None
    access_token_secret: SecretName | None = None
    voice_replies: bool | None = None


async def _check_flow(pool: Any, org_id: UUID, flow_id: UUID) -> None:
    if await flows_db.get_flow(pool, org_id=org_id, flow_id=flow_id) is None:
        raise NotFound(f"flow_id: flow {flow_id} not found")


@router.post("/numbers", status_code=201)
async def create_number(body: NumberCreate, principal: AdminDep, pool: PoolDep) -> dict[str, Any]:
    await _check_flow(pool, principal.org_id, body.flow_id)
    row = await numbers_db.insert_whatsapp_number(
        pool, org_id=principal.org_id, phone_number_id=body.phone_number_id,
        display_number=body.display_number, flow_id=body.flow_id,
        verify_token=body.verify_token, app_secret_secret=body.app_secret_secret,
        access_token_secret=body.access_token_secret, voice_replies=body.voice_replies)
    if row is None:
        raise Conflict(f"phone_number_id: {body.phone_number_id} is configured already")
    return numbers_db.number_view(row)


@router.get("/numbers")
async def list_numbers(principal: AdminDep, pool: PoolDep) -> dict[str, Any]:
    rows = await numbers_db.list_whatsapp_numbers(pool, org_id=principal.org_id)
    return {"items": [numbers_db.number_view(r) for r in rows]}


@router.get("/numbers/{number_id}")
async def get_number(number_id: UUID, principal: AdminDep, pool: PoolDep) -> dict[str, Any]:
    row = await numbers_db.get_whatsapp_number(pool, org_id=principal.org_id, number_id=number_id)
    if row is None:
        raise NotFound(f"whatsapp number {number_id} not found")
    return numbers_db.number_view(row)


@router.patch("/numbers/{number_id}")
async def update_number(number_id: UUID, body: NumberUpdate, principal: AdminDep,
                        pool: PoolDep) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "flow_id" in changes:
        await _check_flow(pool, principal.org_id, changes["flow_id"])
    if "verify_token" in changes:
        changes["verify_token_hash"] = numbers_db.hash_verify_token(changes.pop("verify_token"))
    if changes:
        row = await numbers_db.update_whatsapp_number(
            pool, org_id=principal.org_id, number_id=number_id, changes=changes)
    else:
        row = await numbers_db.get_whatsapp_number(pool, org_id=principal.org_id,
                                                   number_id=number_id)
    if row is None:
        raise NotFound(f"whatsapp number {number_id} not found")
    return numbers_db.number_view(row)


@router.delete("/numbers/{number_id}", status_code=204)
async def delete_number(number_id: UUID, principal: AdminDep, pool: PoolDep) -> Response:
    if not await numbers_db.delete_whatsapp_number(pool, org_id=principal.org_id,
                                                   number_id=number_id):
        raise NotFound(f"whatsapp number {number_id} not found")
    return Response(status_code=204)


class TemplateLanguage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")


class Template(BaseModel):
    """Meta's template object: an approved template's name, language and parameters."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: TemplateLanguage
    components: list[dict[str, Any]] = Field(default=[], max_length=10)


class OutboundMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number_id: UUID
    to: str = Field(pattern=r"^[0-9]{6,20}$", description="the WhatsApp id (phone number)")
    template: Template | None = None
    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_CHARS)


@router.post("/messages", status_code=202)
async def send_message(body: OutboundMessage, principal: EditorDep, pool: PoolDep,
                       state: StateDep) -> dict[str, Any]:
    """Start a conversation with a template, or send text inside the 24-hour window."""
    if (body.template is None) == (body.text is None):
        raise ValidationFailed("give exactly one of template or text",
                               details=[{"field": "template"}, {"field": "text"}])
    number = await numbers_db.get_whatsapp_number(pool, org_id=principal.org_id,
                                                  number_id=body.number_id)
    if number is None:
        raise NotFound(f"number_id: whatsapp number {body.number_id} not found")
    if body.template is not None:
        message: dict[str, Any] = {"type": "template",
                                   "template": body.template.model_dump(exclude_defaults=True)}
    else:
        last = await outbox_db.last_inbound_at(pool, org_id=principal.org_id,
                                               number_id=body.number_id, wa_user=body.to)
        if last is None or datetime.now(UTC) - last > CUSTOMER_SERVICE_WINDOW:
            since = "has never written" if last is None else f"last wrote at {last.isoformat()}"
            raise Conflict(f"text: {body.to} {since}; outside the 24-hour customer-service"
                           " window only a template may be sent")
        message = {"type": "text", "text": {"preview_url": False, "body": body.text}}
    outbox_id = await outbox_db.insert_outbound_message(
        pool, org_id=principal.org_id, number_id=body.number_id, wa_user=body.to, body=message)
    worker = whatsapp_worker(state, pool)
    if worker is not None:
        worker.kick()
    return {"id": outbox_id, "status": "pending"}


@router.get("/conversations")
async def list_conversations(principal: ViewerDep, pool: PoolDep) -> dict[str, Any]:
    from db.whatsapp_inbox import list_conversations as list_rows

    return {"items": [dict(r) for r in await list_rows(pool, org_id=principal.org_id)]}


@router.get("/webhook", response_class=PlainTextResponse)
async def verify_webhook(pool: PoolDep,
                         mode: Annotated[str | None, Query(alias="hub.mode")] = None,
                         token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
                         challenge: Annotated[str | None,
                                              Query(alias="hub.challenge", max_length=256)] = None,
                         ) -> PlainTextResponse:
    """Meta's subscription handshake: echo the challenge when the token is a number's."""
    if mode != "subscribe" or not token or challenge is None \
            or not await numbers_db.whatsapp_verify_token_known(pool, token):
        raise Forbidden("hub.verify_token does not match a configured number's verify_token")
    return PlainTextResponse(challenge)


@router.post("/webhook")
async def receive_webhook(request: Request, pool: PoolDep, state: StateDep,
                          signature: Annotated[str | None,
                                               Header(alias="X-Hub-Signature-256")] = None,
                          ) -> dict[str, Any]:
    raw = await request.body()
    stored = await receive_notification(pool, raw, signature, settings=state.settings)
    worker = whatsapp_worker(state, pool)
    if worker is not None:
        worker.kick()
    return {"received": stored.messages, "duplicates": stored.duplicates,
            "statuses": stored.statuses}


def whatsapp_worker(state: ApiState, pool: Any) -> WhatsAppWorker | None:
    """This replica's worker, started on first use (None when `AICO_WHATSAPP_WORKER` is off)."""
    if not state.settings.whatsapp.worker:
        return None
    if state.whatsapp_worker is None:
        state.whatsapp_worker = WhatsAppWorker(pool, state.settings, open_llm=state.llm_opener)
    state.whatsapp_worker.start()
    return state.whatsapp_worker


async def start_whatsapp_worker(state: ApiState) -> None:
    """At replica start: pick up what a stopped replica acknowledged but never applied."""
    if state.settings.whatsapp.worker and (state.settings.database_app_url
                                           or state.settings.database_url):
        whatsapp_worker(state, await state.pool())
