"""An organization's memory retention period: an admin sets it; the replicas' sweeper deletes
remembered turns and facts older than it, in that organization only."""

from __future__ import annotations

import asyncpg

from serve_apps.voice_sweeper import sweep_voice_sessions


async def _remember(pool: asyncpg.Pool, org_id, text: str, age_days: int) -> None:
    await pool.execute(
        "INSERT INTO memory_episodes (org_id, user_id, text, embedding, created_at)"
        " VALUES ($1, 'ada', $2, $3, now() - make_interval(days => $4))",
        org_id, text, [0.05] * 384, age_days)
    await pool.execute(
        "INSERT INTO memory_facts (org_id, user_id, type, value, created_at, superseded_at)"
        " VALUES ($1, 'ada', $2, $2, now() - make_interval(days => $3), now())",
        org_id, f"{text}_{age_days}", age_days)


async def test_the_sweeper_deletes_memory_past_the_organizations_retention(
        make_org, pool: asyncpg.Pool, app_pool: asyncpg.Pool):
    keeping, forgetting = await make_org(), await make_org()
    assert (await forgetting.client.get("/v1/org/memory-retention")).json() == {"days": None}
    r = await forgetting.client.put("/v1/org/memory-retention", json={"days": 30})
    assert r.status_code == 200 and r.json() == {"days": 30}
    assert (await forgetting.client.get("/v1/org/memory-retention")).json() == {"days": 30}
    viewer = await make_org(role="editor")
    assert (await viewer.client.put("/v1/org/memory-retention",
                                    json={"days": 1})).status_code == 403
    assert (await forgetting.client.put("/v1/org/memory-retention",
                                        json={"days": 0})).status_code == 422
    for org in (keeping, forgetting):
        await _remember(pool, org.id, "old", 40)
        await _remember(pool, org.id, "recent", 3)

    await sweep_voice_sessions(app_pool)  # what every replica runs periodically

    async def left(org_id) -> list[str]:
        rows = await pool.fetch("SELECT text FROM memory_episodes WHERE org_id = $1 UNION ALL"
                                " SELECT value FROM memory_facts WHERE org_id = $1", org_id)
        return sorted(r["text"] for r in rows)

    assert await left(forgetting.id) == ["recent", "recent_3"]
    assert await left(keeping.id) == ["old", "old_40", "recent", "recent_3"]
