"""The LiveKit transport: the session actor joins the call's room as the agent participant.

    token = agent_token(api_key=..., api_secret=..., room="call-123", identity="aico-agent")
    transport = await LiveKitTransport.join(url="ws://localhost:7880", token=token)
    await run_call(transport, host, session_id)          # the same bridge as the WebSocket

It subscribes to the first remote participant's microphone track (a browser, or a phone via
LiveKit SIP), publishes its own `aico-agent` track, sends the JSON events of
docs/voice-protocol.md as data packets on topic `aico`, and turns SIP DTMF into `dtmf`
control messages. The caller leaving the room (or the room closing) is a hang-up.

Audio: LiveKit runs at 48 kHz mono; the caller's frames are handed on at 48 kHz (the pipeline
resamples to 16 kHz once); the agent's PCM (the TTS rate) is resampled to 48 kHz and cut into
10 ms frames for `rtc.AudioSource`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import timedelta
from typing import Any

from actors.transports.frame_limits import ControlBucket
from aico.settings import LimitSettings
from aico.voice_messages import Dtmf, Hangup, Interrupted, ServerModel, Start, Stop, to_wire
from providers.pcm import resample_pcm16

log = logging.getLogger("aico.actors.transports.livekit")

LIVEKIT_RATE = 48000
FRAME_MS = 10
EVENT_TOPIC = "aico"


def agent_token(*, api_key: str, api_secret: str, room: str, identity: str = "aico-agent",
                name: str = "AICO agent", ttl: timedelta = timedelta(hours=2)) -> str:
    """A join token for the agent: this room only, publish and subscribe audio, data."""
    from livekit import api

    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True,
                             can_publish_data=True, can_publish_sources=["microphone"],
                             agent=True)
    return (api.AccessToken(api_key, api_secret).with_identity(identity).with_name(name)
            .with_kind("agent").with_grants(grants).with_ttl(ttl).to_jwt())


def caller_token(*, api_key: str, api_secret: str, room: str, identity: str,
                 ttl: timedelta = timedelta(minutes=10)) -> str:
    """A join token for the caller's browser: this room, microphone only, no admin."""
    from livekit import api

    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True,
                             can_publish_data=True, can_publish_sources=["microphone"])
    return (api.AccessToken(api_key, api_secret).with_identity(identity)
            .with_grants(grants).with_ttl(ttl).to_jwt())


def pcm_to_frames(pcm16: bytes, sample_rate: int) -> list[Any]:
    """Agent PCM16 at any rate → 10 ms `rtc.AudioFrame`s at 48 kHz (the last one padded)."""
    from livekit import rtc

    pcm = resample_pcm16(pcm16, sample_rate, LIVEKIT_RATE)
    step = LIVEKIT_RATE * FRAME_MS // 1000 * 2
    frames = []
    for i in range(0, len(pcm), step):
        chunk = pcm[i:i + step].ljust(step, b"\0")
        frames.append(rtc.AudioFrame(data=chunk, sample_rate=LIVEKIT_RATE, num_channels=1,
                                     samples_per_channel=step // 2))
    return frames


def frame_to_pcm(frame: Any) -> bytes:
    """A received `rtc.AudioFrame` → mono PCM16 bytes at the frame's own rate."""
    import numpy as np

    data = np.frombuffer(bytes(frame.data), dtype=np.int16)
    if frame.num_channels > 1:
        data = data.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
    return data.tobytes()


class LiveKitTransport:
    def __init__(self, room: Any, source: Any, *, limits: LimitSettings | None = None) -> None:
        self.room = room
        self.source = source
        limits = limits or LimitSettings()
        # SIP DTMF is a control frame like the WebSocket's: the same per-connection bucket.
        self.control = ControlBucket(rate_per_s=limits.voice_control_per_s,
                                     burst=limits.voice_control_burst)
        self.sample_rate = LIVEKIT_RATE
        self._inbox: asyncio.Queue[bytes | Dtmf | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._caller: str | None = None

    @classmethod
    async def join(cls, *, url: str, token: str) -> LiveKitTransport:
        from livekit import rtc

        room = rtc.Room()
        source = rtc.AudioSource(LIVEKIT_RATE, 1, queue_size_ms=200)
        transport = cls(room, source)
        transport._wire(room)
        await room.connect(url, token, options=rtc.RoomOptions(auto_subscribe=True))
        track = rtc.LocalAudioTrack.create_audio_track("aico-agent", source)
        await room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        for participant in room.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    transport._on_track(publication.track, participant)
        return transport

    def _wire(self, room: Any) -> None:
        room.on("track_subscribed", lambda track, _pub, participant:
                self._on_track(track, participant))
        room.on("participant_disconnected", self._on_left)
        room.on("disconnected", lambda *_: self._inbox.put_nowait(None))
        room.on("sip_dtmf_received", self._on_dtmf)

    def _on_dtmf(self, dtmf: Any) -> None:
        if self.control.allow():
            self._inbox.put_nowait(Dtmf(digit=str(dtmf.digit)))
        elif self.control.refused == 1:
            log.warning("caller %s sends DTMF faster than allowed: dropping", self._caller)

    def _on_track(self, track: Any, participant: Any) -> None:
        from livekit import rtc

        if track.kind != rtc.TrackKind.KIND_AUDIO or self._caller not in (None,
                                                                          participant.identity):
            return
        self._caller = participant.identity
        stream = rtc.AudioStream(track, sample_rate=LIVEKIT_RATE, num_channels=1)

        async def pump() -> None:
            async for event in stream:
                self._inbox.put_nowait(frame_to_pcm(event.frame))

        task = asyncio.get_running_loop().create_task(pump())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_left(self, participant: Any) -> None:
        if participant.identity == self._caller:
            self._inbox.put_nowait(None)

    async def receive(self) -> bytes | Dtmf | Hangup | Stop | Start | None:
        return await self._inbox.get()

    async def send_audio(self, pcm16: bytes, sample_rate: int) -> None:
        for frame in pcm_to_frames(pcm16, sample_rate):
            await self.source.capture_frame(frame)

    async def send_event(self, message: ServerModel) -> None:
        if isinstance(message, Interrupted):
            self.source.clear_queue()  # barge-in: drop what LiveKit still buffers
        with contextlib.suppress(Exception):
            await self.room.local_participant.publish_data(json.dumps(to_wire(message)),
                                                           topic=EVENT_TOPIC)

    async def close(self, reason: str, *, code: int = 1000) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.room.disconnect()
