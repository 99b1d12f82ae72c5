"""The flow the phone tests call, and the lines it says."""

from __future__ import annotations

from typing import Any

GREETING = "Hello, this is the bakery. Say hours, or press one."
HOURS = "We are open from nine to five."
PRESSED = "You pressed one. Thank you."
MENU = ("Our menu has fresh bread, croissants, apple pie, carrot cake and cookies. "
        "We bake sourdough every morning. The last item today is lemon tart.")
CONNECTING = "Connecting you now."
SORRY = "Sorry, I did not catch that."
CANNOT_TRANSFER = "I cannot connect you to that number."
TRANSFER_OK = "+12125550199"
TRANSFER_PREMIUM = "+19005551234"


def phone_flow() -> dict[str, Any]:
    """Speech or keypad: hours, one, the menu (long: to talk over), 9 → a transfer to an allowed
    number, 8 → a transfer to a premium-rate number (refused by the toll-fraud guard: the
    caller hears why and stays on the line)."""
    return {"name": "Phone bakery", "variables": {
        "choice": {"type": "string", "default": ""},
        "voice_no_input_s": {"type": "number", "default": 120},
    }, "nodes": [
        {"id": "start", "type": "start"},
        {"id": "greet", "type": "say", "text": GREETING},
        {"id": "listen", "type": "listen", "into": "choice"},
        {"id": "hours", "type": "say", "text": HOURS},
        {"id": "pressed", "type": "say", "text": PRESSED},
        {"id": "menu", "type": "say", "text": MENU},
        {"id": "connecting", "type": "say", "text": CONNECTING},
        {"id": "transfer_ok", "type": "transfer", "to": TRANSFER_OK},
        {"id": "transfer_premium", "type": "transfer", "to": TRANSFER_PREMIUM},
        {"id": "sorry", "type": "say", "text": SORRY},
        {"id": "cannot_transfer", "type": "say", "text": CANNOT_TRANSFER},
    ], "edges": [
        {"from": "start", "to": "greet"},
        {"from": "greet", "to": "listen"},
        {"from": "listen", "to": "pressed", "when": "choice == '1'"},
        {"from": "listen", "to": "connecting", "when": "choice == '9'"},
        {"from": "listen", "to": "transfer_premium", "when": "choice == '8'"},
        {"from": "listen", "to": "hours", "when": "contains(choice, 'hour')"},
        {"from": "listen", "to": "menu", "when": "contains(choice, 'menu')"},
        {"from": "listen", "to": "sorry"},
        {"from": "hours", "to": "listen"},
        {"from": "pressed", "to": "listen"},
        {"from": "menu", "to": "listen"},
        {"from": "sorry", "to": "listen"},
        {"from": "connecting", "to": "transfer_ok"},
        {"from": "transfer_premium", "to": "cannot_transfer"},  # a refused transfer goes on
        {"from": "cannot_transfer", "to": "listen"},
    ]}
