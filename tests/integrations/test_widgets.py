"""The web widget's public endpoints: a visitor on an allowed site chats with the flow; another
origin is refused with nothing stored; a visitor reaches only its own session; the widget key
is rate-limited; admins manage widgets, nobody else. Voice: a widget with voice on hands an
allowed page a single-use voice URL, whose WebSocket checks the page's Origin again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from integration_flows import publish_echo
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from aico.settings import LimitSettings

SITE = "http://shop.example:8080"


def _visitor(app, origin: str | None, address: str = "127.0.0.1") -> httpx.AsyncClient:
    headers = {"Origin": origin} if origin else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                             base_url="http://aico.test", headers=headers)


async def _widget(org, **extra) -> dict:
    flow_id = await publish_echo(org.client)
    made = await org.client.post("/v1/widgets", json={
        "flow_id": flow_id, "allowed_origins": [SITE + "/"], **extra})
    assert made.status_code == 201, made.text
    return made.json()


async def test_a_visitor_on_an_allowed_site_chats_and_others_are_refused(make_org, app, pool):
    org = await make_org()
    widget = await _widget(org)
    assert widget["public_key"].startswith("wk_") and widget["allowed_origins"] == [SITE]
    key = widget["public_key"]
    script = await _visitor(app, None).get("/widget.js")
    assert script.status_code == 200 and "attachShadow" in script.text

    async with _visitor(app, SITE) as visitor:
        pre = await visitor.options(f"/v1/widget/{key}/sessions",
                                    headers={"Access-Control-Request-Method": "POST"})
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == SITE
        started = await visitor.post(f"/v1/widget/{key}/sessions", json={})
        assert started.status_code == 201, started.text
        assert started.headers["access-control-allow-origin"] == SITE
        body = started.json()
        assert set(body) == {"session_id", "visitor_token", "messages"}  # no organization token
        reply = await visitor.post(
            f"/v1/widget/{key}/sessions/{body['session_id']}/messages",
            json={"visitor_token": body["visitor_token"], "text": "hello"})
        assert reply.status_code == 200 and reply.json()["messages"][0]["text"] == "You said hello"
        stored = await pool.fetchrow("SELECT org_id, channel FROM sessions WHERE id = $1",
                                     body["session_id"])
        assert (stored["org_id"], stored["channel"]) == (org.id, "chat")
        # Another visitor's token (or none that matches) does not reach this session.
        wrong = await visitor.post(
            f"/v1/widget/{key}/sessions/{body['session_id']}/messages",
            json={"visitor_token": "not-it", "text": "hi"})
        assert wrong.status_code == 404

    before = await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id)
    for origin in ("http://evil.example", "http://shop.example:9090", None):
        async with _visitor(app, origin) as stranger:
            refused = await stranger.post(f"/v1/widget/{key}/sessions", json={})
            assert refused.status_code == 403, origin
            assert "access-control-allow-origin" not in refused.headers
            pre = await stranger.options(f"/v1/widget/{key}/sessions")
            assert pre.status_code == 403
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1",
                               org.id) == before
    async with _visitor(app, SITE) as visitor:
        assert (await visitor.post("/v1/widget/wk_unknown/sessions", json={})).status_code == 404


async def test_a_widget_key_is_rate_limited(make_org, settings, app_pool, pool):
    from serve_apps.api import create_app

    org = await make_org()
    key = (await _widget(org))["public_key"]
    limited = create_app(settings.model_copy(update={"limits": LimitSettings(
        widget_sessions_per_minute_per_key=2)}), pool=app_pool)
    async with _visitor(limited, SITE) as visitor:
        codes = [(await visitor.post(f"/v1/widget/{key}/sessions", json={})).status_code
                 for _ in range(3)]
        assert codes[:2] == [201, 201] and codes[2] == 429
    assert await pool.fetchval("SELECT count(*) FROM widget_sessions ws JOIN widgets w"
                               " ON w.id = ws.widget_id WHERE w.public_key = $1", key) == 2


async def test_only_admins_manage_widgets_and_origins_are_checked(make_org, pool):
    org = await make_org()
    flow_id = await publish_echo(org.client)
    bad = await org.client.post("/v1/widgets", json={
        "flow_id": flow_id, "allowed_origins": ["http://shop.example/path"]})
    assert bad.status_code == 422 and "allowed_origins" in bad.json()["message"]
    editor = await make_org(role="editor")
    assert (await editor.client.get("/v1/widgets")).status_code == 403
    widget = await _widget(org)
    other = await make_org()
    assert (await other.client.delete(f"/v1/widgets/{widget['id']}")).status_code == 404
    assert (await org.client.delete(f"/v1/widgets/{widget['id']}")).status_code == 204
    assert await pool.fetchval("SELECT count(*) FROM widgets WHERE id = $1", widget["id"]) == 0


async def test_the_host_sites_backend_names_its_visitor(make_org, app, pool):
    import time

    from serve_apps.routes.widgets import sign_visitor

    org = await make_org()
    widget = await _widget(org)
    secret, key = widget["identity_secret"], widget["public_key"]
    assert secret.startswith("wis_")
    stored = await pool.fetchval("SELECT identity_ciphertext FROM widgets WHERE id = $1",
                                 widget["id"])
    assert secret.encode() not in bytes(stored)
    assert secret not in (await org.client.get("/v1/widgets")).text
    soon = int(time.time()) + 600
    async with _visitor(app, SITE) as visitor:
        named = await visitor.post(f"/v1/widget/{key}/sessions", json={
            "visitor_token": sign_visitor(secret, "customer.42", soon)})
        assert named.status_code == 201, named.text
        assert await pool.fetchval("SELECT user_id FROM sessions WHERE id = $1",
                                   named.json()["session_id"]) == "customer.42"
        before = await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id)
        for token in (sign_visitor("wis_other", "customer.42", soon),
                      sign_visitor(secret, "customer.42", soon).replace("42.", "43."),
                      sign_visitor(secret, "customer.42", int(time.time()) - 1), "garbage"):
            refused = await visitor.post(f"/v1/widget/{key}/sessions",
                                         json={"visitor_token": token})
            assert refused.status_code == 401, token
        assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1",
                                   org.id) == before


async def test_a_visitor_reply_streams_as_server_sent_events(make_org, app):
    org = await make_org()
    key = (await _widget(org))["public_key"]
    async with _visitor(app, SITE) as visitor:
        body = (await visitor.post(f"/v1/widget/{key}/sessions", json={})).json()
        async with visitor.stream(
                "POST", f"/v1/widget/{key}/sessions/{body['session_id']}/messages?stream=true",
                json={"visitor_token": body["visitor_token"], "text": "hi"}) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers["content-type"].startswith("text/event-stream")
            assert streamed.headers["access-control-allow-origin"] == SITE
            text = "".join([chunk async for chunk in streamed.aiter_text()])
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names == ["chunk", "final"]
    assert '"text": "You said hi"' in events[0][1]
    assert '"messages": [{"role": "assistant", "text": "You said hi"}]' in events[1][1]


# --- voice ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
async def served(settings, app_pool) -> AsyncIterator[str]:
    """The API on a loopback port (a WebSocket needs a real server); its base URL."""
    import uvicorn

    from serve_apps.api import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings, pool=app_pool), host="127.0.0.1",
                                           port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 60
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "the test server did not start"
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    await task


async def _socket(url: str, origin: str | None, first: dict[str, Any] | None = None
                  ) -> tuple[list[dict[str, Any]], int | None]:
    """What a page on `origin` gets from the voice socket before it closes, and the close code."""
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(30), connect(url, origin=origin) as ws:  # type: ignore[arg-type]
        if first is not None:
            with contextlib.suppress(ConnectionClosed):  # a refused socket may be closed already
                await ws.send(json.dumps(first))
        try:
            async for message in ws:
                messages.append(json.loads(message) if isinstance(message, str) else {})
        except ConnectionClosed:
            pass
        return messages, ws.close_code


async def test_a_visitor_starts_a_voice_call_only_where_the_widget_allows_it(
        make_org, served, pool):
    org = await make_org()
    chat_only = (await _widget(org))["public_key"]
    key = (await _widget(org, voice=True))["public_key"]
    async with httpx.AsyncClient(base_url=served, headers={"Origin": SITE}) as visitor:
        offered = await visitor.get(f"/v1/widget/{chat_only}")
        assert offered.status_code == 200 and offered.json() == {"voice": False}
        assert offered.headers["access-control-allow-origin"] == SITE
        assert offered.headers["vary"] == "Origin"  # a cached answer is for this page's origin
        assert (await visitor.get(f"/v1/widget/{key}")).json() == {"voice": True}
        off = await visitor.post(f"/v1/widget/{chat_only}/voice", json={})
        assert off.status_code == 403 and "voice" in off.json()["message"]
        assert off.headers["access-control-allow-origin"] == SITE  # the page may read why
        for origin in ("http://evil.example", None):
            headers = {"Origin": origin} if origin else {}
            async with httpx.AsyncClient(base_url=served, headers=headers) as stranger:
                assert (await stranger.get(f"/v1/widget/{key}")).status_code == 403
                refused = await stranger.post(f"/v1/widget/{key}/voice", json={})
                assert refused.status_code == 403, origin
                assert "access-control-allow-origin" not in refused.headers
        assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1",
                                   org.id) == 0

        started = await visitor.post(f"/v1/widget/{key}/voice", json={})
        assert started.status_code == 201, started.text
        assert started.headers["access-control-allow-origin"] == SITE
        body = started.json()
        assert set(body) == {"session_id", "voice"} and set(body["voice"]) == {"url",
                                                                               "expires_at"}
        url = body["voice"]["url"]
        assert url.startswith(f"ws://{served.removeprefix('http://')}/v1/sessions/"
                              f"{body['session_id']}/voice?token=")
    stored = await pool.fetchrow(
        "SELECT s.channel, s.status, w.public_key FROM sessions s JOIN widget_sessions ws"
        " ON ws.session_id = s.id JOIN widgets w ON w.id = ws.widget_id WHERE s.id = $1",
        body["session_id"])
    assert tuple(stored) == ("voice", "active", key)

    # The voice socket checks the page's Origin too: another page (or none) is closed with the
    # policy code before anything starts, and the token is not spent.
    for origin in ("http://evil.example", "http://shop.example:9090", None):
        messages, code = await _socket(url, origin, {"type": "start", "sample_rate": 16000})
        assert code == 1008, (origin, code, messages)
        assert [(m["type"], m["code"]) for m in messages] == [("error", "origin_refused")]
    assert await pool.fetchval("SELECT count(*) FROM voice_token_uses WHERE session_id = $1",
                               body["session_id"]) == 0
    assert await pool.fetchval("SELECT count(*) FROM voice_leases WHERE session_id = $1",
                               body["session_id"]) == 0
    assert await pool.fetchval("SELECT count(*) FROM session_events WHERE session_id = $1",
                               body["session_id"]) == 0
    # The allowed page's socket passes the check and reaches the call's protocol (here a bad
    # `start`, answered by the protocol, so that no voice models are needed).
    messages, code = await _socket(url, SITE, {"type": "start", "sample_rate": 12345})
    assert [(m["type"], m["code"]) for m in messages] == [("error", "bad_start")], messages
    assert await pool.fetchval("SELECT count(*) FROM voice_token_uses WHERE session_id = $1",
                               body["session_id"]) == 1


async def test_widget_voice_calls_are_rate_limited_per_visitor_and_name_the_user(
        make_org, settings, app_pool, pool):
    from serve_apps.api import create_app
    from serve_apps.routes.widgets import sign_visitor

    org = await make_org()
    widget = await _widget(org, voice=True)
    key = widget["public_key"]
    limited = create_app(settings.model_copy(update={"limits": LimitSettings(
        widget_voice_calls_per_minute_per_visitor=2, widget_sessions_per_minute_per_key=3)}),
        pool=app_pool)
    soon = int(time.time()) + 600
    async with _visitor(limited, SITE) as visitor:
        bad = await visitor.post(f"/v1/widget/{key}/voice", json={"visitor_token": "garbage"})
        assert bad.status_code == 401
        named = await visitor.post(f"/v1/widget/{key}/voice", json={
            "visitor_token": sign_visitor(widget["identity_secret"], "customer.7", soon)})
        assert named.status_code == 201, named.text
        assert await pool.fetchval("SELECT user_id FROM sessions WHERE id = $1",
                                   named.json()["session_id"]) == "customer.7"
        codes = [(await visitor.post(f"/v1/widget/{key}/voice", json={})).status_code
                 for _ in range(2)]
        assert codes == [201, 429]
    # Another visitor has calls left, until the widget key's own limit (shared with chat).
    async with _visitor(limited, SITE, address="10.1.2.3") as neighbour:
        assert (await neighbour.post(f"/v1/widget/{key}/voice", json={})).status_code == 201
        over = await neighbour.post(f"/v1/widget/{key}/voice", json={})
        assert over.status_code == 429 and "widget_sessions_per_minute_per_key" in over.text
        assert over.headers["access-control-allow-origin"] == SITE and "retry-after" in over.headers
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1"
                               " AND channel = 'voice'", org.id) == 3
