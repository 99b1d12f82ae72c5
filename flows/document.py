"""The flow document: what the dashboard draws and the executor runs.

A document is `{"name", "description"?, "variables"?, "providers"?, "nodes": [...], "edges": [...]}`.
Nodes are a union discriminated on `type`; every node model forbids unknown fields, so a typo is
refused with the node id in the message. `validate_for_publish` adds the graph rules a runnable
flow must obey. Templates (`{{ variable }}`) and `when` conditions are checked for syntax here and
evaluated by `flows.expressions`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from aico.errors import ValidationFailed
from flows.expressions import check_condition, check_template, trial_budget
from providers.profiles import FlowProviderChoice, check_flow_providers

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
NodeId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Template = Annotated[str, Field(max_length=20_000)]


class Position(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float
    y: float


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: NodeId
    position: Position | None = None
    label: str | None = Field(default=None, max_length=200)

    def waits(self) -> bool:
        """Whether the session stops at this node until an inbound event arrives."""
        return False

    def templates(self) -> dict[str, str]:
        """Field name -> template source, for syntax checks."""
        return {}


class StartNode(_Node):
    type: Literal["start"]


class EndNode(_Node):
    type: Literal["end"]
    reason: str = Field(default="completed", max_length=200)


class SayNode(_Node):
    type: Literal["say"]
    text: Template = Field(min_length=1)
    interruptible: bool = Field(default=True, description="whether a barge-in may cut it off")

    def templates(self) -> dict[str, str]:
        return {"text": self.text}


class ListenNode(_Node):
    type: Literal["listen"]
    into: Identifier | None = Field(default=None, description="variable that receives the text")
    def waits(self) -> bool:
        return True


class MemoryOptions(BaseModel):
    """What an llm node recalls of the session's user (or their cluster)."""

    model_config = ConfigDict(extra="forbid")
    episodic: int = Field(default=0, ge=0, le=20,
                          description="the k most relevant earlier user turns, with dates")
    budget_tokens: int = Field(default=300, ge=16, le=4000,
                               description="at most this many tokens of recalled turns")
    facts: bool = Field(default=False,
                        description="the user's current facts (extracted after each turn)")


class LLMNode(_Node):
    type: Literal["llm"]
    instructions: Template = ""
    history: bool = Field(default=True, description="include the recent conversation")
    memory: MemoryOptions | None = None
    into: Identifier | None = None
    say: bool = Field(default=True, description="stream the reply to the caller")
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=8192)

    def templates(self) -> dict[str, str]:
        return {"instructions": self.instructions}


class CollectField(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["string", "number", "integer", "boolean"] = "string"
    description: str = Field(default="", max_length=1000)
    required: bool = True


class CollectNode(_Node):
    type: Literal["collect"]
    fields: dict[Identifier, CollectField] = Field(min_length=1, max_length=50)
    prompt: Template = ""
    max_attempts: int = Field(default=3, ge=1, le=10)
    def waits(self) -> bool:
        return True

    def templates(self) -> dict[str, str]:
        return {"prompt": self.prompt}


class HttpNode(_Node):
    type: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: Template = Field(min_length=1, max_length=2000)
    headers: dict[str, Template] = {}
    body: Any = None
    into: Identifier | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    async_: bool = Field(default=False, alias="async",
                         description="wait for a tool.result posted to the signed callback URL")

    def templates(self) -> dict[str, str]:
        out = {"url": self.url}
        out.update({f"headers.{k}": v for k, v in self.headers.items()})
        if isinstance(self.body, str):
            out["body"] = self.body
        return out

    def waits(self) -> bool:
        return self.async_


class SubflowNode(_Node):
    type: Literal["subflow"]
    # A string, not a UUID: documents are stored as JSON exactly as model_dump() returns them.
    flow_id: str = Field(pattern=r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
    inputs: dict[Identifier, Template] = {}
    into: Identifier | None = None
    def waits(self) -> bool:
        return True

    def templates(self) -> dict[str, str]:
        return {f"inputs.{k}": v for k, v in self.inputs.items()}


class TransferNode(_Node):
    type: Literal["transfer"]
    to: Template = Field(min_length=1, max_length=500)
    mode: Literal["cold", "warm"] = "cold"

    def templates(self) -> dict[str, str]:
        return {"to": self.to}


class RagNode(_Node):
    """Search knowledge bases for the rendered query; the chunks found go into a variable
    (numbered, with their document titles, for an llm node to cite) and onto the session's
    events (`rag.retrieved`)."""

    type: Literal["rag"]
    knowledge_bases: list[Annotated[str, Field(
        pattern=r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")]] = Field(
        min_length=1, max_length=10)
    query: Template = Field(default="{{ user_text }}", min_length=1)
    top_k: int = Field(default=4, ge=1, le=20)
    into: Identifier = "context"

    def templates(self) -> dict[str, str]:
        return {"query": self.query}


class SetNode(_Node):
    """Assign variables from conditions' expression language: `{"count": "count + 1"}`."""

    type: Literal["set"]
    assign: dict[Identifier, str] = Field(min_length=1, max_length=50)

    @field_validator("assign")
    @classmethod
    def _expressions_parse(cls, value: dict[str, str]) -> dict[str, str]:
        for name, expr in value.items():
            problem = check_condition(expr)
            if problem:
                raise ValueError(f"assign.{name}: {problem}")
        return value


Node = Annotated[
    StartNode | EndNode | SayNode | ListenNode | LLMNode | CollectNode | HttpNode | SubflowNode
    | TransferNode | SetNode | RagNode,
    Field(discriminator="type"),
]
NODE_TYPES = ("start", "end", "say", "listen", "llm", "collect", "http", "subflow", "transfer",
              "set", "rag")


class Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    when: str | None = Field(default=None, max_length=2000,
                             description="a condition over variables; no `when` = default edge")

    @field_validator("when")
    @classmethod
    def _condition_parses(cls, value: str | None) -> str | None:
        if value is not None:
            problem = check_condition(value)
            if problem:
                raise ValueError(problem)
        return value


class VariableSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["string", "number", "integer", "boolean", "object", "array"] = "string"
    default: Any = None
    description: str = Field(default="", max_length=1000)


class FlowDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    variables: dict[Identifier, VariableSpec] = {}
    # A profile name and tuning per capability; base URLs and secrets are the organization's.
    providers: Annotated[dict[Literal["stt", "llm", "tts"], FlowProviderChoice],
                         BeforeValidator(check_flow_providers)] = {}
    nodes: list[Node] = Field(min_length=1, max_length=500)
    edges: list[Edge] = Field(default=[], max_length=2000)

    def node_map(self) -> dict[str, Any]:
        return {n.id: n for n in self.nodes}

    def outgoing(self) -> dict[str, list[Edge]]:
        out: dict[str, list[Edge]] = defaultdict(list)
        for edge in self.edges:
            out[edge.from_].append(edge)
        return dict(out)

    def start_node(self) -> StartNode:
        return next(n for n in self.nodes if isinstance(n, StartNode))

    def initial_variables(self) -> dict[str, Any]:
        return {name: spec.default for name, spec in self.variables.items()}


DOCUMENT_TRIAL_S = 0.5


def parse_flow_document(data: Any) -> FlowDocument:
    """Validate a flow document; errors name the field (and node id) at fault."""
    # Save-time trials of templates and conditions share one bound for the whole document.
    with trial_budget(DOCUMENT_TRIAL_S):
        try:
            doc = FlowDocument.model_validate(data)
        except ValidationError as exc:
            raise ValidationFailed(
                "invalid flow document", details=pydantic_error_details(exc, data)
            ) from None
        problems = _template_problems(doc)
    if problems:
        raise ValidationFailed("invalid flow document", details=problems)
    return doc


def pydantic_error_details(exc: ValidationError, data: Any) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = list(err["loc"])
        item: dict[str, Any] = {"field": ".".join(str(p) for p in loc), "message": err["msg"]}
        if len(loc) >= 2 and loc[0] in ("nodes", "edges") and isinstance(loc[1], int):
            try:
                entry = data[loc[0]][loc[1]]
                if loc[0] == "nodes":
                    item["node_id"] = entry["id"]
                    # The discriminator tag is part of pydantic's loc: keep the field path.
                    rest = [str(p) for p in loc[2:] if p != entry.get("type")]
                    item["field"] = ".".join(rest) or "type"
                    item["message"] = f"node {entry['id']!r}: {_node_message(err, entry)}"
                else:
                    item["node_id"] = entry.get("from")
            except (KeyError, IndexError, TypeError, AttributeError):
                pass
        details.append(item)
    return details


def _node_message(err: Any, entry: dict[str, Any]) -> str:
    if err["type"] == "union_tag_invalid":
        return f"unknown node type {entry.get('type')!r} (known: {', '.join(NODE_TYPES)})"
    if err["type"] == "extra_forbidden":
        return f"unknown field {err['loc'][-1]!r} for a {entry.get('type')} node"
    return err["msg"]


def _template_problems(doc: FlowDocument) -> list[dict[str, Any]]:
    problems = []
    for node in doc.nodes:
        for field, source in node.templates().items():
            problem = check_template(source)
            if problem:
                problems.append({"node_id": node.id, "field": field,
                                 "message": f"node {node.id!r}: template error: {problem}"})
    return problems


def flow_document_json_schema() -> dict[str, Any]:
    return FlowDocument.model_json_schema(by_alias=True)


def validate_for_publish(data: Any) -> FlowDocument:
    """Everything `parse_flow_document` checks, plus the graph rules a runnable flow must obey:
    one start, unique ids, no dangling edges, every node reachable from the start, and no loop
    that does not pass through a node that waits (listen, collect, async http, subflow)."""
    doc = parse_flow_document(data)
    problems: list[dict[str, Any]] = []
    nodes = doc.node_map()

    seen: set[str] = set()
    for node in doc.nodes:
        if node.id in seen:
            problems.append({"node_id": node.id, "field": "id",
                             "message": f"node id {node.id!r} is used more than once"})
        seen.add(node.id)
    starts = [n.id for n in doc.nodes if isinstance(n, StartNode)]
    if len(starts) != 1:
        for node_id in starts or [None]:  # type: ignore[list-item]
            problems.append({"node_id": node_id, "field": "type",
                             "message": f"a flow needs exactly one start node, found {len(starts)}"})
    for i, edge in enumerate(doc.edges):
        for end, name in ((edge.from_, "from"), (edge.to, "to")):
            if end not in nodes:
                problems.append({"node_id": edge.from_ if name == "to" else end,
                                 "field": f"edges.{i}.{name}",
                                 "message": f"edge {edge.from_!r} -> {edge.to!r} points at"
                                            f" unknown node {end!r}"})
        if isinstance(nodes.get(edge.from_), EndNode):
            problems.append({"node_id": edge.from_, "field": f"edges.{i}.from",
                             "message": f"end node {edge.from_!r} cannot have outgoing edges"})
    if problems:
        raise ValidationFailed("flow cannot be published", details=problems)

    out = doc.outgoing()
    reachable = _reachable(starts[0], out)
    for node in doc.nodes:
        if node.id not in reachable:
            problems.append({"node_id": node.id,
                             "message": f"node {node.id!r} is not reachable from the start"})
    for cycle in _loops_without_wait(doc, out):
        problems.append({"node_id": cycle[0],
                         "message": "loop without a listen or wait: " + " -> ".join(cycle)})
    if problems:
        raise ValidationFailed("flow cannot be published", details=problems)
    return doc


def _reachable(start: str, out: dict[str, list[Edge]]) -> set[str]:
    seen, stack = {start}, [start]
    while stack:
        for edge in out.get(stack.pop(), []):
            if edge.to not in seen:
                seen.add(edge.to)
                stack.append(edge.to)
    return seen


def _loops_without_wait(doc: FlowDocument, out: dict[str, list[Edge]]) -> list[list[str]]:
    """Cycles in the graph restricted to nodes that never wait (strongly connected components
    of size > 1, or a self-loop), each reported once, in document order."""
    running = {n.id for n in doc.nodes if not n.waits()}
    graph = {n: [e.to for e in out.get(n, []) if e.to in running] for n in running}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = [0]

    def connect(v: str) -> None:  # Tarjan; graphs are at most 500 nodes
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                components.append(comp)

    order = [n.id for n in doc.nodes if n.id in running]
    for v in order:
        if v not in index:
            connect(v)
    position = {n: i for i, n in enumerate(order)}
    return [sorted(c, key=position.__getitem__) for c in components]
