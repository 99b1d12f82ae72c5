"""G.711 μ-law as the phone network speaks it: the reference table's values at the ends and at
zero, every code decodes and re-encodes to itself, and speech survives the round trip within
the codec's step size."""

from __future__ import annotations

import numpy as np

from actors.transports.mulaw import mulaw_to_pcm16, pcm16_to_mulaw


def pcm(*samples: int) -> bytes:
    return np.array(samples, dtype="<i2").tobytes()


def samples(data: bytes) -> list[int]:
    return np.frombuffer(data, dtype="<i2").tolist()


def test_reference_values():
    # ITU-T G.711: 0x00/0x80 are the extremes (±32124), 0xFF/0x7F are zero.
    assert samples(mulaw_to_pcm16(bytes([0x00, 0x80, 0xFF, 0x7F, 0x7E, 0xFE]))) == [
        -32124, 32124, 0, 0, -8, 8]
    assert pcm16_to_mulaw(pcm(0, 32767, -32768, 8, -8)) == bytes([0xFF, 0x80, 0x00, 0xFE, 0x7E])


def test_every_code_round_trips_and_speech_keeps_its_shape():
    codes = bytes(range(256))
    decoded = mulaw_to_pcm16(codes)
    back = pcm16_to_mulaw(decoded)
    # 0x7F and 0xFF both mean zero; zero encodes as 0xFF.
    assert [c for c, b in zip(codes, back, strict=True) if c != b] == [0x7F]
    t = np.arange(8000) / 8000
    wave = (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2")
    heard = np.frombuffer(mulaw_to_pcm16(pcm16_to_mulaw(wave.tobytes())), dtype="<i2")
    error = np.abs(heard.astype(np.int32) - wave.astype(np.int32))
    # The step at ±12000 is 512: the error stays within half of it plus rounding.
    assert error.max() <= 512 and len(pcm16_to_mulaw(wave.tobytes())) == 8000
