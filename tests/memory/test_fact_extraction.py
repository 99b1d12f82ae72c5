"""The facts extractor's request and answer handling, without a model: what is sent (only the
user's first-person statements; nothing at all for a question), the schema the answer is held
to (known types, values made of the user's own words), and how an answer is read (types
normalised, values the user never said dropped)."""

from __future__ import annotations

import json
import re

from flows.memory_facts import (
    FACT_TYPES,
    candidate_words,
    extraction_messages,
    facts_format,
    parse_facts,
    statements,
)


def test_only_first_person_statements_are_sent_and_a_question_sends_nothing():
    assert statements("Hello! My home city is Lisbon. What's the weather there?") == (
        "My home city is Lisbon.")
    assert statements("What is my dog's name?") == ""
    assert statements("The weather is nice today.") == ""
    assert candidate_words(statements("Any tips for tonight?")) == []
    assert candidate_words("I'm a software engineer at Acme.") == ["software", "engineer", "Acme"]


def test_the_answer_is_held_to_known_types_and_the_users_own_words():
    words = candidate_words("I'm a software engineer at Acme.")
    fact = facts_format(words)["json_schema"]["schema"]["properties"]["facts"]["items"]
    assert fact["properties"]["type"]["enum"] == list(FACT_TYPES)
    pattern = re.compile(fact["properties"]["value"]["pattern"])
    assert pattern.match("software engineer") and pattern.match("Acme")
    assert not pattern.match("Paris") and not pattern.match("software engineer at Acme")
    messages = extraction_messages("I'm a software engineer at Acme.")
    assert messages[0].role == "system" and "job" in messages[0].content
    assert messages[-1].content == "I'm a software engineer at Acme."
    # Every few-shot answer is itself valid under the schema's types.
    for m in messages[1:-1]:
        if m.role == "assistant":
            assert all(f["type"] in FACT_TYPES for f in json.loads(m.content)["facts"])


def test_types_are_normalised_and_values_the_user_never_said_are_dropped():
    said = "My home city is Lisbon and my favourite color is green."
    answer = json.dumps({"facts": [
        {"type": "home_city", "value": "Lisbon"}, {"type": "Favorite Color", "value": "green"},
        {"type": "pet_name", "value": "Rex"}, {"type": "allergy", "value": "green"}]})
    assert parse_facts(answer, statement=said) == [("city", "Lisbon"),
                                                   ("favourite_colour", "green")]
    assert parse_facts("not json", statement=said) == []
    assert parse_facts(json.dumps({"facts": [{"type": "!!", "value": "x"}]})) == []
