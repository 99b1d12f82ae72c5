"""Persistent user facts: after a user's turn (off the reply's path) the session's LLM extracts
`(type, value)` facts with structured output; a newer fact of a type supersedes the older one
(`db/memory_facts.py` keeps it with `superseded_at`), and an llm node with `"memory":
{"facts": true}` gets the current ones as a compact profile.

The default model is SmolLM2-135M, so the request is shaped for a very small model:

- only the message's first-person statements are sent (a question or small talk costs nothing:
  no call at all when there is none);
- a few-shot prompt, one short example per common fact type;
- the answer is constrained by a JSON schema: `type` is one of `FACT_TYPES`, `value` is one to
  three words of the user's own statement (a regex pattern; llama.cpp turns it into a grammar,
  OpenAI's strict mode honours it too), so the model cannot invent a value the user never said;
- a normaliser maps a larger model's synonyms (`home_city`, `occupation`, `favorite_color`) onto
  the same types, so one user's facts supersede each other whichever model extracted them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg

from aico.settings import Settings
from db import memory_facts as facts_db
from providers.llm import ChatMessage

MAX_STATEMENT_CHARS = 600
MAX_FACT_CHARS = 200
MAX_CANDIDATE_WORDS = 60
FACT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

# The types the extractor may answer, with what each means (the model reads this line).
FACT_TYPES: dict[str, str] = {
    "name": "what they are called", "age": "", "city": "where they live", "country": "",
    "job": "their work", "language": "one they speak", "hobby": "", "pet_name": "",
    "allergy": "", "favourite_colour": "", "favourite_food": "",
}
# Other spellings of those types (from larger models, or a flow's own words).
TYPE_SYNONYMS: dict[str, str] = {
    "first_name": "name", "full_name": "name", "user_name": "name", "nickname": "name",
    "home_city": "city", "hometown": "city", "home_town": "city", "town": "city",
    "location": "city", "lives_in": "city", "residence": "city",
    "occupation": "job", "profession": "job", "work": "job", "job_title": "job",
    "role": "job", "nationality": "country", "home_country": "country",
    "favorite_color": "favourite_colour", "favourite_color": "favourite_colour",
    "favorite_colour": "favourite_colour", "colour": "favourite_colour",
    "color": "favourite_colour", "favorite_food": "favourite_food", "dog_name": "pet_name",
    "cat_name": "pet_name", "pet": "pet_name", "allergies": "allergy", "languages": "language",
    "spoken_language": "language", "hobbies": "hobby", "interest": "hobby",
}
# One short example per common statement: a 135M model copies the shape of what it is shown.
EXAMPLES: list[tuple[str, list[tuple[str, str]]]] = [
    ("Hi, my name is Tom.", [("name", "Tom")]),
    ("My favourite colour is blue.", [("favourite_colour", "blue")]),
    ("I live in Paris now.", [("city", "Paris")]),
    ("I work as a teacher.", [("job", "teacher")]),
    ("I have a dog called Rex.", [("pet_name", "Rex")]),
    ("I am allergic to cats.", [("allergy", "cats")]),
    ("I speak German.", [("language", "German")]),
    ("I'm Eva and I live in Rome.", [("name", "Eva"), ("city", "Rome")]),
    ("I like the sea.", []),
]
SYSTEM = ("List the facts the user states about themselves, one per thing stated, as JSON."
          " Types: " + ", ".join(f"{t} ({d})" if d else t for t, d in FACT_TYPES.items()) + ".")

_FIRST_PERSON = {"i", "i'm", "im", "i've", "i'd", "my", "me", "mine"}
# Words that are never a fact's value: the value pattern leaves them out.
_NOT_VALUES = frozenset((
    "i", "i'm", "im", "i've", "i'd", "me", "my", "mine", "a", "an", "the", "is", "am", "are",
    "was", "were", "be", "been", "to", "of", "in", "on", "at", "for", "and", "or", "but", "so",
    "it", "its", "it's", "that", "this", "with", "as", "called", "named", "now", "here",
    "there", "hello", "hi", "hey", "thanks", "thank", "please", "what", "who", "where", "when",
    "how", "why", "do", "does", "did", "you", "your", "our", "we", "not", "no", "yes",
))
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_WORD = re.compile(r"[\w'-]+")


def statements(text: str) -> str:
    """The sentences of `text` in which the user speaks about themselves (first person, not a
    question): what facts can come from."""
    kept = []
    for sentence in (s.strip() for s in _SENTENCE.findall(text)):
        words = {w.lower() for w in _WORD.findall(sentence)}
        if sentence and not sentence.endswith("?") and words & _FIRST_PERSON:
            kept.append(sentence)
    return " ".join(kept)[:MAX_STATEMENT_CHARS]


def candidate_words(statement: str) -> list[str]:
    """The words a fact's value may be made of, in order, once each."""
    words = (w.strip("'-") for w in _WORD.findall(statement))
    return list(dict.fromkeys(w for w in words if w and w.lower() not in _NOT_VALUES))[
        :MAX_CANDIDATE_WORDS]


def facts_format(words: list[str]) -> dict[str, Any]:
    """The response format: at most two facts, each a known type and one to three of `words`."""
    # candidate_words keeps only word characters, apostrophes and hyphens: nothing to escape.
    word = "(" + "|".join(words) + ")"
    fact = {"type": "object", "additionalProperties": False, "required": ["type", "value"],
            "properties": {"type": {"type": "string", "enum": list(FACT_TYPES)},
                           "value": {"type": "string", "pattern": f"^{word}( {word}){{0,2}}$"}}}
    return {"type": "json_schema", "json_schema": {"name": "facts", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": ["facts"],
        "properties": {"facts": {"type": "array", "maxItems": 2, "items": fact}}}}}


def extraction_messages(statement: str) -> list[ChatMessage]:
    messages = [ChatMessage(role="system", content=SYSTEM)]
    for said, facts in EXAMPLES:
        answer = json.dumps({"facts": [{"type": t, "value": v} for t, v in facts]})
        messages += [ChatMessage(role="user", content=said),
                     ChatMessage(role="assistant", content=answer)]
    messages.append(ChatMessage(role="user", content=statement))
    return messages


def normalised_type(raw: Any) -> str | None:
    kind = re.sub(r"[^a-z0-9_]+", "_", str(raw).strip().lower()).strip("_")
    kind = TYPE_SYNONYMS.get(kind, kind)
    return kind if FACT_TYPE.match(kind) else None


def parse_facts(raw: str, *, statement: str | None = None) -> list[tuple[str, str]]:
    """The well-formed (type, value) pairs of the model's answer, types normalised; with
    `statement`, only values the user actually said (a value is one fact: its first type wins)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return []
    items = data.get("facts") if isinstance(data, dict) else None
    said = statement.lower() if statement is not None else None
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = normalised_type(item.get("type", ""))
        value = str(item.get("value", "")).strip()[:MAX_FACT_CHARS]
        if not kind or not value or value in out.values():
            continue
        if said is not None and value.lower() not in said:
            continue
        out[kind] = value  # the last statement of a type in one turn wins
    return list(out.items())


async def extract_facts(pool: asyncpg.Pool, snap: Any, text: str, *,
                        settings: Settings | None = None,
                        open_llm: Any = None) -> list[tuple[str, str]]:
    """Ask the session's LLM for the facts the user stated about themselves in `text`; each
    becomes the user's current fact of its type. Returns the facts recorded."""
    from flows.sessions import open_session_llm

    statement = statements(text)
    words = candidate_words(statement)
    if not words:
        return []  # no first-person statement: nothing to ask the model
    llm = await open_session_llm(pool, snap, open_llm=open_llm, settings=settings)
    result = await llm.complete(extraction_messages(statement),
                                response_format=facts_format(words), temperature=0.0,
                                max_tokens=80)
    recorded = []
    for kind, value in parse_facts(result.text, statement=statement):
        if await facts_db.record_fact(pool, org_id=snap["org_id"], user_id=snap["user_id"],
                                      session_id=snap["id"], type=kind, value=value):
            recorded.append((kind, value))
    return recorded


async def facts_block(pool: asyncpg.Pool, snap: Any) -> str:
    """The user's current facts as a compact profile; "" when none is known."""
    rows = await facts_db.current_facts(pool, org_id=snap["org_id"], user_id=snap["user_id"])
    if not rows:
        return ""
    return "What is known about this user:\n" + "\n".join(
        f"- {r['type'].replace('_', ' ')}: {r['value']}" for r in rows)
