"""The LiveKit transport's parts that run without a LiveKit server: the tokens' grants and
the audio frame conversion. (Joining a room is documented in docs/voice-protocol.md.)"""

from __future__ import annotations

import numpy as np
from livekit import api

from actors.transports.livekit import (
    LIVEKIT_RATE,
    agent_token,
    caller_token,
    frame_to_pcm,
    pcm_to_frames,
)


def test_the_agent_token_joins_one_room_with_audio_and_data_and_nothing_more() -> None:
    jwt = agent_token(api_key="devkey", api_secret="secret-secret-secret-secret-32b!",
                      room="call-42")
    claims = api.TokenVerifier("devkey", "secret-secret-secret-secret-32b!").verify(jwt)
    grants = claims.video
    assert claims.identity == "aico-agent"
    assert grants.room_join and grants.room == "call-42"
    assert grants.can_publish and grants.can_subscribe and grants.can_publish_data
    assert grants.can_publish_sources == ["microphone"]
    assert not grants.room_admin and not grants.room_create and not grants.room_list

    caller = api.TokenVerifier("devkey", "secret-secret-secret-secret-32b!").verify(
        caller_token(api_key="devkey", api_secret="secret-secret-secret-secret-32b!",
                     room="call-42", identity="caller-1"))
    assert caller.identity == "caller-1" and caller.video.room == "call-42"
    assert not caller.video.agent and not caller.video.room_admin


def test_agent_audio_becomes_10ms_48k_frames_and_back() -> None:
    rate = 22050
    t = np.arange(rate // 2) / rate  # half a second of a 440 Hz tone
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes()
    frames = pcm_to_frames(tone, rate)
    assert all(f.sample_rate == LIVEKIT_RATE and f.num_channels == 1
               and f.samples_per_channel == 480 for f in frames)
    assert len(frames) == 50  # 0.5 s in 10 ms frames
    back = np.frombuffer(b"".join(frame_to_pcm(f) for f in frames), dtype=np.int16)
    assert back.size == 50 * 480
    # Same pitch after resampling: the spectrum peaks at 440 Hz.
    spectrum = np.abs(np.fft.rfft(back[:LIVEKIT_RATE // 2]))
    peak_hz = np.argmax(spectrum) * LIVEKIT_RATE / (LIVEKIT_RATE // 2)
    assert abs(peak_hz - 440) < 5


def test_a_stereo_caller_frame_is_mixed_to_mono() -> None:
    from livekit import rtc

    left = np.full(480, 1000, np.int16)
    right = np.full(480, 3000, np.int16)
    stereo = np.stack([left, right], axis=1).reshape(-1).tobytes()
    frame = rtc.AudioFrame(data=stereo, sample_rate=48000, num_channels=2,
                           samples_per_channel=480)
    mono = np.frombuffer(frame_to_pcm(frame), dtype=np.int16)
    assert mono.size == 480 and int(mono[0]) == 2000
