"""The demo flow `aico up` seeds into the `demo` organization: greet, listen, branch on what the
caller said, answer with the LLM, say goodbye, end."""

from __future__ import annotations

from typing import Any


def demo_flow_document() -> dict[str, Any]:
    return {
        "name": "Demo assistant",
        "description": "Greets the caller, answers one question with the LLM, then says goodbye.",
        "variables": {"question": {"type": "string", "default": ""}},
        "nodes": [
            {"id": "start", "type": "start", "position": {"x": 0, "y": 0}},
            {"id": "greet", "type": "say", "position": {"x": 0, "y": 100},
             "text": "Hello! I'm the AICO demo assistant. Ask me anything, or say goodbye."},
            {"id": "listen", "type": "listen", "into": "question",
             "position": {"x": 0, "y": 200}},
            {"id": "answer", "type": "llm", "position": {"x": -150, "y": 300},
             "instructions": "You are a friendly, concise assistant. Answer in one or two"
                             " sentences.", "history": True},
            {"id": "more", "type": "say", "position": {"x": -150, "y": 400},
             "text": "Anything else?"},
            {"id": "bye", "type": "say", "position": {"x": 150, "y": 300},
             "text": "Goodbye, and thanks for trying AICO!"},
            {"id": "end", "type": "end", "reason": "caller_done", "position": {"x": 150, "y": 400}},
        ],
        "edges": [
            {"from": "start", "to": "greet"},
            {"from": "greet", "to": "listen"},
            {"from": "listen", "to": "bye",
             "when": "contains(question, 'bye') or contains(question, 'no thanks')"},
            {"from": "listen", "to": "answer"},
            {"from": "answer", "to": "more"},
            {"from": "more", "to": "listen"},
            {"from": "bye", "to": "end"},
        ],
    }
