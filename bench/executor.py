"""Executor benchmark: steps/s and p50/p95 step latency, excluding model time, for 1 and 20
concurrent sessions, against the embedded PostgreSQL, connected as the serving processes are:
the application role `aico_app`, under row-level security (each db/ call scopes its own
transaction to the organization).

    .venv/bin/python bench/executor.py [--steps 200] [--sessions 1,20]

Two flows are measured:
- `deterministic`: listen -> set (counter) -> say -> listen, one user.turn per step;
- `llm`: listen -> llm -> listen with an instant in-process model; one user turn is two
  committed steps (user.turn, then llm.completed) and the model's time is subtracted.
Where a step runs (in-process, a Ray task, a warm actor) is compared by
`bench/executor_placement.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aico.settings import Settings
from db.api_clients import new_token  # noqa: F401 - keeps import order honest
from db.embedded import start_embedded_postgres
from db.flows import insert_flow, insert_flow_version
from db.migrate import prepare_database
from db.organizations import insert_organization
from db.pool import create_pool
from db.sessions import insert_session
from flows.document import validate_for_publish
from flows.events import InboundEvent
from flows.executor import StepContext, step
from providers.llm import ChatLLM, ChatMessage, LLMChunk


class InstantLLM(ChatLLM):
    """A model that answers at once: what is left of a step is AICO's own time."""

    kind = "instant"

    async def _chat_impl(self, messages: list[ChatMessage], **_: Any) -> AsyncIterator[LLMChunk]:
        for word in ("Sure,", " here", " you", " go."):
            yield LLMChunk(text=word)


async def open_instant(config: dict) -> ChatLLM:
    return InstantLLM()


COUNTER = {
    "name": "bench-counter",
    "variables": {"n": {"type": "integer", "default": 0}},
    "nodes": [{"id": "start", "type": "start"}, {"id": "hear", "type": "listen", "into": "said"},
              {"id": "inc", "type": "set", "assign": {"n": "n + 1"}},
              {"id": "ack", "type": "say", "text": "#{{ n }}: {{ said }}"}],
    "edges": [{"from": "start", "to": "hear"}, {"from": "hear", "to": "inc"},
              {"from": "inc", "to": "ack"}, {"from": "ack", "to": "hear"}],
}
LLM_LOOP = {
    "name": "bench-llm",
    "nodes": [{"id": "start", "type": "start"}, {"id": "hear", "type": "listen"},
              {"id": "think", "type": "llm", "instructions": "Be brief."}],
    "edges": [{"from": "start", "to": "hear"}, {"from": "hear", "to": "think"},
              {"from": "think", "to": "hear"}],
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def publish(pool: Any, org_id: Any, document: dict) -> tuple[Any, Any, dict]:
    doc = validate_for_publish(document).model_dump(by_alias=True, exclude_none=True)
    flow = await insert_flow(pool, org_id=org_id, name=doc["name"], description="", document=doc)
    async with pool.acquire() as conn:
        version = await insert_flow_version(conn, org_id=org_id, flow_id=flow["id"],
                                            document=doc)
    return flow["id"], version["id"], doc


async def new_sessions(pool: Any, ctx: StepContext, org_id: Any, flow: tuple, count: int,
                       **insert: Any) -> list[Any]:
    flow_id, version_id, _doc = flow
    ids = []
    for _ in range(count):
        row = await insert_session(pool, org_id=org_id, flow_id=flow_id,
                                   flow_version_id=version_id, channel="chat",
                                   variables={"n": 0}, **insert)
        async for _action in step(pool, row["id"], InboundEvent.session_started(), context=ctx):
            pass
        ids.append(row["id"])
    return ids


async def run(pool: Any, settings: Settings, org_id: Any, flow: tuple, *, sessions: int,
              steps: int, label: str, committed_per_turn: int) -> None:
    ctx0 = StepContext(pool=pool, settings=settings, open_llm=open_instant)
    ids = await new_sessions(pool, ctx0, org_id, flow, sessions)
    latencies: list[float] = []

    async def converse(session_id: Any) -> None:
        for i in range(steps):
            ctx = StepContext(pool=pool, settings=settings, open_llm=open_instant)
            started = time.perf_counter()
            async for _action in step(pool, session_id, InboundEvent.user_turn(f"hello {i}"),
                                      context=ctx):
                pass
            latencies.append((time.perf_counter() - started - ctx.model_seconds)
                             / committed_per_turn)

    wall = time.perf_counter()
    await asyncio.gather(*(converse(s) for s in ids))
    wall = time.perf_counter() - wall
    total = sessions * steps * committed_per_turn
    print(f"{label:<14} sessions={sessions:<3} steps={total:<6} "
          f"throughput={total / wall:8.1f} steps/s   "
          f"p50={statistics.median(latencies) * 1000:6.2f} ms  "
          f"p95={pct(latencies, 0.95) * 1000:6.2f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="turns per session")
    parser.add_argument("--sessions", default="1,20",
                        help="comma-separated concurrent session counts to measure")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="aico-bench-") as home:
        Path(home).chmod(0o755)
        pg = start_embedded_postgres(Path(home) / "pg", delete_on_stop=True)
        try:
            await prepare_database(pg.dsn)
            # As the serving processes connect: the application role, under row-level security.
            pool = await create_pool(pg.app_dsn, min_size=4, max_size=24)
            settings = Settings(home=Path(home), database_url=pg.dsn)
            org = await insert_organization(pool, slug="bench", name="bench")
            counter = await publish(pool, org["id"], COUNTER)
            llm_loop = await publish(pool, org["id"], LLM_LOOP)
            await run(pool, settings, org["id"], counter, sessions=1, steps=30, label="warm-up",
                      committed_per_turn=1)
            role = await pool.fetchval("SELECT current_user")
            print(f"executor step, in-process, embedded PostgreSQL as {role} "
                  f"({args.steps} turns/session)")
            for sessions in (int(n) for n in args.sessions.split(",")):
                await run(pool, settings, org["id"], counter, sessions=sessions,
                          steps=args.steps, label="deterministic", committed_per_turn=1)
                await run(pool, settings, org["id"], llm_loop, sessions=sessions,
                          steps=args.steps, label="llm (instant)", committed_per_turn=2)
            await pool.close()
        finally:
            pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
