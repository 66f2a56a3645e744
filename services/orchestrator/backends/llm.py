"""The llm stage's clients: one interface, two implementations, chosen by `ORCH_LLM_CLIENT`.

`HttpLlmClient` (default) posts the OpenAI chat format over the stage calls' shared aiohttp
session (less CPU per turn); `LangChainLlmClient` goes through LangChain's ChatOpenAI over an
httpx client (LangChain callbacks and tracing). Both send the same messages, give the same
`ChatReply`, stream alike and raise errors `executor.classify` knows, so the executor's
timeouts, breakers and fallbacks treat them the same. Tool rounds (`answer`) run on either.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

import aiohttp

from services.kit.http import make_client
from services.orchestrator.balancer import BalancedTransport, Balancer
from services.orchestrator.config import EffectiveStage, ProviderConfig
from services.orchestrator.conversation import Answer, converse
from services.orchestrator.executor import BadResponse, ProviderError, ReplyTooLarge
from services.orchestrator.stages import (
    ChatReply,
    StageClient,
    api_base,
    open_stream,
    wire_tool_call,
)
from services.orchestrator.tools import schemas as tool_schemas

# LangChain fails this way on a 2xx reply that is not a chat completion: the provider's
# fault, so the executor may move on to the next one.
_UNUSABLE = (KeyError, TypeError, ValueError, AttributeError)


@dataclass(frozen=True)
class LlmCall:
    """One llm-stage call to one provider: what either client needs to send it."""

    provider: str
    config: ProviderConfig
    options: dict[str, Any]  # the provider's options, overridden by the stage's
    tools: tuple[str, ...]  # offered: the stage's tools, when the provider supports tools
    timeout_s: float

    @classmethod
    def for_stage(
        cls,
        stage: EffectiveStage,
        provider: str,
        config: ProviderConfig,
        timeout_s: float,
        max_tokens: int | None = None,
    ) -> LlmCall:
        """The call for this stage and provider; `max_tokens` caps the configured one."""
        options = {**config.options, **stage.options}
        if max_tokens is not None:
            options["max_tokens"] = min(int(options.get("max_tokens") or max_tokens), max_tokens)
        # Tools go only to providers that declare they support them.
        offered = stage.tools if config.supports_tools else ()
        return cls(provider, config, options, offered, timeout_s)


class ReplyStream(Protocol):
    """A streamed reply whose first piece has arrived; iterate for the rest, close to stop."""

    def __aiter__(self) -> AsyncIterator[str]:
        """The reply's text pieces, the first one included."""
        ...

    async def aclose(self) -> None:
        """Drop the stream: the provider sees the connection go and stops generating."""
        ...


class LlmClient(Protocol):
    """How the llm stage talks to one provider."""

    name: str

    async def chat(
        self, call: LlmCall, messages: list[dict[str, Any]], tool_choice: str | None = None
    ) -> ChatReply:
        """One chat completion, offering `call.tools` (tool_choice "auto"/"none") if any."""
        ...

    async def chat_stream(self, call: LlmCall, messages: list[dict[str, Any]]) -> ReplyStream:
        """A streamed completion, open and past its first piece (no tools)."""
        ...

    async def aclose(self) -> None:
        """Release what the client owns."""
        ...


async def answer(
    client: LlmClient,
    call: LlmCall,
    messages: list[dict[str, Any]],
    max_rounds: int,
    on_tool: Callable[[str, bool], None] | None = None,
) -> Answer:
    """The model's final reply, running the tools it calls (at most `max_rounds` rounds)."""

    async def ask(msgs: list[dict[str, Any]], allow: bool) -> ChatReply:
        choice = ("auto" if allow else "none") if call.tools else None
        return await client.chat(call, msgs, choice)

    return await converse(ask, messages, call.tools, max_rounds, on_tool)


async def stream_or_answer(
    client: LlmClient,
    call: LlmCall,
    messages: list[dict[str, Any]],
    max_rounds: int,
    on_tool: Callable[[str, bool], None] | None = None,
) -> ReplyStream | Answer:
    """A stream when no tool is offered; tool rounds need whole replies, so then an Answer."""
    if call.tools:
        return await answer(client, call, messages, max_rounds, on_tool)
    return await client.chat_stream(call, messages)


class _Primed(ABC):
    """A reply stream started on its first piece, so a provider that fails before it fails
    inside the stage executor (fallbacks and breakers apply); `_next_piece` reads on."""

    _first: str | None = None

    @abstractmethod
    async def _next_piece(self) -> str | None:
        """The next non-empty piece, or None at the end of the stream."""

    @abstractmethod
    async def aclose(self) -> None:
        """Drop the stream: the provider sees the connection go and stops generating."""

    async def start(self) -> Self:
        """Wait for the first piece (an empty reply is a BadResponse)."""
        self._first = await self._next_piece()
        if self._first is None:
            raise BadResponse("the model returned an empty reply")
        return self

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        while (piece := await self._next_piece()) is not None:
            yield piece


class _SseStream(_Primed):
    """An OpenAI chat-completion stream (SSE) read off an aiohttp response."""

    def __init__(self, resp: aiohttp.ClientResponse, limit: int) -> None:
        self._resp = resp
        self._limit = limit
        self._read = 0

    async def _next_piece(self) -> str | None:
        try:
            return await self._read_piece()
        except ValueError as exc:  # aiohttp: a line beyond its buffer ("Line is too long")
            raise BadResponse(f"unreadable stream: {exc}") from exc

    async def _read_piece(self) -> str | None:
        async for raw in self._resp.content:
            self._read += len(raw)
            if self._read > self._limit:
                raise ReplyTooLarge(f"streamed reply exceeds the limit of {self._limit} bytes")
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return None
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise BadResponse("stream chunk is not JSON") from exc
            if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
                raise ProviderError(502, str(chunk["error"].get("message") or "stream failed"))
            choices = chunk.get("choices") if isinstance(chunk, dict) else None
            delta = choices[0].get("delta") if isinstance(choices, list) and choices else None
            piece = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(piece, str) and piece:
                return piece
        return None

    async def aclose(self) -> None:
        """Drop the connection (stops the provider's generation)."""
        self._resp.close()


class HttpLlmClient:
    """OpenAI chat completions posted over the stage calls' shared session."""

    name = "http"

    def __init__(self, stages: StageClient) -> None:
        self.stages = stages

    async def chat(
        self, call: LlmCall, messages: list[dict[str, Any]], tool_choice: str | None = None
    ) -> ChatReply:
        """One POST /v1/chat/completions."""
        tools = tool_schemas(call.tools) if call.tools else None
        return await self.stages.chat(
            call.config, messages, call.options, call.timeout_s, tools, tool_choice or "auto"
        )

    async def chat_stream(self, call: LlmCall, messages: list[dict[str, Any]]) -> ReplyStream:
        """POST /v1/chat/completions with `stream: true` (SSE)."""
        payload: dict[str, Any] = {"model": call.config.model or "default", **call.options}
        payload.update(messages=messages, stream=True)
        path = "/v1/chat/completions"
        resp = await open_stream(self.stages, call.config, path, payload, call.timeout_s)
        try:
            return await _SseStream(resp, self.stages.limits.json_bytes).start()
        except BaseException:
            resp.close()
            raise

    async def aclose(self) -> None:
        """Nothing: the session belongs to the stage client."""


def to_langchain(messages: list[dict[str, Any]]) -> list[Any]:
    """The same messages as LangChain message objects (tool calls and results included)."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    out: list[Any] = []
    for m in messages:
        role = m["role"]
        if role == "system":
            out.append(SystemMessage(m["content"]))
        elif role == "user":
            out.append(HumanMessage(m["content"]))
        elif role == "tool":
            out.append(ToolMessage(m["content"], tool_call_id=m["tool_call_id"]))
        else:
            calls = [
                {
                    "name": c["function"]["name"],
                    "args": _json_args(c["function"]["arguments"]),
                    "id": c["id"],
                }
                for c in m.get("tool_calls", [])
            ]
            out.append(AIMessage(m.get("content") or "", tool_calls=calls))
    return out


def _json_args(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(content: Any) -> str:
    """A LangChain message's content as text (content blocks: their text parts)."""
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


class _ChunkStream(_Primed):
    """LangChain's `astream` (AIMessageChunk pieces) behind the ReplyStream interface."""

    def __init__(self, chunks: Any) -> None:
        self._chunks = chunks  # an async generator

    async def _next_piece(self) -> str | None:
        while True:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                return None
            except _UNUSABLE as exc:
                raise BadResponse(f"unusable chat completion: {type(exc).__name__}") from exc
            if piece := _text(chunk.content):
                return piece

    async def aclose(self) -> None:
        """Close the generator and with it the provider's connection."""
        await self._chunks.aclose()


class LangChainLlmClient:
    """LangChain's ChatOpenAI, one per provider endpoint, over one httpx client."""

    name = "langchain"
    MAX_MODELS = 64  # endpoints kept; config reloads may retire some

    def __init__(self, http: Any) -> None:
        # Seconds to import: build this off the event loop (open_llm_client does).
        from langchain_openai import ChatOpenAI

        self._chat_openai: Any = ChatOpenAI
        self.http = http
        self._models: dict[tuple[str, str, str, float], Any] = {}

    def _model(self, call: LlmCall, tool_choice: str | None = None) -> Any:
        prov = call.config
        key = (api_base(prov.url), prov.api_key, prov.model or "default", call.timeout_s)
        model = self._models.get(key)
        if model is None:
            model = self._chat_openai(
                base_url=key[0] + "/v1",
                # Our own containers need no key, but the OpenAI client insists on one.
                api_key=prov.api_key or "not-needed",
                model=key[2],
                # The executor owns timeouts, retries and fallbacks so breakers see them.
                max_retries=0,
                timeout=call.timeout_s,
                http_async_client=self.http,
            )
            if len(self._models) >= self.MAX_MODELS:
                self._models.pop(next(iter(self._models)))
            self._models[key] = model
        if call.tools:
            model = model.bind_tools(tool_schemas(call.tools))
        bound = dict(call.options)
        if tool_choice is not None:
            bound["tool_choice"] = tool_choice
        return model.bind(**bound) if bound else model

    async def chat(
        self, call: LlmCall, messages: list[dict[str, Any]], tool_choice: str | None = None
    ) -> ChatReply:
        """ChatOpenAI.ainvoke once; the same ChatReply as the plain HTTP client."""
        try:
            result = await self._model(call, tool_choice).ainvoke(to_langchain(messages))
        except _UNUSABLE as exc:
            raise BadResponse(f"unusable chat completion: {type(exc).__name__}") from exc
        text = _text(result.content).strip()
        calls = tuple(
            wire_tool_call(c.get("id") or f"call_{i}", c["name"], json.dumps(c.get("args") or {}))
            for i, c in enumerate(getattr(result, "tool_calls", None) or [])
        )
        if not text and not calls:
            raise BadResponse("the model returned an empty reply")
        usage_meta = getattr(result, "usage_metadata", None) or {}
        usage = {
            "prompt_tokens": int(usage_meta.get("input_tokens", 0)),
            "completion_tokens": int(usage_meta.get("output_tokens", 0)),
            "total_tokens": int(usage_meta.get("total_tokens", 0)),
        }
        return ChatReply(text, usage, calls)

    async def chat_stream(self, call: LlmCall, messages: list[dict[str, Any]]) -> ReplyStream:
        """ChatOpenAI.astream, open and past its first piece."""
        chunks = self._model(call).astream(to_langchain(messages))
        try:
            return await _ChunkStream(chunks).start()
        except BaseException:
            await chunks.aclose()
            raise

    async def aclose(self) -> None:
        """Close the httpx client."""
        await self.http.aclose()


async def open_llm_client(
    kind: Literal["http", "langchain"],
    stages: StageClient,
    *,
    timeout_s: float,
    max_reply_bytes: int,
    balancer: Balancer | None,
) -> LlmClient:
    """The one place the llm stage's client is chosen (`ORCH_LLM_CLIENT`)."""
    if kind == "http":
        return HttpLlmClient(stages)
    # ChatOpenAI needs an httpx client, through the same balancer as the stage calls (their
    # replicas' in-flight counts add up) and with the same reply cap as the plain client.
    http = make_client(
        timeout_s,
        max_connections=200,
        max_response_bytes=max_reply_bytes,
        wrap=(lambda t: BalancedTransport(t, balancer)) if balancer else None,
    )
    try:
        return await asyncio.to_thread(LangChainLlmClient, http)
    except BaseException:
        await http.aclose()
        raise
