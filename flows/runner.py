"""Node semantics: apply one inbound event to a session snapshot and run nodes until the flow
must wait. Pure apart from what nodes do by nature (an http call, a `collect` extraction, a
lookup of a subflow's version); it writes nothing. `flows.executor` commits what it produced.

Session state (sessions.state, JSON):
    {"started": bool, "at": node id, "wait": {"kind", "node", ...} | None,
     "history": [{"role", "content"}, ...]  # the last HISTORY_WINDOW messages only}
`wait.kind` is one of listen, collect, llm, tool, child.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aico.egress import EgressGuard
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
    RagNode,
    SayNode,
    SetNode,
    StartNode,
    SubflowNode,
    TransferNode,
)
from flows.events import Action, End, InboundEvent, Listen, Say, Transfer
from flows.expressions import (
    ExpressionError,
    ExpressionRefused,
    ExpressionTimeout,
    ExpressionTooLarge,
    evaluate_async,
    render_async,
)
from flows.http_node import http_call_id, http_request

log = logging.getLogger("aico.flows.runner")

MAX_NODES_PER_STEP = 256


async def _no_allowlist() -> list[str]:
    return []


async def _top_level() -> int:
    return 0


async def _always_send(call_id: str, stale_after_s: float) -> tuple[bool, Any]:
    return True, None


async def _forget_result(call_id: str, result: dict[str, Any]) -> None:
    return None


async def _no_knowledge(kb_ids: list[str], query: str, top_k: int) -> list[dict[str, Any]]:
    return []


def _expression_reason(exc: ExpressionError) -> str:
    return "expression_refused" if isinstance(exc, ExpressionRefused) else "expression_limit"


class StepLimitExceeded(Exception):
    """A bound on one step (external calls, subflow depth) was reached: the session fails."""

    def __init__(self, reason: str, message: str, node_id: str | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.node_id = reason, message, node_id


async def _transfer_allowed(to: str) -> str | None:
    return None


class NotSpeculable(Exception):
    """A speculative run (`RunEnv.speculative`) reached a node whose work may not happen before
    the turn is real: an external call, a subflow, a transfer, the end of the session."""


# What a speculative run may pass through: nodes without effects outside the snapshot.
_SPECULABLE = (StartNode, SayNode, SetNode, ListenNode, LLMNode)


@dataclass
class RunEnv:
    """What node execution may reach outside the snapshot."""

    settings: Any
    complete_llm: Callable[[list[dict[str, str]], dict[str, Any]], Awaitable[str]]
    latest_flow_version: Callable[[str], Awaitable[Any]]
    # The organization's egress allow-list (aico.egress), read when an http node runs.
    egress_allowlist: Callable[[], Awaitable[list[str]]] = _no_allowlist
    # How many sessions above this one (0 for a top-level session).
    subflow_depth: Callable[[], Awaitable[int]] = _top_level
    # Call intents (db/http_calls.py): claim(call_id, stale_after_s) -> (send?, stored result).
    claim_call: Callable[[str, float], Awaitable[tuple[bool, Any]]] = _always_send
    complete_call: Callable[[str, dict[str, Any]], Awaitable[None]] = _forget_result
    # A rag node's search (flows.knowledge): (knowledge base ids, query, top_k) -> chunks.
    search_knowledge: Callable[[list[str], str, int], Awaitable[list[dict[str, Any]]]] = (
        _no_knowledge)
    # Why a transfer node may not move the call to a destination (a phone call's toll-fraud
    # guard, flows.telephony), or None when it may.
    refuse_transfer: Callable[[str], Awaitable[str | None]] = _transfer_allowed
    # A speculative run (flows.speculative): anything but say/set/listen/llm raises
    # NotSpeculable, so nothing reaches the outside world for a turn that may not happen.
    speculative: bool = False


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
        self.snapshot = snapshot
        limits = getattr(env.settings, "limits", None)
        self.max_external_calls = int(getattr(limits, "flow_external_calls_per_step", 10))
        self.max_subflow_depth = int(getattr(limits, "flow_subflow_depth", 8))
        self.expression_time_limit_s = float(getattr(limits, "flow_expression_timeout_s", 1.0))
        self.event_id = ""
        self.external_calls = 0
        self.node_visits: dict[str, int] = {}
        self.guard: EgressGuard | None = None
        state = dict(snapshot["state"] or {})
        state.setdefault("history", [])
        self.out = StepOutcome(status=snapshot["status"], state=state,
                               variables=dict(snapshot["variables"] or {}))

    # --- events ------------------------------------------------------------------------

    async def apply(self, event: InboundEvent) -> StepOutcome:
        self.event_id = event.event_id
        try:
            return await self._apply(event)
        except StepLimitExceeded as exc:
            log.warning("session %s: %s", self.session_id, exc.message)
            return self.failed(exc.reason, exc.message, node_id=exc.node_id)

    def failed(self, reason: str, message: str, *, node_id: str | None = None) -> StepOutcome:
        """What a step that hit a bound commits instead of its partial work: the session fails
        with the reason recorded (`session.failed` event, then the End action)."""
        state = dict(self.snapshot["state"] or {})
        state["wait"] = None
        self.out = StepOutcome(status="failed", state=state,
                               variables=dict(self.snapshot["variables"] or {}))
        self.out.out_events.append({"type": "session.failed", "payload": {
            "reason": reason, "message": message, "node_id": node_id}})
        self.emit(End(reason=reason, node_id=node_id, session_id=self.session_id),
                  payload={"reason": reason, "message": message})
        if self.parent_id is not None:
            self.out.effects.append({"kind": "notify_parent", "parent_session_id":
                                     str(self.parent_id), "reason": reason})
        return self.out

    async def _apply(self, event: InboundEvent) -> StepOutcome:
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
                await self.advance(await self.next_node(node.id))
        elif event.type == "tool.result":
            if wait.get("kind") == "tool" and wait.get("call_id") == p.get("call_id"):
                node = self.nodes[wait["node"]]
                self.assign(node.into, p.get("result"))
                state["wait"] = None
                await self.advance(await self.next_node(node.id))
        elif event.type == "child.completed":
            if wait.get("kind") == "child" and wait.get("child_session_id") == p.get(
                    "child_session_id"):
                node = self.nodes[wait["node"]]
                self.assign(node.into, p.get("variables") or {})
                state["wait"] = None
                await self.advance(await self.next_node(node.id))
        elif event.type == "timer.fired":
            # A timer ends the wait at a listen/collect with no input; the node's edges decide
            # (e.g. `when: "timer_fired == 'no_input'"`).
            if wait.get("kind") in ("listen", "collect"):
                self.out.variables["timer_fired"] = str(p.get("name", "timer"))
                state["wait"] = None
                await self.advance(await self.next_node(wait["node"]))
        elif event.type == "session.ended":
            self.end(str(p.get("reason") or "hangup"), None)
        return self.out

    async def deliver_user_turn(self, text: str, wait: dict[str, Any]) -> None:
        kind = wait.get("kind")
        if kind == "listen":
            node = self.nodes[wait["node"]]
            self.assign(node.into, text)
            self.out.state["wait"] = None
            await self.advance(await self.next_node(node.id))
        elif kind == "collect":
            await self.collect_turn(self.nodes[wait["node"]], text, wait)
        elif kind == "llm":
            # Barge-in before the reply was confirmed: the caller heard nothing of it.
            node = self.nodes[wait["node"]]
            self.finish_llm(node, "", True)
            await self.advance(await self.next_node(node.id), pending_turn=text)
        # tool / child / not started: the turn is recorded; the flow keeps waiting.

    # --- nodes -------------------------------------------------------------------------

    async def advance(self, node_id: str | None, *, pending_turn: str | None = None) -> None:
        state = self.out.state
        for _ in range(MAX_NODES_PER_STEP):
            if node_id is None:
                if self.env.speculative:
                    raise NotSpeculable("the session would end")
                self.end("completed", state.get("at"))
                return
            node = self.nodes[node_id]
            if self.env.speculative and not isinstance(node, _SPECULABLE):
                raise NotSpeculable(f"node {node.id!r} ({node.type}) waits for the real turn")
            state["at"] = node_id
            if isinstance(node, (StartNode,)):
                pass
            elif isinstance(node, SayNode):
                self.say(node.id, await self.render(node.text), interruptible=node.interruptible)
            elif isinstance(node, SetNode):
                for name, expr in node.assign.items():
                    self.out.variables[name] = await self.evaluate(expr, node.id)
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
                    self.say(node.id, await self.render(node.prompt))
                self.emit(Listen(node.id))
                return
            elif isinstance(node, HttpNode):
                if await self.run_http(node):
                    return
            elif isinstance(node, SubflowNode):
                if await self.start_subflow(node):
                    return
            elif isinstance(node, RagNode):
                await self.run_rag(node)
            elif isinstance(node, TransferNode):
                to = await self.render(node.to)
                refused = await self.env.refuse_transfer(to)
                if refused is not None:
                    # The caller stays on the line: the flow goes on past the node (with
                    # `transfer_error` to say why), or ends if nothing follows it.
                    self.out.variables["transfer_error"] = refused
                    self.out.out_events.append({"type": "transfer.refused", "payload": {
                        "node_id": node.id, "to": to, "reason": refused}})
                    node_id = await self.next_node(node.id)
                    if node_id is None:
                        self.end("transfer_refused", node.id)
                        return
                    continue
                self.emit(Transfer(to=to, mode=node.mode, node_id=node.id),
                          payload={"to": to, "mode": node.mode})
                if node.mode == "cold":
                    self.end("transferred", node.id)
                    return
            elif isinstance(node, EndNode):
                self.end(node.reason, node.id)
                return
            node_id = await self.next_node(node.id)
        self.out.status = "failed"
        self.emit(End(reason="loop_limit", node_id=node_id, session_id=self.session_id))
        log.error("session %s ran %d nodes without waiting", self.session_id, MAX_NODES_PER_STEP)

    async def next_node(self, node_id: str) -> str | None:
        for edge in self.edges.get(node_id, []):
            if edge.when is None:
                return edge.to
            try:
                if await self.evaluate(edge.when, node_id, strict=True):
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
        self.count_external_call(node.id)
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
            await self.advance(await self.next_node(node.id))
            return
        self.out.state["wait"] = {**wait, "attempts": attempts}
        wanted = ", ".join(node.fields[m].description or m for m in missing)
        self.say(node.id, f"Sorry, I still need: {wanted}.")
        self.emit(Listen(node.id))

    def count_external_call(self, node_id: str) -> None:
        if self.env.speculative:  # a second wall: no external call for a speculative turn
            raise NotSpeculable(f"node {node_id!r} calls out")
        self.external_calls += 1
        if self.external_calls > self.max_external_calls:
            raise StepLimitExceeded(
                "external_call_limit",
                f"node {node_id!r}: more than {self.max_external_calls} external calls in one"
                " step (AICO_LIMIT_FLOW_EXTERNAL_CALLS_PER_STEP)", node_id)

    async def run_http(self, node: HttpNode) -> bool:
        """Call the API; True when the flow now waits for its callback.

        The call id is stable per (session, event, node, visit) and recorded before the request
        leaves: a step retried after losing the optimistic version race (or a re-delivered
        event) reuses the recorded result instead of calling the outside world again."""
        self.count_external_call(node.id)
        ns = self.namespace()
        visit = self.node_visits[node.id] = self.node_visits.get(node.id, 0) + 1
        call_id = http_call_id(self.session_id, self.event_id, node.id, visit)
        headers = {k: await self.render(v) for k, v in node.headers.items()}
        body = await self.render(node.body) if isinstance(node.body, str) else node.body
        if node.async_:
            url = callback_url(self.env.settings, self.session_id, call_id)
            headers["X-AICO-Callback-URL"] = url
            ns = {**ns, "callback_url": url}
        url = await self.render(node.url, ns)
        result = await self.call_once(call_id, node.timeout_s, lambda: self.send_http(
            node, url=url, headers=headers, body=body, call_id=call_id))
        self.out.out_events.append({"type": "http.called", "payload": {
            "node_id": node.id, "status": result["status"], "error": result.get("error"),
            "call_id": call_id if node.async_ else None}})
        if node.async_ and not result.get("error") and 200 <= result["status"] < 300:
            self.out.state["wait"] = {"kind": "tool", "node": node.id, "call_id": call_id}
            return True
        self.assign(node.into, result)
        return False

    async def send_http(self, node: HttpNode, *, url: str, headers: dict[str, str], body: Any,
                        call_id: str) -> dict[str, Any]:
        if self.guard is None:
            self.guard = EgressGuard(await self.env.egress_allowlist())
        return await http_request(method=node.method, url=url, headers=headers, body=body,
                                  timeout_s=node.timeout_s, guard=self.guard,
                                  idempotency_key=call_id)

    async def call_once(self, call_id: str, timeout_s: float,
                        send: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        # A claim older than the call's own timeout (plus slack) belongs to a worker that died
        # mid-call: send again then, with the same Idempotency-Key.
        stale_after = timeout_s + 5.0
        deadline = asyncio.get_running_loop().time() + stale_after + 1.0
        while True:
            may_send, stored = await self.env.claim_call(call_id, stale_after)
            if may_send:
                result = await send()
                await self.env.complete_call(call_id, result)
                return result
            if stored is not None:
                return dict(stored)
            # Another worker is making this very call right now (the same event delivered
            # twice at once): wait for its result rather than calling a second time.
            if asyncio.get_running_loop().time() > deadline:
                return {"status": 0, "error": f"call {call_id} is still in flight elsewhere"}
            await asyncio.sleep(0.05)

    async def run_rag(self, node: RagNode) -> None:
        """Retrieve into the node's variable; what was found is recorded on the events, so
        monitoring shows what an answer was based on. A search that fails leaves "" and the
        error on the event: the conversation goes on without the context."""
        from flows.knowledge import context_text

        self.count_external_call(node.id)
        query = await self.render(node.query)
        hits: list[dict[str, Any]] = []
        error = None
        try:
            hits = await self.env.search_knowledge(node.knowledge_bases, query, node.top_k)
        except Exception as exc:  # noqa: BLE001 - recorded on the event, like an http error
            error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("session %s node %s: knowledge search failed: %s", self.session_id,
                        node.id, error)
        self.assign(node.into, context_text(hits))
        self.out.out_events.append({"type": "rag.retrieved", "payload": {
            "node_id": node.id, "query": query, "error": error,
            "chunks": [{k: h[k] for k in ("chunk_id", "document_id", "document_title",
                                          "position", "score", "text")} for h in hits]}})

    async def start_subflow(self, node: SubflowNode) -> bool:
        depth = await self.env.subflow_depth() + 1
        if depth > self.max_subflow_depth:
            raise StepLimitExceeded(
                "subflow_depth_limit",
                f"node {node.id!r}: subflow nesting deeper than {self.max_subflow_depth}"
                " (AICO_LIMIT_FLOW_SUBFLOW_DEPTH)", node.id)
        version = await self.env.latest_flow_version(str(node.flow_id))
        if version is None:
            self.assign(node.into, {"error": f"flow {node.flow_id} has no published version"})
            return False
        child_id = str(uuid.uuid4())
        inputs = {k: await self.render(v) for k, v in node.inputs.items()}
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

    async def render(self, source: str, namespace: dict[str, Any] | None = None) -> str:
        """The template rendered off the event loop, bounded; "" when it fails (an undefined
        variable, a type error), but the session fails when a bound was hit."""
        try:
            return await render_async(source, namespace or self.namespace(),
                                      time_limit_s=self.expression_time_limit_s)
        except (ExpressionTooLarge, ExpressionTimeout, ExpressionRefused) as exc:
            raise StepLimitExceeded(_expression_reason(exc), str(exc),
                                    self.out.state.get("at")) from None
        except ExpressionError as exc:
            log.info("session %s: %s", self.session_id, exc)
            return ""

    async def evaluate(self, source: str, node_id: str, *, strict: bool = False) -> Any:
        try:
            return await evaluate_async(source, self.namespace(),
                                        time_limit_s=self.expression_time_limit_s)
        except (ExpressionTooLarge, ExpressionTimeout, ExpressionRefused) as exc:
            raise StepLimitExceeded(_expression_reason(exc), str(exc), node_id) from None
        except ExpressionError as exc:
            if strict:
                raise
            log.info("session %s node %s: %s", self.session_id, node_id, exc)
            return None


def persistence_hooks(pool: Any, snapshot: Any, settings: Any) -> dict[str, Any]:
    """The RunEnv callables backed by PostgreSQL: the org's egress allow-list, the session's
    subflow depth, and http call intents (see `FlowRun.call_once`)."""
    from db import egress_allowlist as egress_db
    from db import http_calls as http_calls_db
    from db.session_ancestry import count_session_ancestors

    session_id = snapshot["id"]
    limit = int(getattr(getattr(settings, "limits", None), "flow_subflow_depth", 8))

    async def egress_allowlist() -> list[str]:
        return await egress_db.get_egress_allowlist(pool, org_id=snapshot["org_id"])

    async def subflow_depth() -> int:
        depth = await count_session_ancestors(pool, session_id=session_id, limit=limit)
        # Not visible (row-level security without the organization set): fail closed.
        return limit + 1 if depth is None else int(depth)

    async def claim_call(call_id: str, stale_after_s: float) -> tuple[bool, Any]:
        return await http_calls_db.claim_http_call(pool, session_id=session_id, call_id=call_id,
                                                   stale_after_s=stale_after_s)

    async def complete_call(call_id: str, result: dict[str, Any]) -> None:
        await http_calls_db.complete_http_call(pool, session_id=session_id, call_id=call_id,
                                               result=result)

    async def search_knowledge(kb_ids: list[str], query: str,
                               top_k: int) -> list[dict[str, Any]]:
        from uuid import UUID

        from flows.knowledge import search_knowledge as search

        return await search(pool, org_id=snapshot["org_id"], kb_ids=[UUID(k) for k in kb_ids],
                            query=query, top_k=top_k, settings=settings)

    async def refuse_transfer(to: str) -> str | None:
        if snapshot["channel"] != "phone":
            return None  # elsewhere a transfer is an event for the integrator; nothing dials
        from flows.phone_calls import refused_transfer

        return await refused_transfer(pool, org_id=snapshot["org_id"], session_id=session_id,
                                      to=to)

    return {"egress_allowlist": egress_allowlist, "subflow_depth": subflow_depth,
            "claim_call": claim_call, "complete_call": complete_call,
            "search_knowledge": search_knowledge, "refuse_transfer": refuse_transfer}


async def run_bounded(doc: FlowDocument, snapshot: Any, env: RunEnv,
                      event: InboundEvent) -> StepOutcome:
    """`FlowRun.apply` within the step deadline (`AICO_LIMIT_FLOW_STEP_DEADLINE_S`); a step
    that overruns it fails the session with the reason recorded, instead of hanging."""
    deadline = float(getattr(getattr(env.settings, "limits", None), "flow_step_deadline_s", 30.0))
    run = FlowRun(doc, snapshot, env)
    try:
        async with asyncio.timeout(deadline):
            return await run.apply(event)
    except TimeoutError:
        at = run.out.state.get("at")
        log.warning("session %s: step over its %.1f s deadline at node %s", snapshot["id"],
                    deadline, at)
        return run.failed(
            "step_deadline",
            f"one step ran longer than {deadline:g} s (AICO_LIMIT_FLOW_STEP_DEADLINE_S)",
            node_id=at)
