"""The voice call's vocabulary: every message on the voice WebSocket (and on LiveKit's data
packets, and on the live observers' socket), one frozen pydantic model each, a union
discriminated on `type` for each direction.

This module is the source of truth for docs/voice-protocol.md section 2 and for the dashboard's
`frontend/src/api/voice-messages.ts` (written from these models' JSON schema by
`scripts/gen_voice_types.py`; a test fails when that file is stale).

* Client → server (`ClientMessage`): `start`, `dtmf`, `hangup` (`stop` is its synonym).
  `parse_client_message` turns a text frame into one, or raises `BadClientMessage` whose
  `message` names the field that is wrong.
* Server → client (`ServerMessage`): what the pipeline emits. The pipeline builds them as dicts
  (they cross the Ray actor boundary as plain data); `server_message` types one at the
  transport boundary (`actors.transports.run_call`) and `to_wire` turns a message back into the
  JSON object sent, with exactly the fields that were set.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# The caller audio rates a `start` may announce.
ALLOWED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
START_USAGE = 'expected {"type": "start", "sample_rate": N} first'


class ServerModel(BaseModel):
    """A message we write: exact, so the generated TypeScript types are exact too."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ClientModel(BaseModel):
    """A message a client writes: fields we do not know are ignored (newer clients)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


# --- client → server --------------------------------------------------------------------------

class Start(ClientModel):
    """The first text frame: the rate of the caller's PCM16 audio."""

    type: Literal["start"] = "start"
    sample_rate: Literal[8000, 16000, 22050, 24000, 32000, 44100, 48000] = 16000


class Dtmf(ClientModel):
    """A keypad digit, delivered to the flow as a `user.turn` whose text is the digit."""

    type: Literal["dtmf"] = "dtmf"
    digit: Annotated[str, Field(min_length=1, max_length=16)]


class Hangup(ClientModel):
    """The caller hangs up (closing the socket does the same). Never rate limited."""

    type: Literal["hangup"] = "hangup"


class Stop(ClientModel):
    """A synonym of `hangup`."""

    type: Literal["stop"] = "stop"


ClientMessage = Annotated[Start | Dtmf | Hangup | Stop, Field(discriminator="type")]
ENDS_CALL = ("hangup", "stop")


# --- server → client --------------------------------------------------------------------------

class Ready(ServerModel):
    """After `start`: the rate of the agent's audio (the TTS voice's own rate)."""

    type: Literal["ready"] = "ready"
    sample_rate: int
    session_id: str
    resumed: bool = False  # a restarted pipeline's ready: the caller gets `resumed` instead


class Transcript(ServerModel):
    """The caller's interim (at a pause) and final text; each agent utterance."""

    type: Literal["transcript"] = "transcript"
    role: Literal["user", "agent"]
    text: str
    final: bool
    stream_id: str | None = None


class AgentText(ServerModel):
    """Agent text as it is produced (LLM deltas with `final: false`; a say node's whole text)."""

    type: Literal["agent_text"] = "agent_text"
    text: str
    final: bool
    stream_id: str | None = None
    node_id: str | None = None


class AgentSpeechStarted(ServerModel):
    type: Literal["agent_speech_started"] = "agent_speech_started"


class AgentSpeechEnded(ServerModel):
    """The agent's audio has played out."""

    type: Literal["agent_speech_ended"] = "agent_speech_ended"


class UserSpeechStarted(ServerModel):
    type: Literal["user_speech_started"] = "user_speech_started"
    over_agent: bool


class UserSpeechIgnored(ServerModel):
    """Speech that is not a turn."""

    type: Literal["user_speech_ignored"] = "user_speech_ignored"
    reason: Literal["backchannel", "too_short", "no_words", "stt_failed"]


class Interrupted(ServerModel):
    """Barge-in: drop buffered agent audio now; `heard` is what the caller heard."""

    type: Literal["interrupted"] = "interrupted"
    heard: str


# Figures are sent as they were measured: an int stays an int, a float a float.
Figure = int | float | None


class TurnMetrics(BaseModel):
    """One turn's latencies (ms) by the field's stage names; new figures may be added."""

    model_config = ConfigDict(frozen=True, extra="allow")

    speech_s: Figure = None
    end_of_turn_ms: Figure = None
    end_of_turn_by: str | None = None  # "model" or "silence"
    turn_complete_p: Figure = None
    stt_final_ms: Figure = None
    executor_ms: Figure = None
    llm_ttft_ms: Figure = None
    llm_first_sentence_ms: Figure = None
    tts_ttfb_ms: Figure = None
    voice_to_voice_ms: Figure = None
    aico_ms: Figure = None


class Metrics(ServerModel):
    """After each turn's first agent audio (`turn`), the greeting's (`greeting_first_audio_ms`),
    or when the agent's speech has played out (`speech_gap_ms`: silence inside it, its next
    audio not ready in time)."""

    type: Literal["metrics"] = "metrics"
    turn: TurnMetrics | None = None
    greeting_first_audio_ms: Figure = None
    speech_gap_ms: Figure = None


class TimerFired(ServerModel):
    """A timer fired (the flow gets `timer.fired`)."""

    type: Literal["timer"] = "timer"
    name: Literal["no_input", "max_duration"]


class DtmfReceived(ServerModel):
    """Echo of a digit the flow received."""

    type: Literal["dtmf"] = "dtmf"
    digit: str


class CallTransferred(ServerModel):
    type: Literal["transfer"] = "transfer"
    to: str
    mode: Literal["cold", "warm"]


class Resumed(ServerModel):
    """The session actor was restarted mid-call and has rehydrated."""

    type: Literal["resumed"] = "resumed"


class CallError(ServerModel):
    """An error; the close code that may follow says the same (docs/voice-protocol.md)."""

    # An API error's own fields (`details`, what it names) ride along.
    model_config = ConfigDict(frozen=True, extra="allow")

    type: Literal["error"] = "error"
    code: str
    message: str


class CallEnded(ServerModel):
    """The flow ended the call; the server closes the socket (1000)."""

    type: Literal["end"] = "end"
    reason: str


ServerMessage = Annotated[
    Ready | Transcript | AgentText | AgentSpeechStarted | AgentSpeechEnded | UserSpeechStarted
    | UserSpeechIgnored | Interrupted | Metrics | TimerFired | DtmfReceived | CallTransferred
    | Resumed | CallError | CallEnded,
    Field(discriminator="type")]


class ObserverHello(ServerModel):
    """The live observers' socket's first message; the call's events follow, each with
    `session_id`."""

    type: Literal["hello"] = "hello"
    session_id: str
    status: str


# --- parsing and writing ----------------------------------------------------------------------

_client = TypeAdapter(ClientMessage)
_server = TypeAdapter(ServerMessage)
CLIENT_TYPES = ("start", "dtmf", "hangup", "stop")
SERVER_MODELS: tuple[type[ServerModel], ...] = (
    Ready, Transcript, AgentText, AgentSpeechStarted, AgentSpeechEnded, UserSpeechStarted,
    UserSpeechIgnored, Interrupted, Metrics, TimerFired, DtmfReceived, CallTransferred, Resumed,
    CallError, CallEnded)
SERVER_TYPES = tuple(str(m.model_fields["type"].default) for m in SERVER_MODELS)


class BadClientMessage(ValueError):
    """A client's text frame that is not one of `ClientMessage`: `code` for the `error` event,
    `message` naming the field."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_client_message(data: str | dict[str, Any]) -> Start | Dtmf | Hangup | Stop:
    """A client's text frame (its JSON text, or the object already decoded) as its message."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            raise BadClientMessage("bad_message", "text frames must be JSON objects") from None
    if not isinstance(data, dict):
        raise BadClientMessage("bad_message", "text frames must be JSON objects")
    kind = data.get("type")
    if kind not in CLIENT_TYPES:
        raise BadClientMessage("bad_message", f"type must be one of {CLIENT_TYPES}, not {kind!r}")
    try:
        return _client.validate_python(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"][1:]) or "message"
        if kind == "start" and field == "sample_rate":
            raise BadClientMessage("bad_start",
                                   f"sample_rate must be one of {ALLOWED_RATES}") from None
        raise BadClientMessage("bad_message", f"{kind}.{field}: {first['msg']}") from None


def server_message(event: dict[str, Any]) -> ServerModel:
    """A pipeline event (a dict, as it crossed the actor boundary) as its typed message.
    Raises pydantic's `ValidationError` for an event this vocabulary does not have."""
    message: ServerModel = _server.validate_python(event)
    return message


def to_wire(message: BaseModel) -> dict[str, Any]:
    """The JSON object sent for `message`: its `type` and the fields that were set."""
    data = message.model_dump(mode="json", exclude_unset=True)
    data.pop("type", None)
    return {"type": getattr(message, "type"), **data}  # noqa: B009 - every message has one


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON schema of each direction (and the observers' hello), for the TypeScript types."""
    return {
        "ClientMessage": _client.json_schema(),
        "ServerMessage": _server.json_schema(),
        "ObserverHello": ObserverHello.model_json_schema(),
    }
