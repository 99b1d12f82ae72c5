"""The integrator's command line against a running API: `aico flows export` writes a flow as a
file, `aico flows import` brings it back (new flow, or a draft replaced with --into, published
with --publish), `aico keys create` mints a scoped key that works as its scopes say; errors are
one line naming the problem, exit status 1."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from integration_flows import ECHO, publish_echo

AICO = str(Path(sys.executable).parent / "aico")


@pytest.fixture
async def api_url(app) -> AsyncIterator[str]:
    """The test app served over real HTTP on a port the OS picked."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await serving


async def aico(*args: str, url: str, token: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AICO_", "RAY_"))}
    process = await asyncio.create_subprocess_exec(
        AICO, *args, "--url", url, "--token", token, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_flows_round_trip_through_files(make_org, pool, api_url, tmp_path):
    org = await make_org()
    flow_id = await publish_echo(org.client)
    path = tmp_path / "echo.json"
    rc, _, err = await aico("flows", "export", flow_id, "-o", str(path), url=api_url,
                            token=org.token)
    assert rc == 0, err
    exported = json.loads(path.read_text())
    assert exported["name"] == "Echo" and exported["document"]["nodes"][0]["id"] == "start"

    # Edited in version control, imported as a new flow and published.
    exported["document"]["nodes"][2]["text"] = "Echo: {{ said }}"
    path.write_text(json.dumps(exported))
    rc, out, err = await aico("flows", "import", str(path), "--publish", url=api_url,
                              token=org.token)
    assert rc == 0, err
    new_id = out.strip()
    assert new_id != flow_id and "published version 1" in err
    session = (await org.client.post(f"/v1/flows/{new_id}/sessions", json={})).json()
    reply = await org.client.post(f"/v1/sessions/{session['id']}/messages", json={"text": "hi"})
    assert reply.json()["messages"][0]["text"] == "Echo: hi"

    # --into replaces the first flow's draft (its revision moves on).
    rc, out, err = await aico("flows", "import", str(path), "--into", flow_id, url=api_url,
                              token=org.token)
    assert rc == 0 and out.strip() == flow_id, err
    stored = await pool.fetchrow("SELECT draft_revision, draft FROM flows WHERE id = $1",
                                 flow_id)
    assert stored["draft_revision"] == 2
    assert stored["draft"]["nodes"][2]["text"] == "Echo: {{ said }}"

    # A file that is not a flow, and a broken document: one line each, exit 1, nothing stored.
    before = await pool.fetchval("SELECT count(*) FROM flows WHERE org_id = $1", org.id)
    (tmp_path / "junk.json").write_text("[1, 2]")
    rc, _, err = await aico("flows", "import", str(tmp_path / "junk.json"), url=api_url,
                            token=org.token)
    assert rc == 1 and "not an exported flow" in err
    broken = dict(ECHO, nodes=[{"id": "start", "type": "nope"}])
    (tmp_path / "broken.json").write_text(json.dumps({"name": "b", "document": broken}))
    rc, _, err = await aico("flows", "import", str(tmp_path / "broken.json"), url=api_url,
                            token=org.token)
    assert rc == 1 and "422" in err and len(err.strip().splitlines()) == 1
    assert await pool.fetchval("SELECT count(*) FROM flows WHERE org_id = $1",
                               org.id) == before


async def test_keys_create_mints_a_scoped_key(make_org, pool, api_url):
    org = await make_org()
    flow_id = await publish_echo(org.client)
    rc, out, err = await aico("keys", "create", "cli trigger", "--role", "editor",
                              "--scope", "sessions:write", url=api_url, token=org.token)
    assert rc == 0, err
    key = out.strip()
    assert key.startswith("aico_") and "sessions:write" in err
    rc, out, _ = await aico("keys", "list", url=api_url, token=org.token)
    assert rc == 0 and "cli trigger" in out and key not in out
    rc, _, err = await aico("keys", "list", url=api_url, token=key)
    assert rc == 1 and "403" in err and "api_keys:read" in err
    async with httpx.AsyncClient(base_url=api_url, headers={
            "Authorization": f"Bearer {key}"}) as machine:
        assert (await machine.post(f"/v1/flows/{flow_id}/sessions", json={})).status_code == 201
    key_id = await pool.fetchval("SELECT id FROM api_clients WHERE org_id = $1"
                                 " AND name = 'cli trigger'", org.id)
    rc, _, _ = await aico("keys", "revoke", str(key_id), url=api_url, token=org.token)
    assert rc == 0
    rc, _, err = await aico("keys", "create", "x", "--scope", "everything", url=api_url,
                            token=org.token)
    assert rc == 1 and "everything" in err


async def test_chat_in_the_terminal(make_org, pool, api_url):
    org = await make_org()
    flow_id = await publish_echo(org.client)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AICO_", "RAY_"))}
    process = await asyncio.create_subprocess_exec(
        AICO, "chat", flow_id, "--url", api_url, "--token", org.token, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(b"hello\n\nhow are you\n"), timeout=120)
    assert process.returncode == 0, err
    assert out.decode().splitlines() == ["agent: You said hello", "agent: You said how are you"]
    session_id = err.decode().split()[1]
    turns = await pool.fetch("SELECT payload->>'text' AS text FROM session_events"
                             " WHERE session_id = $1 AND type = 'user.turn' ORDER BY seq",
                             session_id)
    assert [t["text"] for t in turns] == ["hello", "how are you"]
