"""The streaming chat LLM interface: messages and tools in, text deltas and tool calls out.

A provider fills in `_chat_impl`; the public `ChatLLM.chat` owns the timeout, the retries
before the first chunk and the usage accounting. Tool calls arrive complete (a provider that
streams argument deltas assembles them before yielding), so callers never stitch JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from aico.metrics import record_provider_call, record_provider_error
from providers.errors import ProviderError, ProviderTimeout
from providers.policy import CallPolicy

log = logging.getLogger("aico.providers.llm")


class ToolCall(BaseModel):
    """One function call the model asked for; `arguments` is the JSON text the model wrote."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        value = json.loads(self.arguments or "{}")
        if not isinstance(value, dict):
            raise TypeError(f"tool {self.name} arguments are not a JSON object")
        return value


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] | None = None
    # For role 'tool': the id of the call this message answers.
    tool_call_id: str | None = None
    name: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat-completions wire shape (also llama.cpp's and vLLM's)."""
        msg: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        if self.tool_call_id:
            msg["tool_call_id"] = self.tool_call_id
        if self.name:
            msg["name"] = self.name
        return msg


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


# `LLMChunk.finish_reason` of a reply cut short after tokens were delivered (its model replica was
# lost mid-stream: providers/serve_clients.py); what was delivered stands, recorded as interrupted.
FINISH_INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class LLMChunk:
    text: str = ""
    tool_calls: list[ToolCall] | None = None
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class LLMCapabilities:
    streaming: bool = True
    tools: bool = False
    # Honours response_format={"type": "json_schema", ...} (constrained decoding or native).
    json_schema: bool = False
    context_tokens: int | None = None


@dataclass
class LLMUsageTotals:
    """Usage accumulated by one ChatLLM instance (one session's provider)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0

    def add(self, usage: Usage) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    """A whole reply, for callers that do not stream (the flow engine's `collect`)."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None

    def json(self) -> Any:
        return json.loads(self.text)


class ChatLLM(ABC):
    kind: ClassVar[str] = ""
    capabilities: ClassVar[LLMCapabilities] = LLMCapabilities()

    def __init__(self, *, policy: CallPolicy | None = None) -> None:
        self.policy = policy or CallPolicy(timeout_s=60.0)
        self.usage = LLMUsageTotals()

    async def warm(self) -> None:
        """Exercise the model once before a call needs it (a process warms its providers)."""
        async for _ in self.chat([ChatMessage(role="user", content="Hi")], max_tokens=2):
            pass

    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[dict] | None = None,
        response_format: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        spoken: bool = False,
    ) -> AsyncIterator[LLMChunk]:
        """Stream the reply. Retries only before the first chunk; every wait between chunks is
        bounded by the policy's timeout. Usage from the provider is added to `self.usage`.
        `spoken`: the reply is spoken as it streams (a voice or phone call), so a provider may
        pace its writing to the speech (llamacpp writes the opening first, then waits while it
        is synthesized)."""
        if tools and not self.capabilities.tools:
            raise ProviderError(f"{self.kind} does not support tools", provider=self.kind)
        self.usage.requests += 1
        attempt, started = 0, time.monotonic()
        while True:
            stream = self._chat_impl(messages, tools=tools, response_format=response_format,
                                     temperature=temperature, max_tokens=max_tokens,
                                     spoken=spoken)
            try:
                first = await self._next(stream)
                # Time to the first chunk, retries included: the latency a caller waits.
                record_provider_call(self.kind, "chat_first_token", time.monotonic() - started)
                break
            except ProviderError as err:
                record_provider_error(self.kind, "chat_first_token", err.code)
                await _aclose(stream)
                if not err.retryable or attempt >= self.policy.max_retries:
                    raise
                log.warning("%s chat failed before first token (%s), retry %d/%d", self.kind,
                            err.code, attempt + 1, self.policy.max_retries)
                self.usage.retries += 1
                await asyncio.sleep(self.policy.delay(attempt))
                attempt += 1
        try:
            chunk: LLMChunk | None = first
            while chunk is not None:
                if chunk.usage:
                    self.usage.add(chunk.usage)
                yield chunk
                chunk = await self._next(stream)
        finally:
            await _aclose(stream)

    async def complete(self, messages: list[ChatMessage], **options: Any) -> ChatResult:
        """Run `chat` to the end and return the whole reply."""
        text: list[str] = []
        calls: list[ToolCall] = []
        usage: Usage | None = None
        finish: str | None = None
        async for chunk in self.chat(messages, **options):
            text.append(chunk.text)
            calls.extend(chunk.tool_calls or [])
            usage = chunk.usage or usage
            finish = chunk.finish_reason or finish
        return ChatResult(text="".join(text), tool_calls=calls, usage=usage, finish_reason=finish)

    async def _next(self, stream: AsyncIterator[LLMChunk]) -> LLMChunk | None:
        # `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` loses a cancellation
        # that arrives as the chunk does (it returns the chunk), and a reply the caller
        # interrupted then went on being read and spoken.
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                return await anext(stream)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise ProviderTimeout(f"{self.kind} sent nothing for {self.policy.timeout_s:g}s",
                                  provider=self.kind) from None

    @abstractmethod
    def _chat_impl(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[dict] | None,
        response_format: dict | None,
        temperature: float | None,
        max_tokens: int | None,
        spoken: bool = False,
    ) -> AsyncIterator[LLMChunk]:
        """An async generator of chunks. Raise ProviderError subclasses on failure."""

    async def aclose(self) -> None:
        """Release connections; the base holds none."""


async def _aclose(stream: AsyncIterator[Any]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception as err:  # noqa: BLE001 - closing a failed stream must not mask its error
            log.debug("closing a provider stream failed: %s", err)


