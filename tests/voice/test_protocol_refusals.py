"""The refusals docs/voice-protocol.md promises, through the real WebSockets: a bad or expired
voice token closes with 4401, a session that does not exist (or is not a voice session) with
4404, a session that has ended refuses a new call with 4409; an observer with another
organization's token or a forged one is refused and receives nothing of the call."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from urllib.parse import quote

from voice_api import (
    publish_flow,
    refused,
    session_record,
    start_voice_session,
    stored_events,
    wait_status,
)
from voice_call_client import CallClient
from voice_flows import GREETING, bakery_flow
from websockets.asyncio.client import connect

from serve_apps.routes.voice import mint_voice_token


def _with_token(url: str, token: str) -> str:
    return url.rsplit("token=", 1)[0] + "token=" + quote(token)


async def test_a_bad_or_expired_voice_token_is_refused_with_4401_and_nothing_starts(
        api, voice_server, voice_settings):
    flow_id = await publish_flow(api, bakery_flow())
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    expired, _ = mint_voice_token(voice_settings, session_id, ttl_s=60,
                                  now=time.time() - 3600)
    other_session = mint_voice_token(voice_settings, uuid.uuid4(), ttl_s=60)[0]
    for token in ("", "garbage", "9999999999." + "0" * 64, expired, other_session):
        messages, code = await refused(_with_token(url, token))
        assert code == 4401, (token, code, messages)
        assert [m["type"] for m in messages] == ["error"], messages
        assert messages[0]["code"] == "unauthorized"
    # Nothing ran: no greeting, no event, the session waits for its caller.
    record = await session_record(api, session_id)
    assert record["status"] == "active" and record["transcript"] == []
    assert await stored_events(api, session_id) == []


async def test_no_such_voice_session_is_refused_with_4404(api, voice_server, voice_settings):
    flow_id = await publish_flow(api, bakery_flow())
    _, url = await start_voice_session(api, voice_server, flow_id)
    missing = uuid.uuid4()
    token, _ = mint_voice_token(voice_settings, missing, ttl_s=60)
    messages, code = await refused(_with_token(url.replace(url.split("/")[-2], str(missing)),
                                               token))
    assert code == 4404, messages
    assert [(m["type"], m["code"]) for m in messages] == [("error", "not_found")]

    # A chat session is not a voice session, even with a token signed for it.
    r = await api.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "chat"})
    assert r.status_code == 201, r.text
    chat_id = r.json()["id"]
    events_before = await stored_events(api, chat_id)
    token, _ = mint_voice_token(voice_settings, chat_id, ttl_s=60)
    messages, code = await refused(_with_token(url.replace(url.split("/")[-2], chat_id), token))
    assert code == 4404, messages
    assert [(m["type"], m["code"]) for m in messages] == [("error", "not_found")]
    assert await stored_events(api, chat_id) == events_before


async def test_a_session_that_has_ended_refuses_a_new_call_with_4409(
        api, voice_server, voice_settings):
    flow_id = await publish_flow(api, bakery_flow())
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
    ended = await wait_status(api, session_id, "ended")
    events = await stored_events(api, session_id)

    # A fresh, valid token: the session, not the token, refuses the call.
    token, _ = mint_voice_token(voice_settings, session_id, ttl_s=60)
    messages, code = await refused(_with_token(url, token))
    assert code == 4409, messages
    assert [(m["type"], m["code"]) for m in messages] == [("error", "conflict")]
    assert "ended" in messages[0]["message"]
    # Nothing happened to the session: same transcript, same event log.
    assert await session_record(api, session_id) == ended
    assert await stored_events(api, session_id) == events
    assert ended["transcript"] == [{**ended["transcript"][0], "role": "assistant",
                                    "text": GREETING}]


async def test_live_refuses_another_organizations_token_and_a_forged_one(
        api, make_org, voice_server):
    flow_id = await publish_flow(api, bakery_flow())
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    own = api.headers["Authorization"].split()[1]
    other = (await make_org()).token
    live = f"{voice_server.base_ws}/v1/sessions/{session_id}/live?token="
    forged_jwt = "eyJhbGciOiJub25lIn0.eyJvcmdhbml6YXRpb25faWQiOiJ4In0."
    async with connect(live + own) as observer, CallClient(url) as call:
        hello = json.loads(await observer.recv())
        assert hello == {"type": "hello", "session_id": str(session_id), "status": "active"}
        # The call is live and talking while the intruders knock.
        await call.wait_event("agent_speech_started", timeout=60)
        outsider, code = await refused(live + other)
        assert code == 4404 and [(m["type"], m["code"]) for m in outsider] == [
            ("error", "not_found")], outsider
        # A made-up API token, an unsigned JWT, none, and the call's own voice token (it opens
        # the call, not the organization's view of it).
        voice_token = url.rsplit("token=", 1)[1]
        for token in ("aico_" + "x" * 43, forged_jwt, "", voice_token):
            messages, code = await refused(live + quote(token))
            assert code == 4401, (token, messages)
            assert [(m["type"], m["code"]) for m in messages] == [("error", "unauthorized")]
        # The organization's own observer gets the call's events (so the refusals above are
        # refusals, not a quiet call).
        while True:
            event = json.loads(await asyncio.wait_for(observer.recv(), 30))
            if event["type"] == "transcript":
                break
        assert event == {"type": "transcript", "session_id": str(session_id),
                         "role": "agent", "text": GREETING, "final": True}
        await call.wait_event("agent_speech_ended", timeout=60)
