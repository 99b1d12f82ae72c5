"""WhatsApp voice notes in: download the media through the Graph API, decode OGG/Opus (or any
audio Meta sends) with PyAV (FFmpeg), transcribe with the session's resolved STT.

    pcm16 = await download_audio(settings, client, media_id="1479…", access_token=token)
    text = await transcribe(pool, session_id, pcm16, settings=settings)

Meta's documented two steps: `GET /{version}/{media-id}` answers `{"url", "mime_type",
"sha256", "file_size", "id"}`; `GET <url>` with the same bearer token answers the bytes.
Both go through the Graph client of the worker (the egress guard's pinned connections).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from uuid import UUID

import asyncpg
import httpx

from aico.settings import Settings
from db import sessions as sessions_db
from db.session_metrics import add_sessions_usage
from flows.whatsapp_graph import GraphError

# Meta's limit for audio is 16 MB; anything larger is not a voice note from WhatsApp.
MAX_MEDIA_BYTES = 16 * 1024 * 1024
SAMPLE_RATE = 16000
# A voice note longer than this is cut: the STT sees its first part only.
MAX_AUDIO_S = 300


async def _get(client: httpx.AsyncClient, url: str, token: str, limit: int) -> bytes:
    async with client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as r:
        data = bytearray()
        async for chunk in r.aiter_bytes():
            data += chunk
            if len(data) > limit:
                raise GraphError(None, f"media larger than {limit} bytes", http_status=r.status_code)
        if r.status_code >= 400:
            try:
                error = json.loads(bytes(data)).get("error") or {}
            except (ValueError, AttributeError):
                error = {}
            code = error.get("code") if isinstance(error, dict) else None
            raise GraphError(code if isinstance(code, int) else None,
                             str((error or {}).get("message") or f"HTTP {r.status_code}")[:500],
                             http_status=r.status_code)
        return bytes(data)


async def download_audio(settings: Settings, client: httpx.AsyncClient, *, media_id: str,
                         access_token: str) -> bytes:
    """The voice note's audio as 16 kHz mono 16-bit PCM."""
    wa = settings.whatsapp
    meta_url = f"{wa.graph_url.rstrip('/')}/{wa.graph_version}/{media_id}"
    info = json.loads(await _get(client, meta_url, access_token, 64 * 1024))
    if not isinstance(info, dict) or not info.get("url"):
        raise GraphError(None, f"media {media_id}: the answer names no url", http_status=200)
    data = await _get(client, str(info["url"]), access_token, MAX_MEDIA_BYTES)
    expected = info.get("sha256")
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise GraphError(None, f"media {media_id}: sha256 does not match", http_status=200)
    return await asyncio.to_thread(decode_audio, data)


def decode_audio(data: bytes) -> bytes:
    """Any container and codec FFmpeg reads (OGG/Opus for WhatsApp voice notes) -> 16 kHz
    mono s16 PCM, at most MAX_AUDIO_S seconds."""
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    out = bytearray()
    limit = MAX_AUDIO_S * SAMPLE_RATE * 2
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            for resampled in resampler.resample(frame):
                out += resampled.to_ndarray().tobytes()
            if len(out) >= limit:
                break
        for resampled in resampler.resample(None):
            out += resampled.to_ndarray().tobytes()
    return bytes(out[:limit])


async def transcribe(pool: asyncpg.Pool, session_id: UUID, pcm16: bytes, *,
                     settings: Settings) -> str:
    """The words of `pcm16` by the session's resolved STT (pinned when the session started)."""
    from flows.sessions import open_provider, provider_usage

    snap = await sessions_db.get_session_for_step(pool, session_id=session_id,
                                                  event_id="whatsapp:transcribe")
    if snap is None:
        return ""
    stt = await open_provider("stt", pool, org_id=snap["org_id"],
                              pinned=dict(snap["providers"] or {}), settings=settings)
    try:
        result = await stt.recognize(pcm16, sample_rate=SAMPLE_RATE)
        usage = {k: v for k, v in provider_usage(stt).items() if isinstance(v, int | float)}
        await add_sessions_usage(pool, session_id=session_id, capability="stt",
                                 kind=str(getattr(stt, "kind", "") or "stt"), counts=usage)
    finally:
        await stt.aclose()
    return str(result.text or "").strip()


# --- voice notes out ---------------------------------------------------------------------------

def encode_voice_note(pcm16: bytes, sample_rate: int) -> bytes:
    """Mono 16-bit PCM as a WhatsApp voice note: Opus in an OGG container at 48 kHz."""
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        samples = np.frombuffer(pcm16, dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


async def synthesize_voice_note(pool: asyncpg.Pool, session_id: UUID | None, text: str, *,
                                org_id: UUID, settings: Settings) -> bytes:
    """`text` spoken by the session's TTS (the server default when it pinned none), as OGG/Opus."""
    from flows.sessions import open_provider, provider_usage

    pinned: dict[str, object] = {}
    if session_id is not None:
        snap = await sessions_db.get_session_for_step(pool, session_id=session_id,
                                                      event_id="whatsapp:synthesize")
        pinned = dict((snap["providers"] if snap else None) or {})
    tts = await open_provider("tts", pool, org_id=org_id, pinned=pinned, settings=settings)
    try:
        frames = [f async for f in tts.synthesize(text)]
        if session_id is not None:
            usage = {k: v for k, v in provider_usage(tts).items() if isinstance(v, int | float)}
            await add_sessions_usage(pool, session_id=session_id, capability="tts",
                                     kind=str(getattr(tts, "kind", "") or "tts"), counts=usage)
    finally:
        await tts.aclose()
    if not frames:
        raise ValueError("the TTS produced no audio")
    pcm16 = b"".join(f.pcm16 for f in frames)
    return await asyncio.to_thread(encode_voice_note, pcm16, frames[0].sample_rate)


async def upload_media(settings: Settings, client: httpx.AsyncClient, *, phone_number_id: str,
                       access_token: str, data: bytes, mime_type: str) -> str:
    """`POST /{version}/{phone-number-id}/media` (multipart: file, type, messaging_product);
    returns the media id a message may then send."""
    wa = settings.whatsapp
    url = f"{wa.graph_url.rstrip('/')}/{wa.graph_version}/{phone_number_id}/media"
    response = await client.post(
        url, headers={"Authorization": f"Bearer {access_token}"},
        data={"messaging_product": "whatsapp", "type": mime_type},
        files={"file": ("voice.ogg", data, mime_type)})
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code >= 400 or not isinstance(answer, dict) or not answer.get("id"):
        error = answer.get("error") if isinstance(answer, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        raise GraphError(code if isinstance(code, int) else None,
                         str(error.get("message") or f"media upload: HTTP {response.status_code}"),
                         http_status=response.status_code)
    return str(answer["id"])
