"""The LangChain LLM client: ChatOpenAI (callbacks, tracing) over an httpx client."""

from __future__ import annotations

import json
from typing import Any

import httpx

from services.orchestrator.backends.llm import LlmCall, PrimedStream, ReplyStream
from services.orchestrator.executor import BadResponse
from services.orchestrator.stages import ChatReply, api_base, wire_tool_call
from services.orchestrator.tools import schemas as tool_schemas

# LangChain fails this way on a 2xx reply that is not a chat completion: the provider's
# fault, so the executor may move on to the next one.
_UNUSABLE = (KeyError, TypeError, ValueError, AttributeError)


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


class _ChunkStream(PrimedStream):
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

    async def _close(self) -> None:
        """Close the generator and with it the provider's connection."""
        await self._chunks.aclose()


class LangChainLlmClient:
    """LangChain's ChatOpenAI, one per provider endpoint, over one httpx client."""

    name = "langchain"
    MAX_MODELS = 64  # endpoints kept; config reloads may retire some

    def __init__(self, http: httpx.AsyncClient) -> None:
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
