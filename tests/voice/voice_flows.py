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


def bakery_flow(*, no_input_s: float = 30.0, story: bool = False,
                menu_interruptible: bool = True,
                min_speech_s: float | None = None) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"id": "start", "type": "start"},
        {"id": "greet", "type": "say", "text": GREETING},
        {"id": "listen", "type": "listen", "into": "choice"},
        {"id": "reprompt", "type": "say", "text": REPROMPT},
        {"id": "hours", "type": "say", "text": HOURS},
        {"id": "order", "type": "say", "text": ORDER},
        {"id": "menu", "type": "say", "text": MENU, "interruptible": menu_interruptible},
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
    variables: dict[str, Any] = {
        "choice": {"type": "string", "default": ""},
        "voice_no_input_s": {"type": "number", "default": no_input_s},
    }
    if min_speech_s is not None:
        variables["voice_min_speech_s"] = {"type": "number", "default": min_speech_s}
    return {"name": "Bakery", "variables": variables, "nodes": nodes, "edges": edges}


KEYPAD_GREETING = "Press one for our hours, or nine to speak to a person."
CONNECTING = "Connecting you now."
TRANSFER_TO = "+15550100"


def keypad_flow(*, transfer_mode: str = "cold") -> dict[str, Any]:
    """Digits choose: 1 → the hours, 9 → a transfer to a person."""
    return {"name": "Keypad", "variables": {
        "key": {"type": "string", "default": ""},
        "voice_no_input_s": {"type": "number", "default": 60},
    }, "nodes": [
        {"id": "start", "type": "start"},
        {"id": "greet", "type": "say", "text": KEYPAD_GREETING},
        {"id": "listen", "type": "listen", "into": "key"},
        {"id": "hours", "type": "say", "text": HOURS},
        {"id": "connecting", "type": "say", "text": CONNECTING},
        {"id": "transfer", "type": "transfer", "to": TRANSFER_TO, "mode": transfer_mode},
        {"id": "sorry", "type": "say", "text": SORRY},
    ], "edges": [
        {"from": "start", "to": "greet"},
        {"from": "greet", "to": "listen"},
        {"from": "listen", "to": "hours", "when": "key == '1'"},
        {"from": "listen", "to": "connecting", "when": "key == '9'"},
        {"from": "listen", "to": "sorry"},
        {"from": "hours", "to": "listen"},
        {"from": "sorry", "to": "listen"},
        {"from": "connecting", "to": "transfer"},
        {"from": "transfer", "to": "listen"},
    ]}


SHORT_GREETING = "Hello, this is the bakery."
TIME_UP = "Sorry, our time is up."
STILL_HERE = "I am still here."


def timed_flow(*, max_duration_s: float, flow_ends_it: bool) -> dict[str, Any]:
    """A call limited to `max_duration_s`: the flow says goodbye itself when `flow_ends_it`,
    otherwise it only says it is still there (and the server hangs up 5 s later)."""
    handler: list[dict[str, Any]] = [{"id": "time_up", "type": "say", "text": TIME_UP},
                                     {"id": "end", "type": "end", "reason": "time_up"}]
    tail = [{"from": "time_up", "to": "end"}]
    if not flow_ends_it:
        handler = [{"id": "time_up", "type": "say", "text": STILL_HERE}]
        tail = [{"from": "time_up", "to": "listen"}]
    return {"name": "Timed", "variables": {
        "choice": {"type": "string", "default": ""},
        "voice_max_duration_s": {"type": "number", "default": max_duration_s},
        "voice_no_input_s": {"type": "number", "default": 120},
    }, "nodes": [
        {"id": "start", "type": "start"},
        {"id": "greet", "type": "say", "text": SHORT_GREETING},
        {"id": "listen", "type": "listen", "into": "choice"},
        *handler,
        {"id": "sorry", "type": "say", "text": SORRY},
    ], "edges": [
        {"from": "start", "to": "greet"},
        {"from": "greet", "to": "listen"},
        {"from": "listen", "to": "time_up", "when": "timer_fired == 'max_duration'"},
        {"from": "listen", "to": "sorry"},
        {"from": "sorry", "to": "listen"},
        *tail,
    ]}
