"""The widget's errors reach the page: a visitor on an allowed site whose request is refused (an
unknown session, a body that does not validate, a visitor token that does not verify, a rate
limit) gets the error with the same CORS headers as a success, so the widget can say why; a
page on another origin gets no CORS on any answer, and nothing is stored for it."""

from __future__ import annotations

import httpx
from integration_flows import publish_echo

from aico.settings import LimitSettings

SITE = "http://shop.example:8080"
ELSEWHERE = "http://evil.example"


def _visitor(app, origin: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40000)),
                             base_url="http://aico.test", headers={"Origin": origin})


def _cors_for(response: httpx.Response) -> str | None:
    if response.headers.get("access-control-allow-origin") is None:
        return None
    assert "origin" in response.headers.get("vary", "").lower()
    return response.headers["access-control-allow-origin"]


async def test_a_visitor_on_an_allowed_site_reads_the_error_and_another_site_does_not(
        make_org, app, pool, settings, app_pool):
    from serve_apps.api import create_app

    org = await make_org()
    flow_id = await publish_echo(org.client)
    made = await org.client.post("/v1/widgets", json={"flow_id": flow_id,
                                                      "allowed_origins": [SITE]})
    assert made.status_code == 201, made.text
    key = made.json()["public_key"]

    async with _visitor(app, SITE) as visitor:
        started = await visitor.post(f"/v1/widget/{key}/sessions", json={})
        assert started.status_code == 201 and _cors_for(started) == SITE
        session_id = started.json()["session_id"]
        messages = f"/v1/widget/{key}/sessions/{session_id}/messages"

        # A session that is not this visitor's: the error, readable by the page.
        wrong = await visitor.post(messages, json={"visitor_token": "not-it", "text": "hi"})
        assert wrong.status_code == 404 and wrong.json()["error"] == "not_found"
        assert _cors_for(wrong) == SITE
        # A body that does not validate (refused before the route runs): named, readable.
        invalid = await visitor.post(messages, json={"visitor_token": "not-it"})
        assert invalid.status_code == 422 and invalid.json()["details"][0]["field"] == "text"
        assert _cors_for(invalid) == SITE
        # A visitor token the host site did not sign.
        unsigned = await visitor.post(f"/v1/widget/{key}/sessions",
                                      json={"visitor_token": "garbage"})
        assert unsigned.status_code == 401 and _cors_for(unsigned) == SITE

    # The widget key's rate limit (its one session this minute is the one above): the page
    # reads the 429 and when to retry.
    limited = create_app(settings.model_copy(update={"limits": LimitSettings(
        widget_sessions_per_minute_per_key=1)}), pool=app_pool)
    async with _visitor(limited, SITE) as visitor:
        over = await visitor.post(f"/v1/widget/{key}/sessions", json={})
        assert over.status_code == 429 and "widget_sessions_per_minute_per_key" in over.text
        assert _cors_for(over) == SITE and "retry-after" in over.headers

    # The refused requests stored nothing: one session, nothing the visitor said.
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 1
    assert await pool.fetchval(
        "SELECT count(*) FROM transcript_turns WHERE session_id = $1 AND role = 'user'",
        session_id) == 0

    # Another site: the same refusals carry no CORS, and store nothing.
    async with _visitor(app, ELSEWHERE) as stranger:
        for response in (
                await stranger.post(f"/v1/widget/{key}/sessions", json={}),
                await stranger.post(messages, json={"visitor_token": "not-it", "text": "hi"}),
                await stranger.post(messages, json={"visitor_token": "not-it"}),
                await stranger.post("/v1/widget/wk_unknown/sessions/x/messages", json={})):
            assert 400 <= response.status_code < 500, response.text
            assert _cors_for(response) is None, response.headers
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE org_id = $1", org.id) == 1
