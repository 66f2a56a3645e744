"""The plain LLM client: OpenAI chat completions over the stage calls' shared aiohttp session."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from services.orchestrator.backends.llm import LlmCall, PrimedStream, ReplyStream
from services.orchestrator.executor import BadResponse, ProviderError, ReplyTooLarge
from services.orchestrator.stages import ChatReply, StageClient, open_stream
from services.orchestrator.tools import schemas as tool_schemas


class _SseStream(PrimedStream):
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

    async def _close(self) -> None:
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
