"""A call's actor belongs to its node's supervisor, not to the API replica that took the call:
the replica goes away and the call's actor carries on; a caller who reconnects through another
replica gets that same actor back and the call carries on; a call whose transport went with the
replica and never came back is hung up by the supervisor once its caller has been silent for
`orphan_after_s`, and its session is closed with the reason `transport_lost`."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
import ray
from waiting import until

from actors.call_placement import CallPlacement
from actors.host import RayVoiceHost
from aico.settings import VoiceSettings

# The supervisor of this node is created once per Ray (named, detached) with these settings.
VOICE = VoiceSettings(pool_size=1, orphan_after_s=20)
MODELS = {"env_vars": {"AICO_MODELS": "inprocess"}}  # the actors load the packaged models


@ray.remote(num_cpus=0)
class ReplicaStandIn:
    """Where an API replica takes a call: a process of its own that the test can end."""

    async def take_call(self, session_id: str, attach: bool) -> tuple[list[Any], int]:
        self.placement = CallPlacement(VOICE)
        if not attach:
            actor = await self.placement.acquire(session_id)
        else:  # as the voice route does: the replica's host opens the call
            self.host = RayVoiceHost(self.placement)
            actor = (await self.host.open(session_id, sample_rate=16000)).actor
        return [actor], await actor.warm.remote()  # a handle in a list: a borrowed reference


@pytest.fixture(scope="module")
async def placement(ray_cluster: None) -> Any:
    placement = CallPlacement(VOICE)
    yield placement
    # The supervisors are detached: stop them and their warm actors for the rest of the run.
    for supervisor in placement.supervisors.values():
        assert await supervisor.retire.remote() == 0
        ray.kill(supervisor)


async def publish_voice_flow(api: Any) -> str:
    # No-input far off: only the caller (or the supervisor) ends these calls.
    document = {"name": "front desk", "variables": {
        "said": {"type": "string", "default": ""},
        "voice_no_input_s": {"type": "number", "default": 600}}, "nodes": [
        {"id": "start", "type": "start"},
        {"id": "greet", "type": "say", "text": "Hello."},
        {"id": "listen", "type": "listen", "into": "said"},
        {"id": "end", "type": "end", "reason": "caller_done"}],
        "edges": [{"from": "start", "to": "greet"}, {"from": "greet", "to": "listen"},
                  {"from": "listen", "to": "end"}]}
    r = await api.post("/v1/flows", json={"name": document["name"], "document": document})
    assert r.status_code == 201, r.text
    flow_id = r.json()["id"]
    assert (await api.post(f"/v1/flows/{flow_id}/publish")).status_code == 201
    return flow_id


async def test_the_call_actor_outlives_the_replica_that_took_the_call(placement):
    replica = ReplicaStandIn.options(runtime_env=MODELS).remote()
    session_id = str(uuid4())
    [actor], pid = await replica.take_call.remote(session_id, False)
    loads = await placement.loads()
    assert sum(load["live"] for load in loads) >= 1
    ray.kill(replica)  # the API replica (its process) is gone

    async def replica_gone() -> bool:
        try:
            await replica.take_call.remote(str(uuid4()), False)
        except ray.exceptions.RayActorError:
            return True
        return False

    await until(replica_gone, timeout=60)
    assert await actor.warm.remote() == pid  # the same actor, in the same process
    await placement.release(actor, session_id)  # any replica can hand it back to its node's pool
    assert sum(load["live"] for load in await placement.loads()) == \
        sum(load["live"] for load in loads) - 1


async def new_voice_session(api: Any) -> UUID:
    flow_id = await publish_voice_flow(api)
    r = await api.post(f"/v1/flows/{flow_id}/sessions", json={"channel": "voice"})
    assert r.status_code == 201, r.text
    return UUID(r.json()["id"])


async def session_end_reason(api: Any, session_id: UUID) -> str:
    async def closed() -> dict[str, Any] | None:
        record = (await api.get(f"/v1/sessions/{session_id}")).json()
        return record if record["status"] in ("ended", "failed") else None

    record = await until(closed, timeout=VOICE.orphan_after_s + 60)
    assert record["status"] == "ended"
    events = (await api.get(f"/v1/sessions/{session_id}/events")).json()["items"]
    ended = [e for e in events if e["type"] == "session.ended"]
    assert len(ended) == 1, [(e["type"], e.get("event_id")) for e in events]
    return str(ended[0]["payload"]["reason"])


async def test_a_caller_who_reconnects_through_another_replica_gets_the_same_actor(
        placement, api):
    session_id = await new_voice_session(api)
    replica = ReplicaStandIn.options(runtime_env=MODELS).remote()
    [actor], pid = await replica.take_call.remote(str(session_id), True)
    ray.kill(replica)  # the caller's socket went with it; they reconnect to this replica

    host = RayVoiceHost(placement)
    call = await host.open(session_id, sample_rate=16000)
    assert call.actor._actor_id == actor._actor_id and await call.actor.warm.remote() == pid
    # The new socket is sent what any connection starts with, the call's `ready` (the
    # transports pass on only a connection's first, non-resumed one), then `resumed`: the
    # caller knows the call carries on from where it was.
    outbound = call.outbound()
    ready, resumed = await anext(outbound), await anext(outbound)
    assert isinstance(ready, dict) and ready["type"] == "ready" and not ready["resumed"]
    assert ready["session_id"] == str(session_id) and ready["sample_rate"] > 0
    assert resumed == {"type": "resumed"}
    await outbound.aclose()
    await call.hang_up("hangup")  # the caller finishes the call normally
    assert await session_end_reason(api, session_id) == "hangup"
    assert sum(load["live"] for load in await placement.loads()) == 0


async def test_a_call_left_without_its_transport_is_hung_up_and_closed(placement, api):
    session_id = await new_voice_session(api)
    replica = ReplicaStandIn.options(runtime_env=MODELS).remote()
    [_actor], _ = await replica.take_call.remote(str(session_id), True)
    ray.kill(replica)  # its socket went with it: no caller audio reaches the actor again

    assert await session_end_reason(api, session_id) == "transport_lost"
    # The supervisor took the actor back: no call is left live on any node.
    assert sum(load["live"] for load in await placement.loads()) == 0
