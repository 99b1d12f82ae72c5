"""Meta's WhatsApp Cloud API webhook: authenticate a notification over its raw bytes, then
store it in the durable inbox.

    stored = await receive_notification(pool, raw_body, signature_header, settings=settings)
    # Unauthorized (401) and nothing stored: missing or wrong X-Hub-Signature-256.

The signature is HMAC-SHA256 of the raw body with the Meta app's secret, which is a secret of
the organization that configured the receiving number. A notification carries no organization,
so before anything is parsed the raw bytes are only *searched* for the `phone_number_id`s they
name, to know whose app secrets to try; the JSON is parsed only after one of them matched
(`hmac.compare_digest`), and then only the changes for numbers whose app secret signed it are
stored (one organization's app cannot speak for another's number).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from aico.errors import BadRequest, Unauthorized
from aico.settings import Settings
from db.whatsapp_inbox import InboundMessage, InboundStatus, store_inbound
from db.whatsapp_numbers import find_whatsapp_numbers
from providers.secrets import load_secrets

_PHONE_NUMBER_ID = re.compile(rb'"phone_number_id"\s*:\s*"([0-9A-Za-z_-]{1,64})"')
# At most this many numbers are tried for one notification (Meta batches per app).
MAX_CANDIDATES = 20


@dataclass(frozen=True)
class StoredNotification:
    messages: int  # new messages stored (a redelivered wamid counts 0)
    duplicates: int
    statuses: int
    orgs: tuple[UUID, ...]


def expected_signature(app_secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


async def receive_notification(pool: asyncpg.Pool, raw: bytes, signature: str | None, *,
                               settings: Settings) -> StoredNotification:
    if not signature or not signature.startswith("sha256="):
        raise Unauthorized("missing X-Hub-Signature-256 header (sha256=<hex>)")
    candidates = [m.decode() for m in _PHONE_NUMBER_ID.findall(raw)][:MAX_CANDIDATES]
    numbers = await find_whatsapp_numbers(pool, candidates)
    signed_by: list[Any] = []
    secrets_cache: dict[tuple[UUID, str], str | None] = {}
    for number in numbers:
        key = (number["org_id"], number["app_secret_secret"])
        if key not in secrets_cache:
            found = await load_secrets(pool, org_id=number["org_id"],
                                       names=[number["app_secret_secret"]], settings=settings)
            secrets_cache[key] = found.get(number["app_secret_secret"])
        secret = secrets_cache[key]
        if secret and hmac.compare_digest(expected_signature(secret, raw).encode(),
                                          signature.encode()):
            signed_by.append(number)
    if not signed_by:
        raise Unauthorized("X-Hub-Signature-256 does not match the app secret of any"
                           " configured number this notification names")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the notification body is not JSON") from None
    by_phone = {n["phone_number_id"]: n for n in signed_by}
    per_org: dict[UUID, tuple[list[InboundMessage], list[InboundStatus]]] = {}
    for value in _change_values(document):
        phone = str((value.get("metadata") or {}).get("phone_number_id") or "")
        signer = by_phone.get(phone)
        if signer is None:
            continue  # a number this signature does not speak for
        messages, statuses = per_org.setdefault(signer["org_id"], ([], []))
        messages.extend(_messages(signer["id"], value))
        statuses.extend(_statuses(signer["id"], value))
    new = total = nstatuses = 0
    for org_id, (messages, statuses) in per_org.items():
        new += await store_inbound(pool, org_id=org_id, messages=messages, statuses=statuses)
        total += len(messages)
        nstatuses += len(statuses)
    return StoredNotification(messages=new, duplicates=total - new, statuses=nstatuses,
                              orgs=tuple(per_org))


def _change_values(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or document.get("object") != "whatsapp_business_account":
        raise BadRequest("object: expected 'whatsapp_business_account'")
    values = []
    for entry in document.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            if (change or {}).get("field") == "messages" and isinstance(change.get("value"), dict):
                values.append(change["value"])
    return values


def _when(timestamp: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(timestamp), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(f"timestamp: not a Unix time ({timestamp!r})") from None


def _messages(number_id: UUID, value: dict[str, Any]) -> list[InboundMessage]:
    out = []
    for m in value.get("messages") or []:
        if not isinstance(m, dict) or not m.get("id") or not m.get("from"):
            raise BadRequest("messages[]: each needs an id and a from")
        out.append(InboundMessage(number_id=number_id, wamid=str(m["id"])[:256],
                                  wa_user=str(m["from"])[:64], kind=str(m.get("type") or ""),
                                  sent_at=_when(m.get("timestamp")), payload=m))
    return out


def _statuses(number_id: UUID, value: dict[str, Any]) -> list[InboundStatus]:
    out = []
    for s in value.get("statuses") or []:
        if not isinstance(s, dict) or not s.get("id") or not s.get("status"):
            raise BadRequest("statuses[]: each needs an id and a status")
        errors = s.get("errors") or []
        code = errors[0].get("code") if errors and isinstance(errors[0], dict) else None
        out.append(InboundStatus(number_id=number_id, wamid=str(s["id"])[:256],
                                 status=str(s["status"])[:32],
                                 error_code=int(code) if isinstance(code, int) else None,
                                 reported_at=_when(s.get("timestamp"))))
    return out
