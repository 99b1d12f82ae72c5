"""Per-flow voice options and voice tokens, without a call."""

from __future__ import annotations

import uuid

from actors.options import voice_options
from actors.speech_out import first_clause, heard_words, spoken_form
from aico.settings import VoiceSettings
from providers.tts import opening_clause
from serve_apps.routes.voice import mint_voice_token, verify_voice_token


def test_a_flow_overrides_the_server_defaults_and_a_bad_value_is_ignored() -> None:
    server = VoiceSettings(no_input_s=12, barge_in_min_words=1)
    opts = voice_options({"voice_no_input_s": 3, "voice_end_of_turn_silence_s": "oops",
                          "choice": "x"}, settings=server)
    assert opts.no_input_s == 3  # the flow wins
    assert opts.barge_in_min_words == 1  # the server's
    assert opts.end_of_turn_silence_s == 0.45  # a bad flow value falls back to the default


def test_voice_tokens_expire_and_belong_to_one_session(settings) -> None:
    sid, other = uuid.uuid4(), uuid.uuid4()
    token, expires = mint_voice_token(settings, sid, ttl_s=60, now=1000)
    assert expires == 1060
    assert verify_voice_token(settings, sid, token, now=1059)
    assert not verify_voice_token(settings, sid, token, now=1061)
    assert not verify_voice_token(settings, other, token, now=1001)
    assert not verify_voice_token(settings, sid, "1060." + "0" * 64, now=1001)
    assert not verify_voice_token(settings, sid, "garbage", now=1001)


def test_heard_text_and_first_clause() -> None:
    assert heard_words("one two three four", 0.5) == "one two"
    assert heard_words("one two three four", 0.0) == ""
    long = "Well, there are many things we bake every single morning for all of our customers."
    assert first_clause(long) == [long]  # the clause before the comma is too short
    longer = ("Every morning at five, we bake bread, rolls, croissants and pies for all of "
              "the shops in town.")
    assert first_clause(longer)[0] == "Every morning at five,"


def test_an_llm_reply_opens_at_a_comma_a_new_phrase_or_six_words() -> None:
    # A comma after three words ends the opening, even when a phrase started before it.
    assert opening_clause("Sure, we open at seven, and") == ("Sure, we open at seven,", "and")
    # No comma: the words before a complete word that starts a new phrase.
    assert opening_clause("Our bakery opens at seven ") == ("Our bakery opens", "at seven ")
    assert opening_clause("Our bakery opens at") is None  # "at" may be "attention"
    assert opening_clause("We sell bread and") is None
    assert opening_clause("We sell fresh bread and cakes") == ("We sell fresh bread",
                                                              "and cakes")
    # "to" and "of" bind to their neighbours; six words without a break are a clause.
    text = "I would like to tell you all of our prices "
    assert opening_clause(text) == ("I would like to tell you", "all of our prices ")
    assert opening_clause("I would like to tell") is None
    assert opening_clause("I would like to tell yo") is None  # "yo" may be "your"
    # A finished short sentence goes whole (the sentence path).
    assert opening_clause("We open at seven. And") is None
    # The voice carries on after a cut the reply did not punctuate; the transcript does not
    # get the comma.
    assert spoken_form("Our bakery opens") == "Our bakery opens,"
    assert spoken_form("Sure, we open at seven,") == "Sure, we open at seven,"
    assert spoken_form("We open at seven.") == "We open at seven."
