"""Where a call's pipeline runs, seen from the transport: one `Call` interface, two hosts.

    call = await host.open(session_id, sample_rate=16000)   # pipeline started, greeting on its way
    call.push_audio(pcm16); await call.control({...}); await call.hang_up()
    async for message in call.outbound(): ...                # bytes (agent audio) and dicts

* `RayVoiceHost` (the API on Ray Serve): the pipeline runs in a slot of a `VoiceSession`
  actor taken from a pre-warmed pool (an actor carries up to `voice.calls_per_process` calls,
  each addressed by its session id). Caller frames and agent audio and events travel on the
  call's media link (actors.media_link: a TCP connection to the actor, a socket write per
  frame instead of a Ray call). Without a link (an actor that has none, or one the replica
  cannot reach), caller frames go to the actor as method calls, one in flight at a time (frames
  that arrive meanwhile go together in the next), and agent audio and events come back on one
  streaming-generator call, the frames of one batch joined into one message. If the actor dies
  mid-call, Ray restarts it (`max_restarts`) and each of its calls reattaches on its own: the
  new pipeline rehydrates from PostgreSQL and the caller gets a `resumed` event.
* `LocalVoiceHost` (no Ray: a laptop, unit tests): the same pipeline on the API's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol
from uuid import UUID

import asyncpg

from actors.call_metrics import observing
from actors.media_link import MediaLink, MediaLinkError, joined_audio
from actors.outbox import items_until
from actors.pipeline import VoicePipeline
from actors.pool import VoiceActorPool
from aico import metrics
from aico.settings import Settings, get_settings

log = logging.getLogger("aico.actors.host")

_CLOSED = object()
# Caller audio held for an actor that does not take it (restarting): the newest 2 s at 48 kHz.
MAX_UNSENT_BYTES = 2 * 48000 * 2
LOCAL_NODE = "local"  # the node label of calls whose pipeline runs in the API process


class Call(Protocol):
    def push_audio(self, pcm16: bytes) -> None: ...
    async def control(self, message: dict[str, Any]) -> None: ...
    async def hang_up(self, reason: str = "hangup") -> None: ...
    def outbound(self) -> AsyncIterator[bytes | dict[str, Any]]: ...


class VoiceHost(Protocol):
    async def open(self, session_id: UUID | str, *, sample_rate: int,
                   connected_at: float | None = None) -> Call: ...


class LocalCall:
    def __init__(self, pipeline_factory: Any, *, session_id: UUID | str,
                 settings: Settings) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.pipeline: VoicePipeline = pipeline_factory(observing(
            self._queue.put_nowait, session_id=session_id, node=LOCAL_NODE, settings=settings))
        self._live = True
        metrics.count_live_call(LOCAL_NODE, 1)

    def _not_live(self) -> None:
        if self._live:
            self._live = False
            metrics.count_live_call(LOCAL_NODE, -1)

    def push_audio(self, pcm16: bytes) -> None:
        self.pipeline.push_audio(pcm16)

    async def control(self, message: dict[str, Any]) -> None:
        await self.pipeline.control(message)

    async def hang_up(self, reason: str = "hangup") -> None:
        self._not_live()
        await self.pipeline.hang_up(reason)
        self._queue.put_nowait(_CLOSED)

    async def outbound(self) -> AsyncIterator[bytes | dict[str, Any]]:
        try:
            async for batch in items_until(self._queue, self.pipeline.ended.wait()):
                for item in batch:
                    if item is _CLOSED:
                        return
                    yield item
        finally:
            self._not_live()


class LocalVoiceHost:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, *, open_llm: Any = None) -> None:
        self.pool = pool
        self.settings = settings
        self.open_llm = open_llm

    async def open(self, session_id: UUID | str, *, sample_rate: int,
                   connected_at: float | None = None) -> LocalCall:
        call = LocalCall(lambda send: VoicePipeline(pool=self.pool, settings=self.settings,
                                                    session_id=session_id, send=send,
                                                    open_llm=self.open_llm),
                         session_id=session_id, settings=self.settings)
        try:
            await call.pipeline.start(sample_rate=sample_rate, connected_at=connected_at)
        except BaseException:
            call._not_live()
            raise
        return call


class RayCall:
    """A call whose pipeline runs in a `VoiceSession` actor."""

    def __init__(self, host: RayVoiceHost, actor: Any, session_id: str, sample_rate: int) -> None:
        self.host = host
        self.actor = actor
        self.session_id = session_id
        self.sample_rate = sample_rate
        self._ended = False
        self._attached = asyncio.Event()
        self._attached.set()
        self._unsent = bytearray()  # caller audio not yet pushed to the actor
        self._unsent_ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self.link: MediaLink | None = None  # None: audio and events go as Ray calls
        # Opened by a caller who reconnected to the actor still carrying their call: the new
        # connection is sent its actor's `ready` (run_call passes on only a first, non-resumed
        # one), then `resumed`.
        self.reconnected = False

    async def open_link(self, address: Any = None) -> None:
        """The call's media link to its actor (after each attach: a restarted actor listens on
        a new port), at `address` when the caller asked already. Without one the call carries
        on over Ray calls."""
        if self.link is not None:
            self.link.close()
            self.link = None
        address_of = getattr(self.actor, "media_address", None)
        if address_of is None:
            return  # an actor without links
        if not address:
            address = await address_of.remote()
        if not address:
            return
        try:
            self.link = await MediaLink.open((str(address[0]), int(address[1])),
                                             self.session_id, self.host.settings)
        except MediaLinkError as err:
            log.warning("call %s: no media link (%s); its audio goes as Ray calls",
                        self.session_id, err)

    def push_audio(self, pcm16: bytes) -> None:
        if not self._attached.is_set() or self._ended:
            return  # that audio is lost while the actor restarts
        if self.link is not None:
            self.link.send_audio(pcm16)
            return
        self._unsent.extend(pcm16)
        if len(self._unsent) > MAX_UNSENT_BYTES:  # a stuck actor: keep the newest audio
            del self._unsent[:len(self._unsent) - MAX_UNSENT_BYTES]
        self._unsent_ready.set()
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(
                self._send_audio(), name=f"audio-to-{self.session_id}")

    async def _send_audio(self) -> None:
        """One push to the actor in flight at a time; the frames that arrive meanwhile go
        together in the next one. An idle machine sends each frame on its own, as it comes; a
        busy one (a push takes longer than a frame) sends fewer, larger pushes instead of
        queueing a method call per frame on both processes."""
        import ray

        while not self._ended:
            await self._unsent_ready.wait()
            self._unsent_ready.clear()
            if not self._unsent or not self._attached.is_set():
                self._unsent.clear()
                continue
            chunk = bytes(self._unsent)
            self._unsent.clear()
            try:
                await self.actor.push_audio.remote(self.session_id, chunk)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                pass  # the outbound stream reattaches; this audio is lost meanwhile
            except Exception as err:  # noqa: BLE001 - the next push may go through
                log.warning("audio for %s not delivered: %s", self.session_id,
                            type(err).__name__)

    def _stop_sending(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None

    async def control(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.actor.control.remote(self.session_id, message)

    async def hang_up(self, reason: str = "hangup") -> None:
        if self._ended:
            return
        self._ended = True
        self._stop_sending()
        with contextlib.suppress(Exception):
            await self.actor.hang_up.remote(self.session_id, reason)
        self._close_link()
        await self.host.release(self)

    def _close_link(self) -> None:
        if self.link is not None:
            self.link.close()

    async def outbound(self) -> AsyncIterator[bytes | dict[str, Any]]:
        import ray

        while not self._ended:
            try:
                items = self.link.items() if self.link is not None else self._ray_items()
                async for item in items:
                    if self.reconnected and isinstance(item, dict) \
                            and item.get("type") == "ready":
                        self.reconnected = False
                        yield {**item, "resumed": False}
                        yield {"type": "resumed"}
                        continue
                    if isinstance(item, dict) and item.get("type") == "end":
                        yield item
                        self._ended = True
                        self._stop_sending()
                        self._close_link()
                        await self.host.release(self)
                        return
                    yield item
                return
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError,
                    ConnectionError, MediaLinkError) as err:
                if self._ended:
                    return
                log.warning("voice actor for %s died (%s); reattaching", self.session_id,
                            type(err).__name__)
                self._attached.clear()
                await self._reattach()
                await self.open_link()
                self._attached.set()
                yield {"type": "resumed"}

    async def _ray_items(self) -> AsyncIterator[bytes | dict[str, Any]]:
        stream = self.actor.outbound.options(num_returns="streaming").remote(self.session_id)
        async for ref in stream:
            for item in joined_audio(await ref):
                yield item

    async def _reattach(self) -> None:
        """The same actor once Ray has restarted it; or, when it is gone for good (its node
        died, and its supervisor with it), a new one from the pool, on a node that is alive."""
        import ray

        deadline = time.monotonic() + self.host.reattach_timeout_s
        while True:
            try:
                await self.actor.warm.remote()
                await self.actor.attach.remote(self.session_id, self.sample_rate, True, 0.0)
                return
            except (ray.exceptions.ActorDiedError, ray.exceptions.RayTaskError) as err:
                if not self.host.replaces_dead_actors:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
                    continue
                # Gone for good, or a new actor that could not warm up: another one.
                log.warning("voice actor for %s is gone (%s); resuming on a new one",
                            self.session_id, type(err).__name__)
                await self._replace_until(deadline)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def _replace_until(self, deadline: float) -> None:
        while True:
            try:
                await self.host.replace(self)
                return
            except Exception as err:
                if time.monotonic() > deadline:
                    raise
                log.warning("no new voice actor for %s yet (%s); retrying", self.session_id,
                            type(err).__name__)
                await asyncio.sleep(1.0)


class RayVoiceHost:
    def __init__(self, actor_pool: Any, *, reattach_timeout_s: float = 60.0,
                 settings: Settings | None = None) -> None:
        self.actor_pool = actor_pool
        self.settings = settings or get_settings()  # its signing key opens media links
        self.reattach_timeout_s = reattach_timeout_s
        self.calls: dict[str, RayCall] = {}  # live calls of this replica, by session id

    async def open(self, session_id: UUID | str, *, sample_rate: int,
                   connected_at: float | None = None) -> RayCall:
        # A caller who reconnects (their first socket went with another replica) gets the
        # actor that still carries their call; it carries on from the last committed step.
        place = getattr(self.actor_pool, "find_or_acquire", None)
        if place is not None:
            actor, resume = await place(str(session_id))
        else:  # a replica's own pool (tests, benchmarks): no other replica placed the call
            actor, resume = await self.actor_pool.acquire(str(session_id)), False
        ago = time.monotonic() - connected_at if connected_at else 0.0
        attached = actor.attach.remote(str(session_id), sample_rate, resume, ago)
        address_of = getattr(actor, "media_address", None)
        # Where its link connects, asked beside the attach (the link itself needs the call
        # attached: the actor serves a link only for a call it carries).
        address = await address_of.remote() if address_of is not None else None
        await attached
        call = self.calls[str(session_id)] = RayCall(self, actor, str(session_id), sample_rate)
        call.reconnected = resume
        await call.open_link(address)
        return call

    async def release(self, call: RayCall) -> None:
        """`call` has ended: its slot in its actor is free (the actor's other calls carry on)."""
        if self.calls.get(call.session_id) is call:
            del self.calls[call.session_id]
        await self.actor_pool.release(call.actor, call.session_id)

    @property
    def replaces_dead_actors(self) -> bool:
        """Calls placed by the per-node supervisors move to a new actor when theirs is gone
        (its node died); a replica's own pool (tests, benchmarks) only waits for Ray to
        restart it, and the call fails after `reattach_timeout_s`."""
        return not isinstance(self.actor_pool, VoiceActorPool)

    async def replace(self, call: RayCall) -> None:
        """Give `call` a new actor (its own is dead: nothing to hand back but the bookkeeping)."""
        with contextlib.suppress(Exception):
            await self.actor_pool.release(call.actor, call.session_id)
        call.actor = await self.actor_pool.acquire(call.session_id)
