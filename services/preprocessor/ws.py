"""WebSocket `/denoise/ws`: a continuous PCM16 stream with engine state kept per connection.

Protocol: after connecting the server sends a JSON text message
`{"type": "ready", "engine", "sample_rate", "latency_samples"}`. Every binary message (PCM16
mono) is answered by one binary message of the same length: the denoised signal delayed by
`latency_samples`. The text message `flush` (or `{"type": "flush"}`) returns the last
`latency_samples` samples as one binary message, then `{"type": "flushed", ...}`, and starts
a fresh engine state. Errors are sent as the JSON error envelope before the server closes.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from services.kit import ApiError
from services.kit.app import get_state
from services.kit.audio import from_pcm16, to_pcm16
from services.preprocessor.deps import Deps
from services.preprocessor.engine import FixedLatencyStream
from services.preprocessor.service import Denoiser

ws_router = APIRouter()

# RFC 6455 close codes.
_POLICY = 1008
_INVALID_DATA = 1007
_TOO_BIG = 1009
_TRY_LATER = 1013


async def _fail(ws: WebSocket, err: ApiError, close_code: int) -> None:
    await ws.send_text(json.dumps(err.body()))
    await ws.close(code=close_code, reason=err.message[:120])


def _is_flush(text: str) -> bool:
    if text.strip() == "flush":
        return True
    try:
        msg: Any = json.loads(text)
    except ValueError:
        return False
    return isinstance(msg, dict) and msg.get("type") == "flush"


@ws_router.websocket("/denoise/ws")
async def denoise_ws(websocket: WebSocket, sample_rate: int = 16000) -> None:
    """Continuous denoising of a PCM16 stream (see module docstring for the protocol)."""
    await websocket.accept()
    try:
        # After accept, so a refusal reaches the client as the JSON envelope, not a bare close.
        denoiser = get_state(websocket).require(Deps).service
        denoiser.take_stream(sample_rate)
    except ApiError as err:
        await _fail(websocket, err, _TRY_LATER if err.status in (429, 503) else _POLICY)
        return
    stream: FixedLatencyStream | None = None
    try:
        stream = await denoiser.open_stream(sample_rate)
        hello = {
            "type": "ready",
            "engine": denoiser.engine.name,
            "sample_rate": sample_rate,
            "latency_samples": stream.latency,
        }
        await websocket.send_text(json.dumps(hello))
        await _serve(websocket, denoiser, stream, sample_rate)
    except WebSocketDisconnect:
        pass
    except ApiError as err:  # the work queue is full
        await _fail(websocket, err, _TRY_LATER)
    finally:
        denoiser.drop_stream()
        if stream is not None:
            stream.close()


async def _serve(ws: WebSocket, denoiser: Denoiser, stream: FixedLatencyStream, rate: int) -> None:
    samples_in = 0
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
        data = msg.get("bytes")
        if data is None:
            if _is_flush(msg.get("text") or ""):
                tail = await denoiser.flush(stream)
                await ws.send_bytes(to_pcm16(tail))
                await ws.send_text(json.dumps({"type": "flushed", "samples": samples_in}))
                samples_in = 0
                continue
            await _fail(
                ws, ApiError(400, "text messages must be 'flush'", code="invalid_message"), _POLICY
            )
            return
        limit = denoiser.settings.ws_max_frame_bytes
        if len(data) > limit:
            await _fail(
                ws,
                ApiError(
                    413,
                    f"frame of {len(data)} bytes exceeds {limit}",
                    code="frame_too_large",
                ),
                _TOO_BIG,
            )
            return
        try:
            block = from_pcm16(data)
        except ApiError as err:
            await _fail(ws, err, _INVALID_DATA)
            return
        out = await denoiser.process(stream, block, rate)
        samples_in += len(block)
        await ws.send_bytes(to_pcm16(out))
