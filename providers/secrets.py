"""Organization secrets as the rest of AICO uses them: store, load for a session, check.

    await check_required_secrets(conn, org_id=org, resolved=resolved)   # MissingSecrets → 412
    values = await load_secrets(conn, org_id=org, names=resolved.required_secrets())

The session service (`flows.sessions`) is their one caller for sessions: it resolves a session's
providers, checks them here before anything runs, and opens them with the loaded values.

Values are decrypted only here and handed straight to provider constructors; nothing in
this module logs or returns them anywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from aico.errors import MissingSecrets, PayloadTooLarge, ValidationFailed
from db import secrets as secrets_db
from providers.resolution import ResolvedProviders
from providers.secrets_crypto import SealedSecret, SecretBox

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
MAX_SECRET_BYTES = 16 * 1024

_boxes: dict[str, SecretBox] = {}


def secret_box(settings: Any = None) -> SecretBox:
    """The process's SecretBox for these settings (default: the AICO_* environment)."""
    if settings is None:
        from aico.settings import get_settings

        settings = get_settings()
    cache_key = f"{settings.home}|{settings.security.secret_key or ''}"
    box = _boxes.get(cache_key)
    if box is None:
        box = _boxes[cache_key] = SecretBox.from_settings(settings)
    return box


def validate_secret_name(name: str) -> str:
    if not SECRET_NAME.match(name):
        raise ValidationFailed(
            "secret names start with a letter or '_' and hold letters, digits, '_', '.', '-'"
            " (at most 128)", details=[{"field": "name", "message": "invalid secret name"}])
    return name


async def store_secret(conn: asyncpg.Connection | asyncpg.Pool, *, org_id: UUID, name: str,
                       value: str, settings: Any = None) -> asyncpg.Record:
    validate_secret_name(name)
    if not value:
        raise ValidationFailed("a secret value must not be empty",
                               details=[{"field": "value", "message": "empty"}])
    if len(value.encode()) > MAX_SECRET_BYTES:
        raise PayloadTooLarge(f"a secret value is at most {MAX_SECRET_BYTES} bytes")
    sealed = secret_box(settings).seal(value, org_id=org_id, name=name)
    return await secrets_db.upsert_secret(conn, org_id=org_id, name=name, key_id=sealed.key_id,
                                          nonce=sealed.nonce, ciphertext=sealed.ciphertext)


async def load_secrets(conn: asyncpg.Connection | asyncpg.Pool, *, org_id: UUID,
                       names: list[str], settings: Any = None) -> dict[str, str]:
    """Decrypted values of the named secrets that exist (missing names are simply absent).
    `settings` picks the key (default: the AICO_* environment of this process)."""
    if not names:
        return {}
    box = secret_box(settings)
    rows = await secrets_db.fetch_sealed_secrets(conn, org_id=org_id, names=sorted(set(names)))
    return {r["name"]: box.open(SealedSecret(r["key_id"], bytes(r["nonce"]),
                                             bytes(r["ciphertext"])),
                                org_id=org_id, name=r["name"])
            for r in rows}


async def check_required_secrets(conn: asyncpg.Connection | asyncpg.Pool, *, org_id: UUID,
                                 resolved: ResolvedProviders | Mapping[str, Any]) -> None:
    """Raise MissingSecrets (HTTP 412, `missing: [names]`) unless every secret the resolved
    providers name is stored for the organization. Call before starting any actor or task."""
    if not isinstance(resolved, ResolvedProviders):
        resolved = ResolvedProviders({k: dict(v) for k, v in resolved.items() if v})
    needed = resolved.required_secrets()
    if not needed:
        return
    present = await secrets_db.list_secret_names(conn, org_id=org_id, names=needed)
    missing = [n for n in needed if n not in present]
    if missing:
        raise MissingSecrets(missing)


@dataclass(frozen=True)
class SecretRotation:
    """What `rotate_secrets` did: rows re-sealed under `key_id`, and rows skipped because they
    changed while it ran (a new value is sealed under the current key anyway)."""

    key_id: str
    rotated: int
    skipped: int


async def rotate_secrets(pool: asyncpg.Pool, *, settings: Any) -> SecretRotation:
    """Re-encrypt every secret not sealed under the current (first) key of `AICO_SECRET_KEY`.

    Run with the new key first and the old ones after (`new:...,old:...`) on every process:
    reads keep working with both keys while this runs, one organization per short transaction;
    afterwards the old key can be dropped."""
    from db import secrets_rotation as rotation_db
    from db.pool import org_transaction

    box = secret_box(settings)
    current = box.current_key_id
    rotated = skipped = 0
    for org_id in await rotation_db.list_org_ids_with_secrets_not_under(pool, key_id=current):
        async with org_transaction(pool, org_id) as conn:
            rows = await rotation_db.fetch_sealed_secrets_not_under(conn, org_id=org_id,
                                                                    key_id=current)
            for row in rows:
                old = SealedSecret(row["key_id"], bytes(row["nonce"]), bytes(row["ciphertext"]))
                sealed = box.seal(box.open(old, org_id=org_id, name=row["name"]),
                                  org_id=org_id, name=row["name"])
                if await rotation_db.update_sealed_secret_if_unchanged(
                        conn, org_id=org_id, name=row["name"], old_key_id=old.key_id,
                        old_nonce=old.nonce, key_id=sealed.key_id, nonce=sealed.nonce,
                        ciphertext=sealed.ciphertext):
                    rotated += 1
                else:
                    skipped += 1
    return SecretRotation(key_id=current, rotated=rotated, skipped=skipped)
