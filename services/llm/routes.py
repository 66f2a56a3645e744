"""HTTP routes: OpenAI chat completions (plain and SSE streaming) and the model list."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from services.kit import ApiError
from services.llm.deps import DepsDep
from services.llm.engine import ContextLengthExceeded, PreparedPrompt
from services.llm.schemas import ChatCompletionRequest, to_messages, to_params, to_stops
from services.llm.service import RunResult
from services.llm.stops import cut_at_sentence_end

log = logging.getLogger("llm.routes")
router = APIRouter()


class _ClosingStreamingResponse(StreamingResponse):
    """A StreamingResponse that always closes its body iterator, so generation stops."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def _model_card(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "audio-orchestrator"}


@router.get("/v1/models")
@router.get("/models", include_in_schema=False)
async def list_models(deps: DepsDep) -> dict[str, Any]:
    """The served model (OpenAI list shape)."""
    return {"object": "list", "data": [_model_card(deps.service.engine.model_id, deps.created)]}


def _usage(prompt: PreparedPrompt, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt.n_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt.n_tokens + completion_tokens,
    }


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, deps: DepsDep) -> Any:
    """OpenAI chat completions; `stream: true` answers with SSE chunks ending in [DONE]."""
    settings, runner = deps.settings, deps.service
    model_id = runner.engine.model_id
    messages = to_messages(body, settings)
    params = to_params(body, settings)
    stops = to_stops(body, settings)
    result = RunResult()
    chunks = runner.stream(messages, settings.max_input_tokens, params, stops, result)
    try:
        # Takes a slot and builds the prompt (in a worker thread) now, so a full queue is a
        # plain 429 response and a prompt that cannot fit a plain 400.
        await anext(chunks)
    except ContextLengthExceeded as exc:
        await chunks.aclose()
        raise ApiError(
            400,
            f"the system message and newest user turn need {exc.needed} tokens; "
            f"the limit is {exc.limit}",
            param="messages",
            code="context_length_exceeded",
        ) from exc
    except BaseException:
        await chunks.aclose()
        raise
    prompt = result.prompt
    assert prompt is not None  # set by the runner before its first item
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        sse = _sse(chunks, result, prompt, completion_id, created, model_id, include_usage)
        return _ClosingStreamingResponse(
            sse,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        text = "".join([piece async for piece in chunks])
    finally:
        await chunks.aclose()
    if result.finish_reason == "length" and settings.cut_at_sentence:
        # A reply that ran out of tokens is spoken aloud: end it where a sentence ends.
        text = cut_at_sentence_end(text)
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model_id,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": result.finish_reason,
                }
            ],
            "usage": _usage(prompt, result.completion_tokens),
        }
    )


async def _sse(
    chunks: AsyncGenerator[str, None],
    result: RunResult,
    prompt: PreparedPrompt,
    completion_id: str,
    created: int,
    model_id: str,
    include_usage: bool,
) -> AsyncIterator[str]:
    def event(delta: dict[str, Any], finish: str | None = None) -> str:
        payload: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_id,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            payload["usage"] = None
        return f"data: {json.dumps(payload)}\n\n"

    try:
        yield event({"role": "assistant", "content": ""})
        async for piece in chunks:
            if piece:
                yield event({"content": piece})
        yield event({}, result.finish_reason)
        if include_usage:
            usage = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_id,
                "system_fingerprint": None,
                "choices": [],
                "usage": _usage(prompt, result.completion_tokens),
            }
            yield f"data: {json.dumps(usage)}\n\n"
    except ApiError as exc:
        # Headers are already sent: report the failure in-band, the way OpenAI streams do.
        yield f"data: {json.dumps(exc.body())}\n\n"
    except Exception as exc:  # a server fault mid-stream: say so in-band, never fake success
        log.error("stream failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        failure = ApiError(500, "generation failed", type="api_error", code="internal_error")
        yield f"data: {json.dumps(failure.body())}\n\n"
    finally:
        await chunks.aclose()
    yield "data: [DONE]\n\n"
