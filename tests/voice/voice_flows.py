"""Flows the voice tests call: deterministic say/listen branches, and one LLM reply."""

from __future__ import annotations

from typing import Any

GREETING = "Hello, this is the bakery. Say order, or hours, or menu."
HOURS = "We are open from nine to five."


def says_the_hours(heard: str) -> bool:
    """Whether a transcript of the agent is the HOURS line. tiny.en sometimes hears "from" as
    "for", so the check is on the words it keeps: open, nine, five."""
    heard = heard.lower()
    return ("we are open" in heard and any(w in heard for w in ("9", "nine"))
            and any(w in heard for w in ("5", "five")))
ORDER = "Great, what would you like to order?"
MENU = ("Our menu has fresh bread, croissants, apple pie, carrot cake and cookies. "
        "We bake sourdough every morning. The last item today is lemon tart.")
REPROMPT = "Are you still there?"
BYE = "Goodbye, thanks for calling."
SORRY = "Sorry, I did not catch that."


def bakery_flow(*, no_input_s: float = 30.0, story: bool = False) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"id": "start", "type": "start"},
        {"id": "greet", "type": "say", "text": GREETING},
        {"id": "listen", "type": "listen", "into": "choice"},
        {"id": "reprompt", "type": "say", "text": REPROMPT},
        {"id": "hours", "type": "say", "text": HOURS},
        {"id": "order", "type": "say", "text": ORDER},
        {"id": "menu", "type": "say", "text": MENU},
        {"id": "bye", "type": "say", "text": BYE},
        {"id": "end", "type": "end", "reason": "caller_done"},
        {"id": "sorry", "type": "say", "text": SORRY},
    ]
    edges = [
        {"from": "start", "to": "greet"},
        {"from": "greet", "to": "listen"},
        {"from": "listen", "to": "reprompt", "when": "timer_fired == 'no_input'"},
        {"from": "listen", "to": "bye", "when": "contains(choice, 'bye')"},
        {"from": "listen", "to": "hours", "when": "contains(choice, 'hour')"},
        {"from": "listen", "to": "order", "when": "contains(choice, 'order')"},
        {"from": "listen", "to": "menu", "when": "contains(choice, 'menu')"},
    ]
    if story:
        nodes.append({"id": "story", "type": "llm", "max_tokens": 160, "temperature": 0,
                      "history": False,
                      "instructions": "Tell a long, detailed story about a baker and a dragon."
                                      " Use many short sentences."})
        edges.append({"from": "listen", "to": "story", "when": "contains(choice, 'story')"})
        edges.append({"from": "story", "to": "listen"})
    edges += [
        {"from": "listen", "to": "sorry"},
        {"from": "reprompt", "to": "listen"},
        {"from": "hours", "to": "listen"},
        {"from": "order", "to": "listen"},
        {"from": "menu", "to": "listen"},
        {"from": "sorry", "to": "listen"},
        {"from": "bye", "to": "end"},
    ]
    return {"name": "Bakery", "variables": {
        "choice": {"type": "string", "default": ""},
        "voice_no_input_s": {"type": "number", "default": no_input_s},
    }, "nodes": nodes, "edges": edges}
