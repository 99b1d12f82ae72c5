"""Event webhooks: signing secrets, and the outbox worker that delivers what sessions commit.

    secret = new_signing_secret()                     # "whsec_…", shown to the caller once
    sealed = seal_signing_secret(settings, secret, org_id=org, webhook_id=wid)
    outbox = WebhookOutbox(pool, settings); outbox.start() … await outbox.stop()

Events (`session.started`, `turn.completed`, `transfer.requested`, `session.ended`) are queued
by triggers in the transaction that commits them (migration 0082), so a committed event is
never lost and an event rolled back is never sent. The worker wakes on `NOTIFY aico_webhooks`
(sent at that commit) and also polls every `settings.limits.webhook_poll_s` for due retries;
every API replica may run one (claims are leased, `FOR UPDATE SKIP LOCKED`). Every ten
minutes it also prunes expired idempotency keys and deliveries finished 30 days ago.

Each delivery is one POST of `{"type", "timestamp", "data"}` signed per the Standard Webhooks
specification (`webhook-id` = `msg_<delivery id>`, the same on every retry so receivers can
deduplicate; `webhook-timestamp`; `webhook-signature` = `v1,<base64 HMAC-SHA256>`), sent
through the egress guard with the organization's allow-list. A 2xx answer delivers it; anything
else is retried after `webhook_retry_base_s`, doubling up to `webhook_retry_max_s`, until
`webhook_give_up_after_s` has passed since the event (or its redelivery): then it is failed.
Every attempt is logged with its status code, error and latency.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from standardwebhooks import Webhook

from aico.egress import EgressGuard
from aico.errors import AicoError
from aico.settings import Settings
from db import webhooks as webhooks_db
from providers.secrets import secret_box
from providers.secrets_crypto import SealedSecret

log = logging.getLogger("aico.webhooks")

EVENT_TYPES = ("session.started", "turn.completed", "transfer.requested", "session.ended")
NOTIFY_CHANNEL = "aico_webhooks"
CLAIM_BATCH = 20
MAX_RESPONSE_BYTES = 64 * 1024
# Finished deliveries stay listed this long; expired idempotency keys go with them.
KEEP_DELIVERIES_S = 30 * 86400
PRUNE_EVERY_S = 600.0


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _secret_name(webhook_id: UUID) -> str:
    return f"webhook:{webhook_id}"


def seal_signing_secret(settings: Settings, secret: str, *, org_id: UUID,
                        webhook_id: UUID) -> SealedSecret:
    return secret_box(settings).seal(secret, org_id=org_id, name=_secret_name(webhook_id))


def open_signing_secret(settings: Settings, row: Any, *, org_id: UUID) -> str:
    sealed = SealedSecret(row["secret_key_id"], row["secret_nonce"], row["secret_ciphertext"])
    return secret_box(settings).open(sealed, org_id=org_id, name=_secret_name(row["webhook_id"]))


def signed_headers(secret: str, *, msg_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for one send of `body`."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body),
    }


def retry_delay_s(settings: Settings, attempts: int) -> float:
    """The wait after the `attempts`-th failed attempt: base, 2×base, 4×base … up to the max."""
    limits = settings.limits
    return min(limits.webhook_retry_base_s * 2 ** max(attempts - 1, 0), limits.webhook_retry_max_s)


async def deliver(pool: asyncpg.Pool, settings: Settings, *, org_id: UUID,
                  delivery_id: UUID) -> str | None:
    """One attempt at one claimed delivery; its new status (None when it is gone)."""
    row = await webhooks_db.get_delivery_for_sending(pool, org_id=org_id, delivery_id=delivery_id)
    if row is None or row["status"] != "pending":
        return None
    body = json.dumps(row["payload"], separators=(",", ":"))
    started = datetime.now(UTC)
    clock = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        secret = open_signing_secret(settings, row, org_id=org_id)
        guard = EgressGuard(allowlist=list(row["egress_allowlist"]))
        response = await guard.request(
            "POST", row["url"], content=body,
            headers=signed_headers(secret, msg_id=f"msg_{delivery_id}", body=body, at=started),
            timeout_s=settings.limits.webhook_timeout_s, max_response_bytes=MAX_RESPONSE_BYTES)
        status_code = response.status
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except AicoError as exc:  # refused by the guard, timed out, answer too large
        error = exc.message
    except (httpx.HTTPError, OSError) as exc:  # refused, reset, TLS: the receiver is not there
        error = f"{type(exc).__name__}: {exc}"[:500]
    latency_ms = (time.perf_counter() - clock) * 1000
    delivered = error is None
    retry_in: float | None = None
    if not delivered:
        retry_in = retry_delay_s(settings, row["attempts"] + 1)
        waited = (datetime.now(UTC) - row["retry_from"]).total_seconds()
        if waited + retry_in > settings.limits.webhook_give_up_after_s:
            retry_in = None
    return await webhooks_db.record_attempt(
        pool, org_id=org_id, delivery_id=delivery_id, started_at=started,
        status_code=status_code, latency_ms=latency_ms, error=error, delivered=delivered,
        retry_in_s=retry_in)


class WebhookOutbox:
    """The delivery worker of one process: `start()`, then `await stop()`."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_prune = 0.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="aico-webhook-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    async def _run(self) -> None:
        async with self.pool.acquire() as listener:
            await listener.add_listener(NOTIFY_CHANNEL, self._notified)
            try:
                while True:
                    self._wake.clear()
                    try:
                        await self.deliver_due()
                        if time.monotonic() >= self._next_prune:
                            self._next_prune = time.monotonic() + PRUNE_EVERY_S
                            await webhooks_db.prune_integrations(
                                self.pool, keep_deliveries_s=KEEP_DELIVERIES_S,
                                idempotency_ttl_s=self.settings.limits.idempotency_ttl_s)
                    except Exception:  # the database restarts, a bug: log, keep going
                        log.exception("webhook outbox pass failed")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.limits.webhook_poll_s)
            finally:
                with contextlib.suppress(Exception):
                    await listener.remove_listener(NOTIFY_CHANNEL, self._notified)

    async def deliver_due(self) -> int:
        """Claim and attempt every due delivery, batch by batch; how many were attempted."""
        # A claim outlives one attempt by a margin, so a slow receiver is not sent it twice.
        lease_s = self.settings.limits.webhook_timeout_s + 30
        done = 0
        while True:
            claimed = await webhooks_db.claim_due_deliveries(self.pool, limit=CLAIM_BATCH,
                                                             lease_s=lease_s)
            if not claimed:
                return done
            await asyncio.gather(*(deliver(self.pool, self.settings, org_id=r["org_id"],
                                           delivery_id=r["id"]) for r in claimed))
            done += len(claimed)


async def rotate_webhook_secrets(pool: asyncpg.Pool, *, settings: Settings) -> int:
    """Re-seal every webhook signing secret not sealed under the current key of
    `AICO_SECRET_KEY` (the companion of `providers.secrets.rotate_secrets`, run by
    `aico secrets rotate`); how many were re-sealed. The secrets themselves do not change."""
    from db.pool import org_transaction

    box = secret_box(settings)
    current = box.current_key_id
    rotated = 0
    for org_id in await webhooks_db.list_org_ids_with_webhook_secrets_not_under(
            pool, key_id=current):
        async with org_transaction(pool, org_id) as conn:
            for row in await webhooks_db.fetch_webhook_secrets_not_under(
                    conn, org_id=org_id, key_id=current):
                sealed = seal_signing_secret(
                    settings, open_signing_secret(settings, row, org_id=org_id),
                    org_id=org_id, webhook_id=row["webhook_id"])
                rotated += await webhooks_db.update_webhook_secret(
                    conn, org_id=org_id, webhook_id=row["webhook_id"],
                    old_nonce=bytes(row["secret_nonce"]), key_id=sealed.key_id,
                    nonce=sealed.nonce, ciphertext=sealed.ciphertext)
    return rotated


async def rotate_widget_secrets(pool: asyncpg.Pool, *, settings: Settings) -> int:
    """Re-seal every web widget's identity secret not under the current key (as
    `rotate_webhook_secrets`; run by `aico secrets rotate`)."""
    from db import widgets as widgets_db
    from db.pool import org_transaction

    box = secret_box(settings)
    current = box.current_key_id
    rotated = 0
    for org_id in await widgets_db.list_org_ids_with_widget_secrets_not_under(
            pool, key_id=current):
        async with org_transaction(pool, org_id) as conn:
            for row in await widgets_db.fetch_widget_secrets_not_under(
                    conn, org_id=org_id, key_id=current):
                name = f"widget:{row['id']}"
                old = SealedSecret(row["identity_key_id"], bytes(row["identity_nonce"]),
                                   bytes(row["identity_ciphertext"]))
                sealed = box.seal(box.open(old, org_id=org_id, name=name), org_id=org_id,
                                  name=name)
                rotated += await widgets_db.update_widget_secret(
                    conn, org_id=org_id, widget_id=row["id"], old_nonce=old.nonce,
                    key_id=sealed.key_id, nonce=sealed.nonce, ciphertext=sealed.ciphertext)
    return rotated
