"""A streaming self-hosted STT (Vosk) reached through its Serve deployment.

The recognizer lives in a replica (`serve_apps/models/streaming_stt.py`); this side keeps the
current utterance's audio so that, when a call lands on a replica that does not hold the
stream (several replicas, a restart), it can resend the utterance so far and carry on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from providers.serve_clients import ServeSTT, _typed
from providers.stt import SpeechEvent, SpeechStream
from providers.vosk_stt import run_speech_stream


class ServeStreamingSTT(ServeSTT):
    def _stream_impl(self, *, sample_rate: int, language: str | None) -> SpeechStream:
        return ServeSpeechStream(self, self._handle, sample_rate=sample_rate, language=language)


class ServeSpeechStream(SpeechStream):
    def __init__(self, stt: ServeSTT, handle: Any, *, sample_rate: int,
                 language: str | None) -> None:
        self._handle = handle
        self._id = uuid.uuid4().hex
        self._utterance = bytearray()
        self.replays = 0
        super().__init__(stt, sample_rate=sample_rate, language=language)

    async def _call(self, pcm16: bytes, *, end: bool) -> list[SpeechEvent]:
        try:
            res = await self._handle.stream_accept.remote(
                self._id, len(self._utterance), pcm16, self.sample_rate, self.language, end)
            if res["replay"]:
                self.replays += 1
                res = await self._handle.stream_accept.remote(
                    self._id, 0, bytes(self._utterance) + pcm16, self.sample_rate,
                    self.language, end)
        except Exception as err:  # noqa: BLE001 - mapped to a typed error
            raise _typed(err, self._stt.kind) from None
        if end:
            self._utterance.clear()
        else:
            self._utterance.extend(pcm16)
        return res["events"]

    async def _run(self, frames: asyncio.Queue, emit: Callable[[SpeechEvent], None]) -> None:
        async def finish() -> SpeechEvent | None:
            events = await self._call(b"", end=True)
            for event in events[:-1]:
                emit(event)
            return events[-1] if events and events[-1].type == "final" else None

        try:
            await run_speech_stream(frames, emit, stt=self._stt,
                                    accept=lambda pcm: self._call(pcm, end=False),
                                    finish=finish)
        finally:
            try:
                await asyncio.shield(self._handle.stream_close.remote(self._id))
            except Exception:  # noqa: BLE001, S110 - the replica drops idle streams itself
                pass
