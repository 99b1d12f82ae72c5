"""Voice options: turn taking, barge-in and timers, server defaults overridden per flow.

Server defaults come from `AICO_VOICE_*` environment variables (`settings.voice`). A flow
overrides them by declaring variables named `voice_<option>` with a default, e.g.
`"variables": {"voice_no_input_s": {"type": "number", "default": 6}}`: the builder already
edits variables, and the value is pinned with the session like every other variable.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aico.settings import VoiceSettings, get_settings


class VoiceOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # End of turn: this much silence after speech ends the caller's turn (the fallback
    # maximum when the end-of-turn model is on: a turn it judges finished ends sooner).
    end_of_turn_silence_s: float = Field(0.45, ge=0.1, le=5)
    # Ask the smart-turn model at each pause whether the caller has finished.
    end_of_turn_model: bool = True
    # Speech shorter than this (a click, a breath) is not a turn.
    min_speech_s: float = Field(0.12, ge=0.03, le=2)
    vad_activation: float = Field(0.5, gt=0, lt=1)
    vad_deactivation: float = Field(0.35, gt=0, lt=1)
    # Barge-in: caller speech over the agent interrupts once it lasts this long and (when
    # `barge_in_min_words` > 0) the STT hears at least that many words in it.
    barge_in_min_speech_s: float = Field(0.6, ge=0.1, le=5)
    barge_in_min_words: int = Field(0, ge=0, le=10)
    # Timers (`timer.fired` events): no input after the agent stopped speaking, whole call.
    no_input_s: float = Field(8.0, ge=0.5, le=600)
    max_duration_s: float = Field(1800.0, ge=5, le=86400)


def voice_options(variables: dict[str, Any] | None, *,
                  settings: VoiceSettings | None = None) -> VoiceOptions:
    """Defaults, then server settings, then the flow's `voice_*` variables."""
    settings = settings or get_settings().voice
    merged: dict[str, Any] = {k: v for k, v in settings.model_dump().items()
                              if v is not None and k in VoiceOptions.model_fields}
    for name, value in (variables or {}).items():
        if name.startswith("voice_") and value is not None:
            merged[name.removeprefix("voice_")] = value
    try:
        return VoiceOptions.model_validate(merged)
    except ValidationError:
        # A bad flow value must not break the call: keep the valid ones.
        good = {}
        for key, value in merged.items():
            try:
                VoiceOptions.model_validate({key: value})
                good[key] = value
            except ValidationError:
                pass
        return VoiceOptions.model_validate(good)
