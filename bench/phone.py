"""Phone benchmark: the Twilio Media Streams path (8 kHz μ-law) next to the 16 kHz voice
WebSocket, the same caller line, the same flow, the same models, on this machine.

    .venv/bin/python bench/phone.py                  # 12 turns per path (≈4 min on 2 cores)
    .venv/bin/python bench/phone.py --turns 24 --llm # the flow answers with the LLM

Prints, as JSON:
* per path: voice-to-voice p50/p95 on the caller's side (its last voiced frame sent → the
  first audible agent frame received) and the server's own `voice_to_voice_ms` per turn;
* Twilio: webhook → first greeting audio (the signed Voice webhook posted → the first audible
  μ-law frame on the media stream: session creation, TwiML, stream attach, greeting TTS);
  WebSocket: session creation → first greeting audio, for comparison.
The fake Twilio of tests/phone plays the phone network; the caller's line is Piper's, made
8 kHz μ-law for the phone path and 16 kHz PCM for the WebSocket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests" / "voice"),
                str(ROOT / "tests" / "phone")]

from bakery_caller import bakery_flow, caller_line, pct
from fake_twilio import PhoneLine, TwilioRest
from voice_call_client import CallClient

FRAME_S = 0.02


def trailing_silence_s(pcm16: bytes, rate: int) -> float:
    """How long the clip goes on after its last voiced 20 ms frame."""
    step = int(rate * FRAME_S)
    a = np.frombuffer(pcm16, dtype=np.int16).astype(np.float64)
    frames = [a[i:i + step] for i in range(0, len(a), step)]
    voiced = [i for i, f in enumerate(frames) if f.size and np.sqrt((f * f).mean()) > 300]
    return (len(frames) - 1 - voiced[-1]) * FRAME_S if voiced else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: dict[str, Any] = {"load_before": os.getloadavg()}

    async def setup(self) -> None:
        import uvicorn

        from actors.call_providers import warm_default_providers
        from actors.host import LocalVoiceHost
        from aico.settings import ModelSettings, Settings, TelephonySettings
        from db.api_clients import insert_api_client, new_token
        from db.embedded import start_embedded_postgres
        from db.migrate import prepare_database
        from db.organizations import insert_organization
        from db.pool import create_app_pool
        from serve_apps.api import create_app

        self.home = Path(tempfile.mkdtemp(prefix="aico-phone-bench-"))
        self.home.chmod(0o755)
        self.pg = start_embedded_postgres(self.home / "pg", delete_on_stop=True)
        await prepare_database(self.pg.dsn)
        os.environ.update(AICO_HOME=str(self.home), AICO_DATABASE_URL=self.pg.dsn,
                          AICO_MODELS="inprocess")
        self.rest = TwilioRest()
        await self.rest.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.settings = Settings(home=self.home, database_url=self.pg.dsn, public_url=self.url,
                                 serving=ModelSettings(mode="inprocess"),
                                 telephony=TelephonySettings(twilio_api_url=self.rest.url))
        self.pool = await create_app_pool(self.settings, min_size=2, max_size=20)
        from db.pool import create_pool

        owner = await create_pool(self.pg.dsn, min_size=1, max_size=4)
        org = await insert_organization(owner, slug="bench", name="bench")
        self.token = new_token()
        await insert_api_client(owner, org_id=org["id"], name="bench", token=self.token,
                                role="admin")
        await owner.close()
        self.stt, self.tts = await warm_default_providers(llm=self.args.llm)
        app = create_app(self.settings, pool=self.pool,
                         voice_host=LocalVoiceHost(self.pool, self.settings))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.server_task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            await asyncio.sleep(0.02)
        self.http = httpx.AsyncClient(base_url=self.url, timeout=60,
                                      headers={"Authorization": f"Bearer {self.token}"})
        doc = bakery_flow("Phone bench", llm=self.args.llm,
                          variables={"voice_no_input_s": {"type": "number", "default": 120}})
        made = await self.http.post("/v1/flows", json={"name": doc["name"], "document": doc})
        self.flow_id = made.json()["id"]
        await self.http.post(f"/v1/flows/{self.flow_id}/publish")
        self.account_sid, self.auth_token = self.rest.add_account()
        await self.http.put("/v1/secrets/TWILIO_AUTH_TOKEN", json={"value": self.auth_token})
        self.number = "+15550001234"
        await self.http.post("/v1/phone-numbers", json={
            "number": self.number, "flow_id": self.flow_id, "provider": "twilio",
            "settings": {"account_sid": self.account_sid,
                         "auth_token_secret": "TWILIO_AUTH_TOKEN"}})
        self.caller_8k = await caller_line(self.tts, 8000)
        self.caller_16k = await caller_line(self.tts, 16000)
        self.tail_8k = trailing_silence_s(self.caller_8k, 8000)

    async def server_turns(self, session_id: str) -> list[float]:
        record = (await self.http.get(f"/v1/sessions/{session_id}")).json()
        return [t["voice_to_voice_ms"] for t in (record.get("metrics") or {}).get("turns", [])
                if t.get("voice_to_voice_ms")]

    async def twilio_call(self, turns: int) -> dict[str, Any]:
        line = PhoneLine(app_url=self.url, account_sid=self.account_sid,
                         auth_token=self.auth_token, our_number=self.number,
                         remote="+12125550123", rest=self.rest)
        posted = time.monotonic()
        answer = await line.ring()
        await line.open_stream(answer.text)
        greeting_at = await line.wait_speaking(after=posted, timeout=120)
        await line.wait_audio(after=posted, timeout=120)
        v2v = []
        for _ in range(turns):
            sent = await line.say(self.caller_8k)
            last_voiced = sent - self.tail_8k
            first = await line.wait_speaking(after=sent, timeout=120)
            v2v.append((first - last_voiced) * 1000)
            await line.wait_audio(after=sent, timeout=120)
            await asyncio.sleep(0.3)
        await line.hang_up()
        _, params = _stream_params(answer.text)
        return {"greeting_ms": (greeting_at - posted) * 1000, "v2v": v2v,
                "server": await self._wait_turns(params["session"], turns)}

    async def ws_call(self, turns: int) -> dict[str, Any]:
        started = time.monotonic()
        made = (await self.http.post(f"/v1/flows/{self.flow_id}/sessions",
                                     json={"channel": "voice"})).json()
        path = made["voice"]["url"].split("/v1/", 1)[1]
        v2v = []
        async with CallClient(f"{self.url.replace('http', 'ws', 1)}/v1/{path}") as call:
            await call.wait_event("agent_speech_ended", timeout=120)
            first = call.first_audio_after(call.connected_at)
            greeting = (first - started) * 1000 if first else None
            for _ in range(turns):
                spoke = await call.say(self.caller_16k)
                await call.wait_event("agent_speech_ended", after=spoke, timeout=120)
                reply = call.first_audio_after(spoke)
                if reply is not None:
                    v2v.append((reply - spoke) * 1000)
                await asyncio.sleep(0.3)
        return {"greeting_ms": greeting, "v2v": v2v,
                "server": await self._wait_turns(made["id"], turns)}

    async def _wait_turns(self, session_id: str, turns: int) -> list[float]:
        deadline = time.monotonic() + 30
        while True:
            found = await self.server_turns(session_id)
            if len(found) >= turns or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)

    async def run(self) -> None:
        per_call = 4
        calls = max(1, -(-self.args.turns // per_call))
        paths = {"twilio_8k_mulaw": self.twilio_call, "websocket_16k": self.ws_call}
        got: dict[str, dict[str, list[float]]] = {
            name: {"v2v": [], "server": [], "greeting": []} for name in paths}
        # The paths take turns, call by call, so both see the same load on a shared machine.
        for _ in range(calls):
            for name, one_call in paths.items():
                r = await one_call(per_call)
                got[name]["v2v"] += r["v2v"]
                got[name]["server"] += r["server"]
                if r["greeting_ms"] is not None:
                    got[name]["greeting"].append(r["greeting_ms"])
        for name, g in got.items():
            self.results[name] = {
                "turns": len(g["v2v"]), "client_v2v_ms_p50": pct(g["v2v"], 50),
                "client_v2v_ms_p95": pct(g["v2v"], 95),
                "server_v2v_ms_p50": pct(g["server"], 50),
                "server_v2v_ms_p95": pct(g["server"], 95),
                ("webhook_to_greeting_ms" if name.startswith("twilio")
                 else "session_create_to_greeting_ms"): [round(x) for x in g["greeting"]],
            }
            print(name, json.dumps(self.results[name]), flush=True)
        self.results["load_after"] = os.getloadavg()

    async def close(self) -> None:
        await self.http.aclose()
        self.server.should_exit = True
        await self.server_task
        await self.rest.close()
        await self.pool.close()
        self.pg.stop()


def _stream_params(twiml: str) -> tuple[str, dict[str, str]]:
    from fake_twilio import stream_of

    return stream_of(twiml)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--llm", action="store_true", help="answer with the LLM (SmolLM2)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    bench = Bench(args)
    await bench.setup()
    try:
        await bench.run()
    finally:
        await bench.close()
    print(json.dumps(bench.results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(bench.results, indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
