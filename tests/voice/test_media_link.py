"""The media link between a replica and a call's actor (actors.media_link), over a real loopback
socket: only a call the actor carries, with the session's own token, is served; caller audio
arrives in order; agent audio and events come back in order, a batch's frames joined; the end of
the stream is told apart from a lost actor; a peer that breaks the framing is cut off."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.media_link import (
    AUDIO,
    EVENT,
    HEADER,
    MAX_UNREAD_BYTES,
    MediaLink,
    MediaLinkError,
    MediaServer,
    encode,
    media_token,
    serve_link,
)
from aico.settings import Settings


class Actor:
    """The actor's side: one call, `s`, whose outbound batches the test feeds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.heard: list[bytes] = []
        self.batches: asyncio.Queue[list[Any] | None] = asyncio.Queue()
        self.server: MediaServer | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def outbound(self) -> AsyncIterator[list[Any]]:
        while (batch := await self.batches.get()) is not None:
            yield batch

    def on_hello(self, session_id: str, token: str) -> Any:
        from actors.media_link import verify_media_token

        if session_id != "s" or not verify_media_token(self.settings, session_id, token):
            return None

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)
            await serve_link(reader, writer, on_audio=self.heard.append,
                             outbound=self.outbound())

        return serve


@pytest.fixture
async def actor(settings: Settings) -> AsyncIterator[Actor]:
    actor = Actor(settings)
    actor.server = await MediaServer.start("127.0.0.1", actor.on_hello)
    try:
        yield actor
    finally:
        actor.server.close()


async def test_audio_and_events_travel_in_order_and_the_end_is_told_apart(actor, settings):
    assert actor.server is not None
    link = await MediaLink.open(actor.server.address, "s", settings)
    for i in range(5):
        link.send_audio(bytes([i]) * 640)
    await actor.batches.put([{"type": "ready"}, b"ab", b"cd", {"type": "agent_speech_started"},
                             b"ef"])
    await actor.batches.put([b"gh"])
    await actor.batches.put(None)  # the call ended (or a newer reader took its stream)
    items = [item async for item in link.items()]
    assert items == [{"type": "ready"}, b"abcd", {"type": "agent_speech_started"}, b"ef",
                     b"gh"]
    assert actor.heard == [bytes([i]) * 640 for i in range(5)]
    link.close()


async def test_a_link_that_drops_without_the_end_says_its_actor_is_gone(actor, settings):
    assert actor.server is not None
    link = await MediaLink.open(actor.server.address, "s", settings)
    await actor.batches.put([b"ab"])
    items = link.items()
    assert await items.__anext__() == b"ab"
    # The actor's process died: its sockets close, with no end-of-stream message first.
    actor.writers[0].transport.abort()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(items.__anext__(), 5)


@pytest.mark.parametrize("session_id, token", [
    ("s", "not-a-signature"),
    ("other", None),  # a session this actor does not carry, with its own valid token
    ("s", "voice-token"),  # a token signed for another purpose
])
async def test_a_hello_for_another_call_or_with_a_wrong_token_is_refused(
        actor, settings, session_id, token):
    from aico.signing import signer

    assert actor.server is not None
    if token is None:
        token = media_token(settings, session_id)
    elif token == "voice-token":
        token = signer(settings).sign("voice-token", session_id)
    reader, writer = await asyncio.open_connection(*actor.server.address)
    writer.write(encode(EVENT, json.dumps({"session_id": session_id,
                                           "token": token}).encode()))
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, no answer
    writer.close()
    assert actor.heard == []


async def test_a_peer_that_breaks_the_framing_is_cut_off(actor, settings):
    assert actor.server is not None
    link = await MediaLink.open(actor.server.address, "s", settings)
    link.send_audio(b"\x01\x02" * 320)
    # An audio message larger than the link allows: the actor closes the link.
    link._writer.write(HEADER.pack(AUDIO, MAX_UNREAD_BYTES + 1))
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(link.items().__anext__(), 5)
    assert actor.heard == [b"\x01\x02" * 320]

    reader, writer = await asyncio.open_connection(*actor.server.address)
    writer.write(b"X\x00\x00\x00\x00")  # no hello: an unknown kind of message
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_no_link_without_a_listening_actor(settings):
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(MediaLinkError):
        await MediaLink.open(("127.0.0.1", port), "s", settings, timeout_s=2)


async def test_a_stuck_actor_holds_a_bounded_amount_of_caller_audio(settings):
    """An actor that stops reading: the link keeps writing only while less than
    MAX_UNREAD_BYTES waits in its buffer, and counts what it dropped."""
    gate = asyncio.Event()

    def on_hello(session_id: str, token: str) -> Any:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await gate.wait()  # reads nothing

        return serve

    server = await MediaServer.start("127.0.0.1", on_hello)
    try:
        link = await MediaLink.open(server.address, "s", settings)
        frame = b"\x00" * 640
        for _ in range(20000):  # 400 s of audio
            link.send_audio(frame)
            await asyncio.sleep(0)
        assert link.dropped_bytes > 0
        assert link._writer.transport.get_write_buffer_size() <= MAX_UNREAD_BYTES + 1024
        link.close()
    finally:
        gate.set()
        server.close()
