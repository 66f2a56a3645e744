"""`WS /v1/realtime?model=<pipeline>`: the OpenAI Realtime API over the orchestrator's pipelines."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse

from services.kit import ApiError
from services.kit.app import get_state
from services.kit.auth import bearer_of
from services.kit.vad import EnergyDetector, SileroDetector, SpeechDetector
from services.orchestrator.auth import identify
from services.orchestrator.deps import Deps, SettingsDep
from services.orchestrator.realtime.protocol import SessionConfig, error_event, new_id
from services.orchestrator.realtime.session import RealtimeSession, SessionDeps
from services.orchestrator.run import RunInput, check_session_id
from services.orchestrator.settings import Settings

log = logging.getLogger("orchestrator.realtime")
realtime_router = APIRouter()
# Browsers cannot set headers on a WebSocket: OpenAI's clients put the key in a subprotocol.
_KEY_PROTOCOL = "openai-insecure-api-key."
_TRY_AGAIN_LATER = 1013
_POLICY = 1008


def _token(ws: WebSocket) -> str | None:
    token = bearer_of(ws.headers.get("authorization"))
    if token is not None:
        return token
    for proto in ws.scope.get("subprotocols") or []:
        if proto.startswith(_KEY_PROTOCOL):
            return str(proto[len(_KEY_PROTOCOL) :])
    return None


def detector_factory(settings: Settings) -> Callable[[], SpeechDetector]:
    """A fresh speech detector per session (Silero shares one ONNX session, stateless)."""
    if settings.realtime_vad == "energy":
        return EnergyDetector
    return SileroDetector


async def _deny(ws: WebSocket, err: ApiError) -> None:
    """Refuse the handshake with the HTTP status and error envelope (close when unsupported)."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse(err.body(), err.status, headers=err.headers))
    else:
        await ws.close(code=_POLICY, reason=err.message[:120])


async def _refuse_after_accept(ws: WebSocket, code: str, message: str, close_code: int) -> None:
    # The API reports admission errors as an `error` event after the upgrade.
    await ws.send_text(json.dumps(error_event(code, message, kind="server_error")))
    await ws.close(code=close_code, reason=message[:120])


@realtime_router.websocket("/v1/realtime")
async def realtime(
    ws: WebSocket, settings: SettingsDep, model: str | None = None, session_id: str | None = None
) -> None:
    """A live voice session (events: docs/services/realtime.md)."""
    try:
        deps = get_state(ws).require(Deps)
        caller = identify(ws, _token(ws), settings)
        sid = check_session_id(session_id or "rt_" + new_id("sess")[5:])
    except ApiError as exc:
        await _deny(ws, exc)
        return
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol="realtime" if "realtime" in offered else None)
    runner = deps.service
    try:
        plan = runner.plan(model, otherwise=settings.realtime_pipeline)
        if not plan.pipe.has("llm"):
            raise ApiError(400, f"pipeline '{plan.pipe.name}' has no llm stage", code="no_llm")
        if settings.realtime_vad == "silero":
            # The first session pays the model load (~1 s), in a thread: not on the event loop.
            await asyncio.to_thread(SileroDetector)
    except ApiError as exc:
        await _refuse_after_accept(ws, exc.code or "invalid_model", exc.message, _POLICY)
        return
    except (ImportError, OSError, RuntimeError) as exc:
        reason = f"server VAD unavailable: {type(exc).__name__}: {exc}"
        log.error("realtime session refused: %s", reason)
        await _refuse_after_accept(ws, "vad_unavailable", reason, _TRY_AGAIN_LATER)
        return
    if not deps.live.try_open():
        await _refuse_after_accept(
            ws,
            "session_limit_reached",
            f"the server holds its maximum of {settings.realtime_max_sessions} live sessions; "
            "try again later",
            _TRY_AGAIN_LATER,
        )
        return
    try:
        config = SessionConfig(
            id=new_id("sess"),
            model=plan.pipe.name,
            instructions=plan.runtime.loaded.file.system_prompt.text,
        )
        session = SessionDeps(runner, settings, runner.kit.metrics, detector_factory(settings))
        base = RunInput(session_id=sid, scope=caller.scope, identity=caller.identity)
        await RealtimeSession(ws, session, config, base).serve()
    finally:
        deps.live.close()
