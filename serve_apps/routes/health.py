"""Liveness and readiness: the database and Ray, as the API process sees them."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serve_apps.deps import StateDep

router = APIRouter(tags=["health"])


def _ray_state() -> dict[str, object]:
    try:
        import ray

        if not ray.is_initialized():
            return {"ok": True, "mode": "not-attached"}
        return {"ok": True, "mode": "attached", "nodes": sum(1 for n in ray.nodes() if n["Alive"])}
    except Exception as exc:  # noqa: BLE001 - health reports, never raises
        return {"ok": False, "error": type(exc).__name__}


@router.get("/healthz")
async def healthz(state: StateDep) -> JSONResponse:
    started = time.perf_counter()
    try:
        pool = await state.pool()
        await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout=2.0)
        database: dict[str, object] = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except Exception as exc:  # noqa: BLE001
        database = {"ok": False, "error": type(exc).__name__}
    ray_state = await asyncio.to_thread(_ray_state)
    ok = bool(database["ok"]) and bool(ray_state["ok"])
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "database": database, "ray": ray_state,
         # The port this replica answers calls on besides the proxy (null: none).
         "media_port": state.media_port},
        status_code=200 if ok else 503,
    )
