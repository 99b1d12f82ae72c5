"""The OpenAI chat-completions wire shape, shared by llama.cpp, vLLM and OpenAI adapters:
request bodies out, streamed `chat.completion.chunk` dicts in, tool-call deltas assembled."""

from __future__ import annotations

from typing import Any

from providers.llm import ChatMessage, LLMChunk, ToolCall, Usage


def chat_request(messages: list[ChatMessage], *, model: str | None, tools: list[dict] | None,
                 response_format: dict | None, temperature: float | None,
                 max_tokens: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [m.to_openai() for m in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if model:
        body["model"] = model
    if tools:
        body["tools"] = tools
    if response_format:
        body["response_format"] = response_format
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


class ChunkDecoder:
    """Turns streamed chunk dicts into LLMChunks; tool calls are held until complete."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def decode(self, chunk: dict[str, Any]) -> LLMChunk | None:
        usage = _usage(chunk.get("usage"))
        choices = chunk.get("choices") or []
        if not choices:
            return LLMChunk(usage=usage) if usage else None
        choice = choices[0]
        delta = choice.get("delta") or {}
        for part in delta.get("tool_calls") or []:
            call = self._calls.setdefault(part.get("index", 0),
                                          {"id": "", "name": "", "arguments": ""})
            fn = part.get("function") or {}
            call["id"] = part.get("id") or call["id"]
            call["name"] += fn.get("name") or ""
            call["arguments"] += fn.get("arguments") or ""
        finish = choice.get("finish_reason")
        calls = None
        if finish and self._calls:
            calls = [ToolCall(id=c["id"] or f"call_{i}", name=c["name"],
                              arguments=c["arguments"] or "{}")
                     for i, c in sorted(self._calls.items())]
            self._calls.clear()
        text = delta.get("content") or ""
        if not text and not calls and not finish and not usage:
            return None
        return LLMChunk(text=text, tool_calls=calls, usage=usage, finish_reason=finish)


def _usage(raw: dict[str, Any] | None) -> Usage | None:
    if not raw:
        return None
    return Usage(prompt_tokens=int(raw.get("prompt_tokens") or 0),
                 completion_tokens=int(raw.get("completion_tokens") or 0))
