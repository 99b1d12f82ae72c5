"""What `"memory": {"episodic": k}` adds to an llm node: `flows.memory.with_memory` (embed the
user's turn with MiniLM in this process, then the nearest-episodes query) timed on its own, with
`--episodes` stored turns of the user and 20 times as many of other users.

    .venv/bin/python bench/memory_latency.py [--episodes 200] [--calls 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aico.settings import Settings
from db import memory_episodes as episodes_db
from db.embedded import start_embedded_postgres
from db.migrate import prepare_database
from db.organizations import insert_organization
from db.pool import create_pool
from flows import knowledge, memory
from flows.document import LLMNode

TOPICS = ["my dog Biscuit", "the wifi password", "my flight to Lisbon", "my son's birthday",
          "the broken boiler", "my gym membership", "a table for four", "my parcel"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aico-bench-") as home:
        Path(home).chmod(0o755)
        pg = start_embedded_postgres(Path(home) / "pg", delete_on_stop=True)
        try:
            await prepare_database(pg.dsn)
            pool = await create_pool(pg.dsn, min_size=1, max_size=4)
            settings = Settings(home=Path(home), database_url=pg.dsn)
            org = await insert_organization(pool, slug="bench", name="bench")
            embeddings = await knowledge.open_embeddings(pool, org_id=org["id"],
                                                         settings=settings)
            texts = [f"Turn {i} about {TOPICS[i % len(TOPICS)]}." for i in range(args.episodes)]
            vectors = await embeddings.embed(texts)
            for n in range(21):
                user = "me" if n == 0 else f"other-{n}"
                for text, vector in zip(texts, vectors, strict=True):
                    await episodes_db.insert_episode(
                        pool, org_id=org["id"], user_id=user, user_cluster=None,
                        session_id=None, role="user", text=text, embedding=vector)
            node = LLMNode.model_validate({"id": "a", "type": "llm",
                                           "memory": {"episodic": 3}})
            prompt = [{"role": "system", "content": "Be brief."}]
            times = []
            for i in range(args.calls + 5):
                snap = {"id": uuid.uuid4(), "org_id": org["id"], "user_id": "me",
                        "user_cluster": None, "state": {},
                        "variables": {"user_text": f"What about {TOPICS[i % len(TOPICS)]} ({i})?"}}
                started = time.perf_counter()
                out = await memory.with_memory(pool, snap, node, prompt, settings=settings)
                if i >= 5:  # warm-up
                    times.append((time.perf_counter() - started) * 1000)
                assert "earlier conversations" in out[0]["content"]
            times.sort()
            print(f"memory on (episodic 3; {args.episodes} turns of the user,"
                  f" {args.episodes * 21} in all): added p50 {statistics.median(times):.1f} ms,"
                  f" p95 {times[int(len(times) * 0.95)]:.1f} ms over {args.calls} calls;"
                  f" load average {os.getloadavg()[0]:.1f}")
            await pool.close()
        finally:
            pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
