"""The media link: a call's audio and events between the API replica and its `VoiceSession`
actor over one TCP connection, instead of a Ray method call per caller frame and a streaming
generator item per agent frame.

A Ray actor call costs both processes a task submission, a serialization and a reply, a few
hundred microseconds of CPU each way; at 50 caller frames and 25 agent frames a second per call
that relay was about half of the machine's CPU with eight calls on two cores. A frame on the
link costs a socket write and a read.

    actor:   server = await MediaServer.start(host, on_hello)       # in the actor's warm-up
    replica: link = await MediaLink.open(address, session_id, settings)
             link.send_audio(pcm16)                                  # every caller frame
             async for item in link.items(): ...                     # bytes and dicts

Each message is a 5-byte header (kind, big-endian payload length) and the payload: `A` PCM16
audio, `J` one JSON event, `O` the actor's answer to the hello, `E` "this stream is over" (the
call detached from this link: a reconnect elsewhere took it). The connection opens with a `J`
hello `{"session_id", "token"}`, the token an HMAC of the session id under the signing key's
`voice-media` subkey: the actor serves only calls it carries, to a peer holding the cluster's
key. A link that closes without `E` lost its actor (the process died): the replica reattaches
through Ray as before. Control messages and hang-up still go as Ray calls (rare, and awaited).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aico.settings import Settings
from aico.signing import signer

log = logging.getLogger("aico.actors.media_link")

HEADER = struct.Struct(">cI")
AUDIO, EVENT, OK, OVER = b"A", b"J", b"O", b"E"
KINDS = frozenset({AUDIO, EVENT, OK, OVER})
MAX_HELLO_BYTES = 1024
# What one message may carry: caller audio the replica batched (≤ 2 s at 48 kHz, see
# actors.host.MAX_UNSENT_BYTES), an event, or agent audio joined from one batch.
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
HELLO_TIMEOUT_S = 5.0
# Caller audio the replica may have written that the actor has not read: past this the link
# drops new frames (a stuck actor) rather than holding more.
MAX_UNREAD_BYTES = 2 * 48000 * 2


class MediaLinkError(Exception):
    """The link could not be opened, or a peer broke its framing."""


def media_token(settings: Settings, session_id: str) -> str:
    return signer(settings).sign("voice-media", session_id)


def verify_media_token(settings: Settings, session_id: str, token: str) -> bool:
    return signer(settings).verify("voice-media", session_id, token)


def encode(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def encode_item(item: bytes | dict[str, Any]) -> bytes:
    if isinstance(item, bytes | bytearray):
        return encode(AUDIO, bytes(item))
    return encode(EVENT, json.dumps(item, separators=(",", ":")).encode())


async def read_message(reader: asyncio.StreamReader, *,
                       max_bytes: int = MAX_PAYLOAD_BYTES) -> tuple[bytes, bytes]:
    """(kind, payload); `asyncio.IncompleteReadError` at the end of the stream."""
    kind, size = HEADER.unpack(await reader.readexactly(HEADER.size))
    if kind not in KINDS:
        raise MediaLinkError(f"unknown message kind {kind!r}")
    if size > max_bytes:
        raise MediaLinkError(f"a {kind!r} message of {size} bytes (at most {max_bytes})")
    return kind, await reader.readexactly(size)


# --- the actor's side ----------------------------------------------------------------------

class MediaServer:
    """Accepts links for the calls an actor carries. `on_hello(session_id, token)` returns the
    coroutine function that serves an accepted link, or None to refuse it."""

    def __init__(self, server: asyncio.Server, host: str) -> None:
        self._server = server
        self.address = (host, server.sockets[0].getsockname()[1])

    @classmethod
    async def start(cls, host: str, on_hello: Callable[[str, str], Callable[
            [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] | None]
    ) -> MediaServer:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                kind, body = await asyncio.wait_for(
                    read_message(reader, max_bytes=MAX_HELLO_BYTES), HELLO_TIMEOUT_S)
                hello = json.loads(body) if kind == EVENT else None
                if not isinstance(hello, dict):
                    raise MediaLinkError("the link did not open with a hello")
                serve = on_hello(str(hello.get("session_id", "")), str(hello.get("token", "")))
                if serve is None:
                    raise MediaLinkError("refused")
                writer.write(encode(OK, b""))
                await serve(reader, writer)
            except (MediaLinkError, TimeoutError, ValueError, asyncio.IncompleteReadError,
                    ConnectionError) as err:
                log.debug("media link closed: %s", err)
            except Exception:  # a link's failure must not reach the server
                log.exception("media link failed")
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

        server = await asyncio.start_server(accept, host=host, port=0)
        return cls(server, host)

    def close(self) -> None:
        self._server.close()


async def serve_link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                     on_audio: Callable[[bytes], None],
                     outbound: AsyncIterator[list[Any]]) -> None:
    """One call's link on the actor: caller audio from `reader` to `on_audio`, each batch of
    `outbound` to `writer` (consecutive audio frames joined), then `E`. Returns when the batches
    end (the call ended or detached) or the replica goes away."""

    async def inbound() -> None:
        while True:
            kind, payload = await read_message(reader, max_bytes=MAX_UNREAD_BYTES)
            if kind == AUDIO:
                on_audio(payload)
            else:
                raise MediaLinkError(f"a {kind!r} message from the replica")

    async def send() -> None:
        async for batch in outbound:
            writer.write(b"".join(encode_item(item) for item in joined_audio(batch)))
            await writer.drain()
        writer.write(encode(OVER, b""))
        await writer.drain()

    reading = asyncio.ensure_future(inbound())
    sending = asyncio.ensure_future(send())
    try:
        done, _ = await asyncio.wait({reading, sending}, return_when=asyncio.FIRST_COMPLETED)
        if sending in done:
            sending.result()  # the stream is over: nothing more to read
        else:
            # The replica went away (or broke framing): the call waits for a reconnect.
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                reading.result()
    finally:
        for task in (reading, sending):
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(reading, sending, return_exceptions=True)


def joined_audio(batch: list[Any]) -> list[Any]:
    """A batch with each run of consecutive audio frames joined into one: frames that were
    ready together leave as one message, with no added wait."""
    out: list[Any] = []
    for item in batch:
        if isinstance(item, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += item
        else:
            out.append(item)
    return out


# --- the replica's side --------------------------------------------------------------------

class MediaLink:
    """The replica's end of one call's link."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.dropped_bytes = 0  # caller audio not sent: the actor was not reading

    @classmethod
    async def open(cls, address: tuple[str, int], session_id: str, settings: Settings, *,
                   timeout_s: float = HELLO_TIMEOUT_S) -> MediaLink:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(address[0], address[1]), timeout_s)
        except (OSError, TimeoutError) as err:
            raise MediaLinkError(f"cannot reach the call's actor at {address}: {err}") from err
        hello = {"session_id": session_id, "token": media_token(settings, session_id)}
        writer.write(encode(EVENT, json.dumps(hello).encode()))
        try:
            kind, _ = await asyncio.wait_for(read_message(reader, max_bytes=0), timeout_s)
        except (MediaLinkError, TimeoutError, asyncio.IncompleteReadError,
                ConnectionError) as err:
            writer.close()
            raise MediaLinkError(f"the call's actor refused its link: {err!r}") from err
        if kind != OK:
            writer.close()
            raise MediaLinkError(f"the call's actor answered the hello with {kind!r}")
        return cls(reader, writer)

    def send_audio(self, pcm16: bytes) -> None:
        """Caller audio to the actor, now (no task, no wait). Dropped while the actor has not
        read `MAX_UNREAD_BYTES` already written."""
        if self._writer.is_closing():
            return
        if self._writer.transport.get_write_buffer_size() > MAX_UNREAD_BYTES:
            self.dropped_bytes += len(pcm16)
            return
        self._writer.write(encode(AUDIO, pcm16))

    async def items(self) -> AsyncIterator[bytes | dict[str, Any]]:
        """Agent audio (bytes) and events (dicts) until the actor says the stream is over.
        Raises `ConnectionError` when the link drops without that (the actor is gone)."""
        while True:
            try:
                kind, payload = await read_message(self._reader)
            except asyncio.IncompleteReadError as err:
                raise ConnectionResetError("the call's actor closed its link") from err
            if kind == AUDIO:
                yield payload
            elif kind == EVENT:
                yield json.loads(payload)
            elif kind == OVER:
                return
            else:
                raise MediaLinkError(f"a {kind!r} message from the actor")

    def close(self) -> None:
        self._writer.close()
