"""The executor's vocabulary: inbound events it consumes and actions it produces.

Inbound events (each carries an `event_id`; the same id delivered twice is applied once):

- `session.started`  {}                                   run from the start node
- `user.turn`        {"text", "channel"?}                  the caller said/typed something
- `llm.completed`    {"token", "text", "interrupted"?}     an llm node's reply is complete;
                     with `interrupted`, `text` is what the caller actually heard
- `tool.result`      {"call_id", "result"}                 an async http node's callback
- `child.completed`  {"child_session_id", "variables", "reason"}  a subflow's session ended
- `timer.fired`      {"name"}                              e.g. "no_input", "max_duration"
- `session.ended`    {"reason"?}                           the caller hung up / the chat closed

Actions (frozen dataclasses; `interruptible` says whether a barge-in may cut the speech off):

- `Say`        a whole utterance (a say node, a collect prompt)
- `SayChunk`   a piece of a streamed LLM reply; `final=True` closes the stream `stream_id`
- `Listen`     the flow now waits for the caller
- `Transfer`   hand the caller to `to` (cold: the session ends; warm: it carries on)
- `End`        the session is over (hang up)
- `StartChild` a subflow started as its own session

Every type pickles (Ray) and has `to_dict()` / `action_from_dict()` for the wire and storage.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

InboundType = Literal[
    "session.started", "user.turn", "llm.completed", "tool.result", "child.completed",
    "timer.fired", "session.ended",
]
INBOUND_TYPES: tuple[str, ...] = (
    "session.started", "user.turn", "llm.completed", "tool.result", "child.completed",
    "timer.fired", "session.ended",
)


@dataclass(frozen=True)
class InboundEvent:
    type: InboundType
    event_id: str
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in INBOUND_TYPES:
            raise ValueError(f"unknown inbound event type {self.type!r}")
        if not self.event_id or len(self.event_id) > 200:
            raise ValueError("event_id must be 1..200 characters")

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    @classmethod
    def session_started(cls) -> InboundEvent:
        # A fixed id: starting a session twice is the same event.
        return cls("session.started", "session.started", {})

    @classmethod
    def user_turn(cls, text: str, *, event_id: str | None = None, **extra: Any) -> InboundEvent:
        return cls("user.turn", event_id or cls.new_id(), {"text": text, **extra})

    @classmethod
    def llm_completed(cls, token: str, text: str, *, interrupted: bool = False) -> InboundEvent:
        return cls("llm.completed", f"llm:{token}",
                   {"token": token, "text": text, "interrupted": interrupted})

    @classmethod
    def tool_result(cls, call_id: str, result: Any) -> InboundEvent:
        return cls("tool.result", f"tool:{call_id}", {"call_id": call_id, "result": result})

    @classmethod
    def child_completed(cls, child_session_id: str, variables: dict[str, Any],
                        reason: str) -> InboundEvent:
        return cls("child.completed", f"child:{child_session_id}",
                   {"child_session_id": child_session_id, "variables": variables,
                    "reason": reason})

    @classmethod
    def timer_fired(cls, name: str, *, event_id: str | None = None) -> InboundEvent:
        return cls("timer.fired", event_id or cls.new_id(), {"name": name})

    @classmethod
    def session_ended(cls, reason: str = "hangup") -> InboundEvent:
        return cls("session.ended", "session.ended", {"reason": reason})


@dataclass(frozen=True)
class Say:
    text: str
    node_id: str
    interruptible: bool = True
    kind: Literal["say"] = "say"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SayChunk:
    text: str
    node_id: str
    stream_id: str
    final: bool = False
    interruptible: bool = True
    kind: Literal["say_chunk"] = "say_chunk"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Listen:
    node_id: str
    kind: Literal["listen"] = "listen"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Transfer:
    to: str
    mode: Literal["cold", "warm"]
    node_id: str
    kind: Literal["transfer"] = "transfer"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class End:
    reason: str
    node_id: str | None = None
    # The session that ended: a subflow's own end is not relayed to its parent's caller.
    session_id: str | None = None
    kind: Literal["end"] = "end"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StartChild:
    child_session_id: str
    flow_id: str
    node_id: str
    kind: Literal["start_child"] = "start_child"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Action = Say | SayChunk | Listen | Transfer | End | StartChild
_ACTIONS: dict[str, type] = {
    "say": Say, "say_chunk": SayChunk, "listen": Listen, "transfer": Transfer, "end": End,
    "start_child": StartChild,
}


def action_from_dict(data: dict[str, Any]) -> Action:
    return _ACTIONS[data["kind"]](**data)
