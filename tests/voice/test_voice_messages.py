"""One typed vocabulary for the voice call (`aico/voice_messages.py`): a client message outside
it is refused by name and the call goes on; every event the pipeline builds is in it; and the
dashboard's TypeScript types are the ones generated from it."""

from __future__ import annotations

import ast
import importlib.util
import time
import typing
from pathlib import Path

from voice_api import publish_flow, start_voice_session, stored_events, wait_status
from voice_call_client import CallClient
from voice_flows import keypad_flow

from aico.voice_messages import SERVER_MODELS, UserSpeechIgnored

ROOT = Path(__file__).resolve().parents[2]


async def test_a_control_message_outside_the_vocabulary_is_refused_by_name_and_the_call_goes_on(
        api, voice_server):
    flow_id = await publish_flow(api, keypad_flow())
    session_id, url = await start_voice_session(api, voice_server, flow_id)
    async with CallClient(url, allowed_errors={"bad_message"}) as call:
        await call.wait_event("agent_speech_ended", timeout=60)
        sent = time.monotonic()
        await call.send_event({"type": "dtmf", "key": "1"})  # the digit under the wrong name
        error = await call.wait_event("error", after=sent, timeout=10)
        assert error == {"type": "error", "code": "bad_message",
                         "message": "dtmf.digit: Field required"}
        assert not call.has_event("dtmf", after=sent)  # nothing was echoed: it reached no flow

        pressed = time.monotonic()
        await call.send_event({"type": "dtmf", "digit": "1"})
        assert await call.wait_event("dtmf", after=pressed, timeout=10) == {"type": "dtmf",
                                                                            "digit": "1"}
        await call.wait_event("agent_speech_ended", after=pressed, timeout=60)
    await wait_status(api, session_id, "ended")
    turns = [e["payload"] for e in await stored_events(api, session_id)
             if e["type"] == "user.turn"]
    assert [(t["text"], t.get("dtmf")) for t in turns] == [("1", "1")]


def _event_literals(path: Path) -> list[tuple[int, str, set[str]]]:
    """Each dict literal with a constant `type` in `path`: (line, type, its keys)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Dict):
            continue
        keys = {k.value for k in node.keys if isinstance(k, ast.Constant)
                and isinstance(k.value, str)}
        kind = next((v.value for k, v in zip(node.keys, node.values, strict=True)
                     if isinstance(k, ast.Constant) and k.value == "type"
                     and isinstance(v, ast.Constant) and isinstance(v.value, str)), None)
        if kind is not None:
            found.append((node.lineno, kind, keys))
    return found


def test_every_event_the_pipeline_builds_is_in_the_vocabulary():
    fields = {str(m.model_fields["type"].default): set(m.model_fields) for m in SERVER_MODELS}
    strays = []
    seen = set()
    for path in sorted((ROOT / "actors").glob("*.py")):
        for line, kind, keys in _event_literals(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            seen.add(kind)
            if kind not in fields:
                strays.append(f"{where}: event {kind!r} is not a ServerMessage")
            elif keys - fields[kind]:
                strays.append(f"{where}: {kind!r} has fields {sorted(keys - fields[kind])}"
                              f" its model lacks")
    assert not strays, "add them to aico/voice_messages.py:\n" + "\n".join(strays)
    # The scan sees the pipeline's events (it would pass vacuously if it saw none).
    assert {"ready", "transcript", "interrupted", "metrics", "end"} <= seen


def test_every_reason_speech_is_ignored_for_is_in_the_vocabulary():
    reasons = set(typing.get_args(UserSpeechIgnored.model_fields["reason"].annotation))
    given = set()
    for path in sorted((ROOT / "actors").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("_on_discard", "on_discard") and node.args \
                    and isinstance(node.args[-1], ast.Constant):
                given.add(node.args[-1].value)
    assert given, "the scan found no discarded speech: has the turn detector moved?"
    assert given <= reasons, f"add {sorted(given - reasons)} to UserSpeechIgnored.reason"


def test_the_dashboards_typescript_types_are_generated_from_the_vocabulary():
    spec = importlib.util.spec_from_file_location("gen_voice_types",
                                                  ROOT / "scripts" / "gen_voice_types.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    committed = (ROOT / "frontend" / "src" / "api" / "voice-messages.ts").read_text()
    assert committed == generator.generated(), \
        "frontend/src/api/voice-messages.ts is stale: run scripts/gen_voice_types.py"
    # Every server message is a type of the union the dashboard switches on.
    for model in SERVER_MODELS:
        assert f"export type {model.__name__} = {{" in committed
        assert f"type: '{model.model_fields['type'].default}';" in committed
