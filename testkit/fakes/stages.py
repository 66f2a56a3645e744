"""Fake stage services implementing the real HTTP APIs of DESIGN.md, with failure knobs.

One app serves every stage endpoint (denoise, stt, guardrails, llm, tts) so a test can point
any provider at it. Knobs: fail_times (first N calls fail with fail_status), status (every
call fails with it), latency_s, hang, stream_break_after (a stream that dies mid-reply). It
also records, per X-Request-ID, how long its handlers ran, so the benchmark can subtract the
stages' own processing time.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import random
import struct
import threading
import time
import wave
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kit.app import freeze_heap


@dataclass
class Knobs:
    """Behaviour switches a test flips at run time."""

    name: str = "fake"
    fail_times: int = 0
    fail_status: int = 503
    status: int | None = None
    latency_s: float = 0.0
    # Each call's latency is drawn from latency_s × [1 − jitter, 1 + jitter] (model servers
    # vary); 0 keeps it exact, as the tests need.
    latency_jitter: float = 0.0
    hang: bool = False
    garbage: bool = False  # answer 200 with an HTML page instead of the API's shape
    transcript: str = "what is the weather like"
    reply: str | None = None  # fixed LLM reply; default echoes what it saw
    # When the request offers tools: ask for these calls (name, JSON arguments) instead of
    # answering, unless the turn already holds tool results (or `tool_calls_always`).
    tool_calls: tuple[tuple[str, str], ...] = ()
    tool_calls_always: bool = False
    blocked_words: tuple[str, ...] = ("bomb",)
    # Streaming chat (`stream: true`): the pause before each word; streams the client dropped.
    token_delay_s: float = 0.0
    streams_aborted: int = 0
    # A provider that dies mid-reply: after this many streamed words the stream breaks, as
    # `stream_break` says: "drop" (the connection is cut, no end of the chunked body),
    # "error" (an OpenAI-style error event in the stream) or "stall" (no more bytes).
    stream_break_after: int | None = None
    stream_break: str = "drop"
    streams_broken: int = 0
    tts_seconds: float = 0.1  # length of the speech each TTS call returns
    # False: the guard ignores `history` like a guardrails from before it existed.
    checks_history: bool = True
    end_users: list[str | None] = field(default_factory=list)  # X-End-User-ID of guard calls
    calls: Counter[str] = field(default_factory=Counter)
    hosts: Counter[str] = field(default_factory=Counter)  # Host header of each call
    requests: list[dict[str, Any]] = field(default_factory=list)
    stt_audio: list[bytes] = field(default_factory=list)  # each transcription's file, as sent
    request_ids: list[tuple[str, str | None]] = field(default_factory=list)
    processing_ms: dict[str, float] = field(default_factory=dict)
    record_processing: bool = False
    # Tests read back what was sent; a benchmark's fake serves thousands of calls and must
    # not grow (a growing heap makes its collections, and so the measurement, drift).
    keep_history: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, entry: dict[str, Any]) -> None:
        """Keep one request body for the test to inspect (nothing when keep_history is off)."""
        if self.keep_history:
            self.requests.append(entry)

    def reset(self) -> None:
        """Back to a healthy fake with no history."""
        self.fail_times = 0
        self.status = None
        self.latency_s = 0.0
        self.hang = False
        self.garbage = False
        self.tool_calls = ()
        self.tool_calls_always = False
        self.checks_history = True
        self.token_delay_s = 0.0
        self.streams_aborted = 0
        self.stream_break_after = None
        self.stream_break = "drop"
        self.streams_broken = 0
        self.tts_seconds = 0.1
        self.calls.clear()
        self.hosts.clear()
        self.requests.clear()
        self.stt_audio.clear()
        self.request_ids.clear()
        self.end_users.clear()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "fake_error", "param": None, "code": None}},
        status_code=status,
    )


def tiny_wav(seconds: float = 0.1, rate: int = 16000) -> bytes:
    """A valid PCM16 WAV of silence."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return buf.getvalue()


def tiny_tone(seconds: float, rate: int = 16000) -> bytes:
    """A PCM16 WAV of a quiet 220 Hz tone (non-silent, so a test can see the audio arrive)."""
    n = int(seconds * rate)
    samples = [int(3000 * math.sin(2 * math.pi * 220 * i / rate)) for i in range(n)]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{n}h", *samples))
    return buf.getvalue()


class BrokenStream(Exception):
    """Raised inside a streamed reply on purpose: the server cuts the connection mid-body."""


async def _sse(knobs: Knobs, content: str) -> AsyncIterator[str]:
    """An OpenAI chat-completion stream of `content`, word by word (maybe broken mid-way)."""
    words = content.split(" ")
    finished = False
    try:
        for i, word in enumerate(words):
            if knobs.stream_break_after is not None and i >= knobs.stream_break_after:
                finished = True  # broken by the server, not dropped by the client
                knobs.streams_broken += 1
                async for line in _break(knobs):
                    yield line
                return
            if knobs.token_delay_s:
                await asyncio.sleep(knobs.token_delay_s)
            piece = word if i == 0 else " " + word
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n"
        done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n"
        finished = True
    finally:
        if not finished:
            knobs.streams_aborted += 1


async def _break(knobs: Knobs) -> AsyncIterator[str]:
    """How a stream dies mid-reply (`Knobs.stream_break`)."""
    if knobs.stream_break == "error":
        error = {"error": {"message": "the model server failed", "type": "server_error"}}
        yield f"data: {json.dumps(error)}\n\n"
        return
    if knobs.stream_break == "stall":
        until = time.monotonic() + 60
        while knobs.stream_break == "stall" and time.monotonic() < until:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # polls, so a test that resets the knob frees the server
        return
    # uvicorn logs the exception and closes the connection: the chunked body never ends.
    raise BrokenStream("connection cut mid-reply on purpose")


class ProcessingTimer:
    """Pure-ASGI wrapper: per X-Request-ID, the time from a request's arrival in the app to
    its last response byte — the stage's own processing, framework parsing included."""

    def __init__(self, app: ASGIApp, knobs: Knobs) -> None:
        self.app = app
        self.knobs = knobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, timing HTTP requests."""
        if scope["type"] != "http" or not self.knobs.record_processing:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = dict(scope["headers"]).get(b"x-request-id", b"").decode()

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                ms = (time.perf_counter() - started) * 1000
                with self.knobs.lock:
                    self.knobs.processing_ms[rid] = self.knobs.processing_ms.get(rid, 0.0) + ms

        await self.app(scope, receive, timed_send)


def fake_stage_app(knobs: Knobs) -> FastAPI:
    """A FastAPI app speaking every stage API."""
    app = FastAPI()
    app.add_middleware(ProcessingTimer, knobs=knobs)

    async def gate(endpoint: str, request: Request) -> Response | None:
        knobs.calls[endpoint] += 1
        knobs.hosts[request.headers.get("host", "")] += 1
        if knobs.keep_history:
            knobs.request_ids.append((endpoint, request.headers.get("x-request-id")))
        hang_until = time.monotonic() + 60
        while knobs.hang and time.monotonic() < hang_until:  # noqa: ASYNC110 (set from test thread)
            # Polls so a test that clears `hang` releases the server for a quick shutdown.
            await asyncio.sleep(0.05)
        if knobs.latency_s:
            spread = knobs.latency_jitter * (2 * random.random() - 1)
            await asyncio.sleep(knobs.latency_s * (1 + spread))
        if knobs.garbage:
            return Response(b"<html>proxy login</html>", media_type="text/html")
        if knobs.status is not None:
            return _error(knobs.status, f"{knobs.name} forced status {knobs.status}")
        if knobs.fail_times > 0:
            knobs.fail_times -= 1
            return _error(knobs.fail_status, f"{knobs.name} failing on purpose")
        return None

    async def gate_json(endpoint: str, request: Request) -> tuple[Any, Response | None]:
        """The JSON body and the gate's answer; a request that passes is remembered."""
        body = await request.json()
        err = await gate(endpoint, request)
        if err is None:
            knobs.remember({"endpoint": endpoint, **body})
        return body, err

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/fake/latency")
    async def set_latency(ms: float, jitter: float = 0.0) -> dict[str, float]:
        knobs.latency_s = ms / 1000
        knobs.latency_jitter = jitter
        return {"latency_ms": ms, "jitter": jitter}

    @app.get("/fake/processing")
    async def processing() -> dict[str, float]:
        """Handler time per X-Request-ID since the last read (the read drains it)."""
        with knobs.lock:
            spent, knobs.processing_ms = knobs.processing_ms, {}
            return spent

    @app.post("/denoise")
    async def denoise(request: Request) -> Response:
        body = await request.body()
        if (err := await gate("denoise", request)) is not None:
            return err
        if not body.startswith(b"RIFF"):
            return _error(415, "not a WAV file")
        return Response(body, media_type="audio/wav", headers={"X-Denoise-Engine": "fake"})

    @app.post("/v1/audio/transcriptions")
    async def transcribe(request: Request) -> Response:
        form = await request.form()
        if (err := await gate("stt", request)) is not None:
            return err
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or form.get("model") is None:
            return _error(400, "file and model are required")
        data = await upload.read()
        knobs.remember(
            {
                "endpoint": "stt",
                "model": form.get("model"),
                "language": form.get("language"),
                "bytes": len(data),
            }
        )
        if knobs.keep_history:
            knobs.stt_audio.append(data)
        if not data.startswith(b"RIFF"):
            return _error(415, "could not decode audio: not a supported format")
        return JSONResponse({"text": knobs.transcript})

    @app.post("/validate/{direction}")
    async def validate(direction: str, request: Request) -> Response:
        body = await request.json()
        if (err := await gate(f"guard_{direction}", request)) is not None:
            return err
        text = str(body.get("text", ""))
        raw = body.get("history", []) if knobs.checks_history else []
        history = [str(h["text"] if isinstance(h, dict) else h) for h in raw]
        knobs.remember({"endpoint": f"guard_{direction}", **body})
        if knobs.keep_history:
            knobs.end_users.append(request.headers.get("x-end-user-id"))
        seen = " ".join([*history, text]).lower()
        hit = next((w for w in knobs.blocked_words if w in seen), None)
        if direction == "input":
            out: dict[str, Any] = {
                "safe": hit is None,
                "reason": f"blocked word: {hit}" if hit else None,
                "sanitized": text.replace("555-1234", "[PHONE]"),
            }
            if knobs.checks_history:
                out["history_checked"] = len(history)
        else:
            filtered = text.replace("555-1234", "[PHONE]")
            out = {
                "safe": hit is None,
                "reason": f"blocked word: {hit}" if hit else None,
                "filtered": filtered,
                "redactions": int(filtered != text),
            }
        return JSONResponse(out)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body, err = await gate_json("llm", request)
        if err is not None:
            return err
        messages = body["messages"]
        users = [m["content"] for m in messages if m["role"] == "user"]
        results = [m["content"] for m in messages if m["role"] == "tool"]
        offered = {t["function"]["name"] for t in body.get("tools", [])}
        message: dict[str, Any]
        if (
            knobs.tool_calls
            and offered
            and body.get("tool_choice") != "none"
            and (knobs.tool_calls_always or not results)
        ):
            calls = [
                {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
                for i, (n, a) in enumerate(knobs.tool_calls)
            ]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
        else:
            content = (
                knobs.reply
                if knobs.reply is not None
                else f"[{knobs.name}] seen: " + " | ".join(users)
            )
            if results:
                content += " | tools said: " + " | ".join(results)
            message = {"role": "assistant", "content": content}
        if body.get("stream") and "tool_calls" not in message:
            stream = _sse(knobs, message["content"])
            return StreamingResponse(stream, media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
                        "message": message,
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            }
        )

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        body, err = await gate_json("tts", request)
        if err is not None:
            return err
        if not str(body.get("input", "")).strip():
            return _error(400, "input is empty")
        speech = tiny_tone(knobs.tts_seconds)
        return Response(speech, media_type="audio/wav", headers={"X-TTS-Engine": knobs.name})

    return app


def main() -> None:
    """Serve one fake on a port (the benchmark runs fakes in their own process)."""
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="fake")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="time every stage call takes (sleep)"
    )
    args = parser.parse_args()
    knobs = Knobs(
        name=args.name,
        record_processing=True,
        keep_history=False,
        latency_s=args.latency_ms / 1000,
    )
    app = fake_stage_app(knobs)
    freeze_heap()  # as the real services do once started
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
