"""HTTP endpoints: /mcp/transcript, /v1/voice, /v1/chat/completions, /v1/pipelines, admin."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.kit import ApiError
from services.kit.limits import check_limit, check_text_length, read_upload
from services.orchestrator.auth import Caller, CallerDep, require_admin, require_client
from services.orchestrator.config import ConfigError
from services.orchestrator.deps import Deps, DepsDep
from services.orchestrator.history import Turn
from services.orchestrator.run import Plan, RunInput, RunResult, check_session_id
from services.orchestrator.runtime import Runtime
from services.orchestrator.schemas import ChatRequest, TranscriptRequest
from services.orchestrator.settings import Settings

router = APIRouter(dependencies=[Depends(require_client)])
admin = APIRouter(dependencies=[Depends(require_admin)])

LONGER_THAN = "{name} is longer than {limit} characters"


def _check_text(text: str, settings: Settings, param: str) -> str:
    if not text.strip():
        raise ApiError(400, f"{param} is empty", param=param, code="empty_text")
    return check_text_length(text, settings.max_text_chars, param, message=LONGER_THAN)


def _run_body(result: RunResult) -> dict[str, Any]:
    return {
        "response": result.response,
        "session_id": result.session_id,
        "pipeline": result.pipeline,
        "blocked": result.blocked,
        "block_reason": result.block_reason,
        "prompt_version": result.prompt_version,
        "config_version": result.config_version,
        "stages": result.stages,
    }


@router.post("/mcp/transcript")
async def transcript(body: TranscriptRequest, deps: DepsDep, caller: CallerDep) -> JSONResponse:
    """Run a transcript through the (active) pipeline's text stages."""
    text = _check_text(body.transcript, deps.settings, "transcript")
    session_id = check_session_id(body.session_id)
    result = await deps.service.run(
        RunInput(
            session_id=session_id,
            pipeline=body.pipeline,
            text=text,
            want_audio=body.audio,
            voice=body.voice,
            scope=caller.scope,
            identity=caller.identity,
        )
    )
    out = _run_body(result)
    if body.audio:
        out["audio"] = base64.b64encode(result.audio).decode() if result.audio else None
        out["tts_engine"] = result.tts_engine
    return JSONResponse(out, headers={"X-Session-ID": session_id})


@router.post("/v1/voice", response_model=None)
async def voice(
    deps: DepsDep,
    caller: CallerDep,
    file: Annotated[UploadFile, File(description="Speech audio (WAV, FLAC, OGG, MP3).")],
    session_id: Annotated[str | None, Form()] = None,
    pipeline: Annotated[str | None, Form()] = None,
    voice: Annotated[str | None, Form(max_length=64)] = None,
    response_format: Annotated[Literal["json", "wav"], Query()] = "json",
) -> Response:
    """Audio in → transcript, reply and reply audio (JSON with base64 WAV, or the WAV)."""
    settings = deps.settings
    data = await read_upload(
        file,
        settings.max_audio_bytes,
        code="audio_too_large",
        message="audio is larger than {limit} bytes",
    )
    if not data:
        raise ApiError(400, "audio file is empty", param="file", code="empty_audio")
    sid = check_session_id(session_id)
    plan = deps.service.plan(pipeline)
    pipe = plan.pipe
    if response_format == "wav" and not pipe.has("tts"):
        raise ApiError(
            400,
            f"pipeline '{pipe.name}' has no tts stage; use response_format=json",
            param="response_format",
            code="no_audio_output",
        )
    result = await deps.service.run(
        RunInput(
            session_id=sid,
            pipeline=pipe.name,
            audio=data,
            filename=file.filename or "audio.wav",
            want_audio=True,
            voice=voice,
            scope=caller.scope,
            identity=caller.identity,
        ),
        plan,
    )
    if response_format == "wav":
        if result.audio is None:
            raise ApiError(
                502, "the optional tts stage produced no audio", param="tts", code="no_audio_output"
            )
        headers = {
            "X-Session-ID": sid,
            "X-Pipeline": result.pipeline,
            "X-Blocked": "true" if result.blocked else "false",
            # Text in headers must be latin-1: percent-encode it.
            "X-Transcript": quote(result.transcript or ""),
            "X-Response-Text": quote(result.response or ""),
        }
        if result.tts_engine:
            headers["X-TTS-Engine"] = result.tts_engine
        return Response(result.audio, media_type="audio/wav", headers=headers)
    out = _run_body(result)
    out["transcript"] = result.transcript
    out["audio"] = base64.b64encode(result.audio).decode() if result.audio else None
    out["tts_engine"] = result.tts_engine
    return JSONResponse(out, headers={"X-Session-ID": sid})


def _check_history(count: int, settings: Settings, what: str) -> None:
    check_limit(
        count,
        settings.max_history_messages,
        status=400,
        param="messages",
        code="history_too_long",
        message=what + "; the limit is {limit}",
    )


def _client_texts(body: ChatRequest, settings: Settings) -> tuple[tuple[str, str], ...]:
    """Every text of the earlier messages, whatever their role: all are the client's words.

    A client may forge `assistant`, `system` or `tool` turns as easily as `user` ones, so
    each goes to the input guard (one call with all of them) before anything reaches the LLM.
    """
    earlier = body.messages[:-1]
    _check_history(len(earlier), settings, "messages holds {size} earlier messages")
    texts: list[tuple[str, str]] = []
    for i, message in enumerate(earlier):
        for text in message.texts():
            check_text_length(text, settings.max_text_chars, f"messages[{i}]", message=LONGER_THAN)
            if text.strip():
                texts.append((message.role, text))
    # Tool-call arguments are texts too: the guard's item limit counts texts, not messages.
    _check_history(len(texts), settings, "earlier messages hold {size} texts")
    if sum(len(t) for _, t in texts) > settings.max_history_chars:
        raise ApiError(
            400,
            f"earlier messages hold more than {settings.max_history_chars} characters",
            param="messages",
            code="history_too_long",
        )
    return tuple(texts)


def _chat_input(
    body: ChatRequest, request: Request, deps: Deps, caller: Caller
) -> tuple[RunInput, Plan]:
    if (body.model_extra or {}).get("tools"):
        # Running a client's functions would need the client in the loop; silently dropping
        # them would let it believe the model saw them.
        raise ApiError(
            400,
            "client-supplied tools are not supported; the pipeline's built-in tools "
            "(config: llm stage `tools`) run inside the orchestrator",
            param="tools",
            code="tools_not_supported",
        )
    last = body.messages[-1]
    if last.role != "user":
        raise ApiError(
            400,
            "the last message must come from the user",
            param="messages",
            code="no_user_message",
        )
    settings = deps.settings
    text = _check_text(last.text(), settings, "messages")
    context = _client_texts(body, settings)
    plan = deps.service.plan(body.model, otherwise=settings.chat_pipeline)
    pipe = plan.pipe
    if not pipe.has("llm"):
        raise ApiError(
            400,
            f"pipeline '{pipe.name}' has no llm stage",
            param="model",
            code="pipeline_without_llm",
        )
    header_sid = request.headers.get("x-session-id")
    sid_raw = header_sid or body.user
    history: list[Turn] | None = None
    if not sid_raw:
        # No session: the client carries the conversation, as OpenAI clients do.
        history = [
            Turn(role=m.role, content=m.text())
            for m in body.messages[:-1]
            if m.role in ("user", "assistant") and m.text()
        ]
    inp = RunInput(
        session_id=check_session_id(sid_raw),
        pipeline=pipe.name,
        text=text,
        history=history,
        context=context,
        scope=caller.scope,
        identity=caller.identity,
    )
    return inp, plan


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatRequest, request: Request, deps: DepsDep, caller: CallerDep
) -> Response:
    """OpenAI chat facade over the guarded conversation (session from `user` or X-Session-ID)."""
    inp, plan = _chat_input(body, request, deps, caller)
    result = await deps.service.run(inp, plan)
    cid = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    finish = "content_filter" if result.blocked else "stop"
    extra = {
        "session_id": result.session_id,
        "blocked": result.blocked,
        "block_reason": result.block_reason,
        "prompt_version": result.prompt_version,
        "stages": result.stages,
    }
    headers = {"X-Session-ID": result.session_id}
    if body.stream:
        return StreamingResponse(
            _stream(cid, created, result, finish, extra),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache"},
        )
    usage = result.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return JSONResponse(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": result.pipeline,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {"role": "assistant", "content": result.response or ""},
                }
            ],
            "usage": usage,
            "orchestrator": extra,
        },
        headers=headers,
    )


async def _stream(
    cid: str, created: int, result: RunResult, finish: str, extra: dict[str, Any]
) -> AsyncIterator[str]:
    # The output guard must see the whole reply first, so the guarded text is sent in pieces.
    def chunk(delta: dict[str, Any], reason: str | None, **more: Any) -> str:
        payload = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": result.pipeline,
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
            **more,
        }
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    words = (result.response or "").split(" ")
    for i in range(0, len(words), 4):
        piece = " ".join(words[i : i + 4])
        yield chunk({"content": piece if i == 0 else " " + piece}, None)
    yield chunk({}, finish, orchestrator=extra)
    yield "data: [DONE]\n\n"


def _describe(deps: Deps, runtime: Runtime) -> dict[str, Any]:
    file = runtime.loaded.file
    pipelines: dict[str, Any] = {}
    for name, pipe in runtime.loaded.pipelines.items():
        pipelines[name] = {
            "input": "audio" if pipe.takes_audio else "text",
            "available": pipe.unavailable is None,
            "unavailable_reason": pipe.unavailable,
            "dropped": list(pipe.dropped),
            "composition": pipe.composition(),
            "stages": [
                {
                    "stage": s.stage,
                    "optional": s.optional,
                    "options": s.options,
                    "tools": list(s.tools),
                    "providers": [
                        {
                            "name": p,
                            "url": runtime.providers[p].url,
                            "capability": runtime.providers[p].capability,
                            "supports_tools": runtime.providers[p].supports_tools,
                        }
                        for p in s.providers
                    ],
                }
                for s in pipe.stages
            ],
        }
    return {
        "active_pipeline": file.active_pipeline,
        "config_version": runtime.version,
        "config_digest": runtime.loaded.digest,
        "prompt_version": file.system_prompt.version,
        "loaded_at": runtime.loaded_at,
        "last_reload_error": deps.service.config.last_error,
        "pipelines": pipelines,
        "circuits": deps.breakers.snapshot(),
    }


@router.get("/v1/pipelines")
async def list_pipelines(deps: DepsDep) -> dict[str, Any]:
    """Pipelines of the config in use, their composition and the circuit states."""
    described = _describe(deps, deps.service.config.current)
    # Replicas behind each balanced host:port (address, calls in flight, circuit state).
    described["replicas"] = deps.balancer.snapshot() if deps.balancer is not None else {}
    return described


@admin.post("/admin/reload")
async def reload(deps: DepsDep) -> dict[str, Any]:
    """Validate and load the pipeline file now; a bad file is refused and the old one kept."""
    manager = deps.service.config
    try:
        runtime = await manager.load("admin request")
    except ConfigError as exc:
        raise ApiError(
            400,
            f"config rejected, version {manager.current.version} kept: {exc}",
            code="invalid_config",
        ) from exc
    return {"reloaded": True, **_describe(deps, runtime)}
