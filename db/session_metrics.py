"""The one store of a session's metrics, `sessions.metrics`:
`{"turns": [{"end_of_turn_ms", "stt_final_ms", "llm_ttft_ms", "tts_ttfb_ms",
"voice_to_voice_ms", ...}], "usage": {"llm": {"kind", "requests", "prompt_tokens",
"completion_tokens"}, "stt": {...}, "tts": {...}, ...}}`.

Per-turn figures are appended by the voice session as turns finish; provider usage is written
for every session whatever its channel (the LLM's by the session service after each call, the
speech providers' by the voice session)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db.pool import session_transaction

Conn = asyncpg.Connection | asyncpg.Pool


async def append_sessions_metrics_turn(conn: Conn, *, session_id: UUID,
                                       turn: dict[str, Any] | None,
                                       usage: dict[str, Any] | None = None) -> None:
    """Append one turn's figures and set the usage entries given (others are kept), in one
    statement."""
    async with session_transaction(conn, session_id) as c:
        await c.execute(
            "UPDATE sessions SET metrics = jsonb_set(jsonb_set(metrics, '{turns}',"
            " COALESCE(metrics->'turns', '[]'::jsonb) || $2::jsonb), '{usage}',"
            " COALESCE(metrics->'usage', '{}'::jsonb) || COALESCE($3::jsonb, '{}'::jsonb))"
            " WHERE id = $1",
            session_id, [turn] if turn else [], usage,
        )


async def add_sessions_usage(conn: Conn, *, session_id: UUID, capability: str, kind: str,
                             counts: dict[str, int | float]) -> None:
    """Add `counts` to the session's usage of `capability` (atomic: concurrent steps of one
    session may both add)."""
    async with session_transaction(conn, session_id) as c:
        await c.execute(
            """
            UPDATE sessions SET metrics = jsonb_set(
                jsonb_set(metrics, '{usage}', COALESCE(metrics->'usage', '{}'::jsonb)),
                ARRAY['usage', $2::text],
                COALESCE(metrics->'usage'->$2, '{}'::jsonb) || jsonb_build_object('kind', $3::text)
                || COALESCE((SELECT jsonb_object_agg(c.key, COALESCE(
                            (metrics->'usage'->$2->>c.key)::numeric, 0) + c.value::numeric)
                       FROM jsonb_each_text($4::jsonb) c), '{}'::jsonb))
            WHERE id = $1
            """,
            session_id, capability, kind, counts,
        )
