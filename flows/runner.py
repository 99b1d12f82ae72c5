"""Node semantics: apply one inbound event to a session snapshot and run nodes until the flow
must wait. Pure apart from what nodes do by nature (an http call, a `collect` extraction, a
lookup of a subflow's version); it writes nothing. `flows.executor` commits what it produced.

Session state (sessions.state, JSON):
    {"started": bool, "at": node id, "wait": {"kind", "node", ...} | None,
     "history": [{"role", "content"}, ...]  # the last HISTORY_WINDOW messages only}
`wait.kind` is one of listen, collect, llm, tool, child.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aico.errors import Conflict
from flows import llm_context
from flows.callbacks import callback_url
from flows.document import (
    CollectNode,
    EndNode,
    FlowDocument,
    HttpNode,
    ListenNode,
    LLMNode,
    SayNode,
    SetNode,
    StartNode,
    SubflowNode,
    TransferNode,
)
from flows.events import Action, End, InboundEvent, Listen, Say, Transfer
from flows.expressions import ExpressionError, evaluate, render
from flows.http_node import http_request

log = logging.getLogger("aico.flows.runner")

MAX_NODES_PER_STEP = 256


@dataclass
class RunEnv:
    """What node execution may reach outside the snapshot."""

    settings: Any
    complete_llm: Callable[[list[dict[str, str]], dict[str, Any]], Awaitable[str]]
    latest_flow_version: Callable[[str], Awaitable[Any]]


@dataclass
class StepOutcome:
    status: str
    state: dict[str, Any]
    variables: dict[str, Any]
    actions: list[Action] = field(default_factory=list)
    # Produced events ('out'); index 0 of the committed list is the consumed event itself.
    out_events: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    # Work done after the commit: {"kind": "llm" | "child" | "notify_parent", ...}.
    effects: list[dict[str, Any]] = field(default_factory=list)


class FlowRun:
    def __init__(self, doc: FlowDocument, snapshot: Any, env: RunEnv) -> None:
        self.doc = doc
        self.nodes = doc.node_map()
        self.edges = doc.outgoing()
        self.env = env
        self.session_id = str(snapshot["id"])
        self.parent_id = snapshot["parent_session_id"]
        self.channel = snapshot["channel"]
        self.allow_private_http = bool((snapshot["org_settings"] or {}).get("allow_private_http"))
        state = dict(snapshot["state"] or {})
        state.setdefault("history", [])
        self.out = StepOutcome(status=snapshot["status"], state=state,
                               variables=dict(snapshot["variables"] or {}))

    # --- events ------------------------------------------------------------------------

    async def apply(self, event: InboundEvent) -> StepOutcome:
        state, p = self.out.state, event.payload
        if self.out.status in ("ended", "failed"):
            if event.type in ("session.ended", "llm.completed", "child.completed",
                              "tool.result", "timer.fired"):
                return self.out  # late news for a finished session: recorded, no effect
            raise Conflict(f"session {self.session_id} has {self.out.status}",
                           details={"status": self.out.status})
        wait = state.get("wait") or {}
        if event.type == "session.started":
            if not state.get("started"):
                state["started"] = True
                await self.advance(self.doc.start_node().id)
        elif event.type == "user.turn":
            text = str(p.get("text", ""))
            self.out.turns.append({"event_index": 0, "role": "user", "text": text})
            state["history"] = llm_context.append_history(state["history"], "user", text)
            self.out.variables["user_text"] = text
            self.out.variables.pop("timer_fired", None)
            await self.deliver_user_turn(text, wait)
        elif event.type == "llm.completed":
            if wait.get("kind") == "llm" and wait.get("token") == p.get("token"):
                node = self.nodes[wait["node"]]
                self.finish_llm(node, str(p.get("text", "")), bool(p.get("interrupted")))
                await self.advance(self.next_node(node.id))
        elif event.type == "tool.result":
            if wait.get("kind") == "tool" and wait.get("call_id") == p.get("call_id"):
                node = self.nodes[wait["node"]]
                self.assign(node.into, p.get("result"))
                state["wait"] = None
                await self.advance(self.next_node(node.id))
        elif event.type == "child.completed":
            if wait.get("kind") == "child" and wait.get("child_session_id") == p.get(
                    "child_session_id"):
                node = self.nodes[wait["node"]]
                self.assign(node.into, p.get("variables") or {})
                state["wait"] = None
                await self.advance(self.next_node(node.id))
        elif event.type == "timer.fired":
            # A timer ends the wait at a listen/collect with no input; the node's edges decide
            # (e.g. `when: "timer_fired == 'no_input'"`).
            if wait.get("kind") in ("listen", "collect"):
                self.out.variables["timer_fired"] = str(p.get("name", "timer"))
                state["wait"] = None
                await self.advance(self.next_node(wait["node"]))
        elif event.type == "session.ended":
            self.end(str(p.get("reason") or "hangup"), None)
        return self.out

    async def deliver_user_turn(self, text: str, wait: dict[str, Any]) -> None:
        kind = wait.get("kind")
        if kind == "listen":
            node = self.nodes[wait["node"]]
            self.assign(node.into, text)
            self.out.state["wait"] = None
            await self.advance(self.next_node(node.id))
        elif kind == "collect":
            await self.collect_turn(self.nodes[wait["node"]], text, wait)
        elif kind == "llm":
            # Barge-in before the reply was confirmed: the caller heard nothing of it.
            node = self.nodes[wait["node"]]
            self.finish_llm(node, "", True)
            await self.advance(self.next_node(node.id), pending_turn=text)
        # tool / child / not started: the turn is recorded; the flow keeps waiting.

    # --- nodes -------------------------------------------------------------------------

    async def advance(self, node_id: str | None, *, pending_turn: str | None = None) -> None:
        state = self.out.state
        for _ in range(MAX_NODES_PER_STEP):
            if node_id is None:
                self.end("completed", state.get("at"))
                return
            node = self.nodes[node_id]
            state["at"] = node_id
            if isinstance(node, (StartNode,)):
                pass
            elif isinstance(node, SayNode):
                self.say(node.id, self.render(node.text), interruptible=node.interruptible)
            elif isinstance(node, SetNode):
                for name, expr in node.assign.items():
                    self.out.variables[name] = self.evaluate(expr, node.id)
            elif isinstance(node, ListenNode):
                if pending_turn is not None:
                    self.assign(node.into, pending_turn)
                    pending_turn = None
                else:
                    state["wait"] = {"kind": "listen", "node": node.id}
                    self.emit(Listen(node.id))
                    return
            elif isinstance(node, LLMNode):
                self.start_llm(node)
                return
            elif isinstance(node, CollectNode):
                wait = {"kind": "collect", "node": node.id, "attempts": 0}
                state["wait"] = wait
                if pending_turn is not None:
                    await self.collect_turn(node, pending_turn, wait)
                    return
                if node.prompt:
                    self.say(node.id, self.render(node.prompt))
                self.emit(Listen(node.id))
                return
            elif isinstance(node, HttpNode):
                if await self.run_http(node):
                    return
            elif isinstance(node, SubflowNode):
                if await self.start_subflow(node):
                    return
            elif isinstance(node, TransferNode):
                to = self.render(node.to)
                self.emit(Transfer(to=to, mode=node.mode, node_id=node.id),
                          payload={"to": to, "mode": node.mode})
                if node.mode == "cold":
                    self.end("transferred", node.id)
                    return
            elif isinstance(node, EndNode):
                self.end(node.reason, node.id)
                return
            node_id = self.next_node(node.id)
        self.out.status = "failed"
        self.emit(End(reason="loop_limit", node_id=node_id, session_id=self.session_id))
        log.error("session %s ran %d nodes without waiting", self.session_id, MAX_NODES_PER_STEP)

    def next_node(self, node_id: str) -> str | None:
        for edge in self.edges.get(node_id, []):
            if edge.when is None:
                return edge.to
            try:
                if evaluate(edge.when, self.namespace()):
                    return edge.to
            except ExpressionError as exc:
                # A condition that cannot be evaluated (a variable not set yet) is false.
                log.info("session %s: %s", self.session_id, exc)
        return None

    def start_llm(self, node: LLMNode) -> None:
        # The prompt is rebuilt from the committed state when the reply is generated (see
        # executor._stream_llm), so the event log does not store a copy of the history.
        token = uuid.uuid4().hex
        self.out.state["wait"] = {"kind": "llm", "node": node.id, "token": token}
        self.out.out_events.append({"type": "llm.requested", "payload": {"node_id": node.id,
                                                                         "token": token}})
        self.out.effects.append({"kind": "llm", "token": token, "node_id": node.id})

    def finish_llm(self, node: LLMNode, text: str, interrupted: bool) -> None:
        self.out.state["wait"] = None
        self.assign(node.into, text)
        if text:
            self.out.state["history"] = llm_context.append_history(
                self.out.state["history"], "assistant", text)
            self.out.out_events.append({"type": "llm.reply", "payload": {
                "node_id": node.id, "text": text, "interrupted": interrupted}})
            self.out.turns.append({"event_index": len(self.out.out_events), "role": "assistant",
                                   "text": text})

    async def collect_turn(self, node: CollectNode, text: str, wait: dict[str, Any]) -> None:
        messages, response_format = llm_context.collect_request(
            node, text=text, variables=self.out.variables)
        raw = await self.env.complete_llm(messages, {"response_format": response_format,
                                                     "temperature": 0.0})
        found = llm_context.validated_fields(node, raw)
        self.out.variables.update(found)
        self.out.out_events.append({"type": "collect.extracted",
                                    "payload": {"node_id": node.id, "fields": found}})
        missing = llm_context.missing_required(node, self.out.variables)
        attempts = int(wait.get("attempts", 0)) + 1
        if not missing or attempts >= node.max_attempts:
            self.out.variables[f"{node.id}_missing"] = missing
            self.out.state["wait"] = None
            await self.advance(self.next_node(node.id))
            return
        self.out.state["wait"] = {**wait, "attempts": attempts}
        wanted = ", ".join(node.fields[m].description or m for m in missing)
        self.say(node.id, f"Sorry, I still need: {wanted}.")
        self.emit(Listen(node.id))

    async def run_http(self, node: HttpNode) -> bool:
        """Call the API; True when the flow now waits for its callback."""
        ns = self.namespace()
        call_id = uuid.uuid4().hex
        headers = {k: self.render(v) for k, v in node.headers.items()}
        body = self.render(node.body) if isinstance(node.body, str) else node.body
        if node.async_:
            url = callback_url(self.env.settings, self.session_id, call_id)
            headers["X-AICO-Callback-URL"] = url
            ns = {**ns, "callback_url": url}
        result = await http_request(
            method=node.method, url=render(node.url, ns), headers=headers, body=body,
            timeout_s=node.timeout_s, allow_private=self.allow_private_http)
        self.out.out_events.append({"type": "http.called", "payload": {
            "node_id": node.id, "status": result["status"], "error": result.get("error"),
            "call_id": call_id if node.async_ else None}})
        if node.async_ and not result.get("error") and 200 <= result["status"] < 300:
            self.out.state["wait"] = {"kind": "tool", "node": node.id, "call_id": call_id}
            return True
        self.assign(node.into, result)
        return False

    async def start_subflow(self, node: SubflowNode) -> bool:
        version = await self.env.latest_flow_version(str(node.flow_id))
        if version is None:
            self.assign(node.into, {"error": f"flow {node.flow_id} has no published version"})
            return False
        child_id = str(uuid.uuid4())
        inputs = {k: self.render(v) for k, v in node.inputs.items()}
        self.out.state["wait"] = {"kind": "child", "node": node.id, "child_session_id": child_id}
        self.out.out_events.append({"type": "child.requested", "payload": {
            "node_id": node.id, "child_session_id": child_id, "flow_id": str(node.flow_id)}})
        self.out.effects.append({
            "kind": "child", "child_session_id": child_id, "flow_id": str(node.flow_id),
            "flow_version_id": str(version["id"]), "inputs": inputs, "node_id": node.id,
        })
        return True

    # --- helpers -----------------------------------------------------------------------

    def end(self, reason: str, node_id: str | None) -> None:
        self.out.status = "ended"
        self.out.state["wait"] = None
        self.emit(End(reason=reason, node_id=node_id, session_id=self.session_id),
                  payload={"reason": reason})
        if self.parent_id is not None:
            self.out.effects.append({"kind": "notify_parent", "parent_session_id":
                                     str(self.parent_id), "reason": reason})

    def say(self, node_id: str, text: str, *, interruptible: bool = True) -> None:
        self.emit(Say(text=text, node_id=node_id, interruptible=interruptible),
                  payload={"text": text})
        self.out.turns.append({"event_index": len(self.out.out_events), "role": "assistant",
                               "text": text})
        self.out.state["history"] = llm_context.append_history(
            self.out.state["history"], "assistant", text)

    def emit(self, action: Action, *, payload: dict[str, Any] | None = None) -> None:
        self.out.actions.append(action)
        self.out.out_events.append({"type": action.kind, "payload": payload or action.to_dict()})

    def assign(self, name: str | None, value: Any) -> None:
        if name:
            self.out.variables[name] = value

    def namespace(self) -> dict[str, Any]:
        return {**self.out.variables, "session_id": self.session_id, "channel": self.channel}

    def render(self, source: str) -> str:
        try:
            return render(source, self.namespace())
        except ExpressionError as exc:
            log.info("session %s: %s", self.session_id, exc)
            return ""

    def evaluate(self, source: str, node_id: str) -> Any:
        try:
            return evaluate(source, self.namespace())
        except ExpressionError as exc:
            log.info("session %s node %s: %s", self.session_id, node_id, exc)
            return None
