"""A second API replica in its own process, for tests that kill one for good: the API on
uvicorn (port 0, printed as `PORT <n>` once it listens) with voice calls in-process. Settings
come from the AICO_* environment like any replica's."""

from __future__ import annotations

import asyncio
import sys

import uvicorn

from actors.call_providers import warm_default_providers
from actors.host import LocalVoiceHost
from aico.settings import get_settings
from serve_apps.api import create_app


async def main() -> None:
    settings = get_settings()
    await warm_default_providers()
    app = create_app(settings)
    state = app.state.aico
    state.voice_host = LocalVoiceHost(await state.pool(), settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                          lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    print("PORT", server.servers[0].sockets[0].getsockname()[1], flush=True)
    await task


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
