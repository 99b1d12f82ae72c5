"""Per-turn voice metrics kept in `sessions.metrics`:
`{"turns": [{"end_of_turn_ms", "stt_final_ms", "llm_ttft_ms", "tts_ttfb_ms",
"voice_to_voice_ms", ...}], "usage": {...}}`. Written by the voice session as turns finish."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def append_sessions_metrics_turn(conn: Conn, *, session_id: UUID,
                                       turn: dict[str, Any] | None,
                                       usage: dict[str, Any] | None = None) -> None:
    """Append one turn's figures (and replace the usage totals) in one statement."""
    await conn.execute(
        "UPDATE sessions SET metrics = jsonb_set(jsonb_set(metrics, '{turns}',"
        " COALESCE(metrics->'turns', '[]'::jsonb) || $2::jsonb), '{usage}',"
        " COALESCE($3::jsonb, metrics->'usage', '{}'::jsonb)) WHERE id = $1",
        session_id, [turn] if turn else [], usage,
    )


async def get_sessions_metrics(conn: Conn, *, session_id: UUID) -> dict[str, Any]:
    return await conn.fetchval("SELECT metrics FROM sessions WHERE id = $1", session_id) or {}
