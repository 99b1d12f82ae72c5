"""What the flow engine sends to the LLM: the channel hint, the bounded history window, the
`collect` extraction request and the validation of its structured answer."""

from __future__ import annotations

import json
from typing import Any

from flows.document import CollectNode, LLMNode
from flows.expressions import render

# The history kept in session state: enough context for a conversational reply, bounded so a
# step costs the same at turn 5 and at turn 5,000.
HISTORY_WINDOW = 20
MAX_HISTORY_MESSAGE_CHARS = 4_000

# What a spoken channel's LLM is told. It asks for plain words only: no TTS path here reads
# markup (an SSML `<break>` would be said aloud).
SPOKEN_HINT = (
    "You are speaking on a live voice call. Reply in short, plain, speakable sentences."
    " No markdown, lists, emoji or URLs. Spell out numbers and symbols as they are said."
)
CHANNEL_HINTS = {
    "voice": SPOKEN_HINT,
    "phone": SPOKEN_HINT,  # the same words, so a phone call's prompt finds the warmed slots
    "chat": "You are chatting in a text window. You may format replies with Markdown.",
    "whatsapp": ("You are chatting on WhatsApp. Keep replies short; you may use *bold* and"
                 " _italic_, no tables or headings."),
}
# Channels whose replies are spoken as they stream: the LLM is told so (`ChatLLM.chat`'s
# `spoken`), and a local model writes a reply's opening first.
SPOKEN_CHANNELS = frozenset({"voice", "phone"})


def append_history(history: list[dict[str, str]], role: str, text: str) -> list[dict[str, str]]:
    history = [*history, {"role": role, "content": text[:MAX_HISTORY_MESSAGE_CHARS]}]
    return history[-HISTORY_WINDOW:]


def llm_messages(node: LLMNode, *, variables: dict[str, Any], history: list[dict[str, str]],
                 channel: str) -> list[dict[str, str]]:
    # The channel's hint first: every flow's prompt on a channel starts with the same tokens,
    # which a self-hosted model keeps read in each of its slots (serve_apps.models.llm), so a
    # turn reads only its flow's instructions and the conversation. The node's own
    # instructions come after it, the more specific last.
    system = "\n\n".join(
        part for part in (CHANNEL_HINTS.get(channel, ""), render(node.instructions, variables))
        if part
    )
    messages = [{"role": "system", "content": system}]
    if node.history:
        messages.extend(history)
    elif history and history[-1]["role"] == "user":
        messages.append(history[-1])
    if len(messages) == 1:
        # Chat templates expect a user turn; an llm node that opens a flow has none yet.
        messages.append({"role": "user", "content": "(the conversation starts now)"})
    return messages


_JSON_TYPES = {"string": "string", "number": "number", "integer": "integer",
               "boolean": "boolean"}


def collect_request(node: CollectNode, *, text: str,
                    variables: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """(messages, response_format) asking the model to extract the node's fields from `text`."""
    properties = {
        name: {"type": [_JSON_TYPES[f.type], "null"], "description": f.description or name}
        for name, f in node.fields.items()
    }
    schema = {"type": "object", "properties": properties, "required": list(node.fields),
              "additionalProperties": False}
    known = {k: variables[k] for k in node.fields if variables.get(k) is not None}
    fields = "\n".join(
        f"- {name} ({f.type}): {f.description or name}" for name, f in node.fields.items()
    )
    system = (
        "Extract these fields from the user's message. Use null for anything the user did not"
        f" state. Answer with JSON only.\n{fields}"
        + (f"\nAlready known: {json.dumps(known)}" if known else "")
    )
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    response_format = {"type": "json_schema",
                       "json_schema": {"name": "collect", "schema": schema, "strict": True}}
    return messages, response_format


def validated_fields(node: CollectNode, raw: str) -> dict[str, Any]:
    """The fields of the model's JSON answer that have the declared type; others dropped."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    for name, spec in node.fields.items():
        value = _coerce(spec.type, data.get(name))
        if value is not None:
            out[name] = value
    return out


def _coerce(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "string":
        text = str(value).strip()
        return text or None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "false", "no"):
            return value.lower() in ("true", "yes")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if kind == "integer":
        return int(number) if number.is_integer() else None
    return number


def missing_required(node: CollectNode, variables: dict[str, Any]) -> list[str]:
    return [n for n, f in node.fields.items() if f.required and variables.get(n) is None]
