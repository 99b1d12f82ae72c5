"""Small valid flow documents for tests that need one."""

from __future__ import annotations

from typing import Any


def greeting_flow(name: str = "Greeter", text: str = "Hello there.") -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "hello", "type": "say", "text": text},
            {"id": "done", "type": "end", "reason": "done"},
        ],
        "edges": [{"from": "start", "to": "hello"}, {"from": "hello", "to": "done"}],
    }
