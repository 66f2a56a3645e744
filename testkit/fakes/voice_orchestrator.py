"""A fake orchestrator (real HTTP, real WAV replies) and a fake voice output for the bot."""

from __future__ import annotations

import asyncio
import base64
import functools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from services.discord_bot.handler import PlaybackUnavailable
from services.discord_bot.live import BufferedReply
from testkit.fakes.records import stage_record
from testkit.helpers import synth_speech, wav_bytes

REPLY_TEXT = "The answer is forty two."


@functools.lru_cache(maxsize=1)
def reply_wav() -> bytes:
    """Real speech at Piper's native 22.05 kHz, as a TTS stage would return it."""
    samples, rate = synth_speech(REPLY_TEXT, rate=None)
    return wav_bytes(samples, rate)


@dataclass
class FakeOrchestrator:
    """Implements /v1/voice and /mcp/transcript with knobs for failure modes."""

    transcript: str = "what is the meaning of life"
    fail_times: int = 0  # answer this many requests with `fail_status` before serving
    fail_status: int = 503
    retry_after: str | None = "0"
    hang_s: float = 0.0  # sleep this long before answering (to trigger client timeouts)
    with_audio: bool = True
    api_key: str | None = None
    requests: int = 0
    turns: Counter[str] = field(default_factory=Counter)  # session_id -> turns processed
    pipelines: list[str | None] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)  # X-Request-ID of every request
    uploads: list[bytes] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # transcripts sent to /mcp/transcript

    def _gate(self, request: Request) -> Response | None:
        self.requests += 1
        self.request_ids.append(request.headers.get("x-request-id", ""))
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": {"message": "invalid API key", "type": "auth"}}, 401)
        if self.fail_times > 0:
            self.fail_times -= 1
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return JSONResponse(
                {"error": {"message": "orchestrator is not ready: loading", "type": "x"}},
                self.fail_status,
                headers=headers,
            )
        return None

    def _stages(self, stt: bool, full: bool) -> list[dict[str, Any]]:
        stages = [stage_record("stt", "stt-local", "http://stt:9000", 123.4)] if stt else []
        if full:
            stages.append(stage_record("llm", "llm-flan", "http://llm:8100", 456.7, attempts=2))
            stages.append(stage_record("tts", "tts-piper", "http://tts:7000", 78.9))
        return stages

    def app(self) -> FastAPI:
        """The FastAPI app to serve with run_server."""
        app = FastAPI()

        @app.get("/health/ready")
        async def ready() -> dict[str, str]:
            return {"status": "ready"}

        @app.post("/v1/voice", response_model=None)
        async def voice(
            request: Request,
            file: UploadFile,
            session_id: str = Form(...),
            pipeline: str | None = Form(None),
            voice: str | None = Form(None),
        ) -> Response:
            if (refused := self._gate(request)) is not None:
                return refused
            if self.hang_s:
                await asyncio.sleep(self.hang_s)
            self.uploads.append(await file.read())
            self.pipelines.append(pipeline)
            if pipeline == "transcribe":  # STT-only: no conversation turn
                return JSONResponse(
                    {
                        "transcript": self.transcript,
                        "response": "",
                        "audio": None,
                        "session_id": session_id,
                        "pipeline": pipeline,
                        "blocked": False,
                        "stages": self._stages(True, False),
                    }
                )
            self.turns[session_id] += 1
            audio = base64.b64encode(reply_wav()).decode() if self.with_audio else None
            return JSONResponse(
                {
                    "transcript": self.transcript,
                    "response": REPLY_TEXT,
                    "audio": audio,
                    "session_id": session_id,
                    "pipeline": pipeline or "voice",
                    "blocked": False,
                    "stages": self._stages(True, True),
                }
            )

        @app.post("/mcp/transcript", response_model=None)
        async def transcript(request: Request) -> Response:
            if (refused := self._gate(request)) is not None:
                return refused
            body = await request.json()
            if not isinstance(body.get("transcript"), str) or not body["transcript"].strip():
                return JSONResponse(
                    {
                        "error": {
                            "message": "transcript: field required",
                            "type": "invalid_request_error",
                        }
                    },
                    422,
                )
            self.turns[body["session_id"]] += 1
            self.pipelines.append(body.get("pipeline"))
            self.texts.append(body["transcript"])
            out = {
                "response": REPLY_TEXT,
                "session_id": body["session_id"],
                "pipeline": body.get("pipeline") or "voice",
                "blocked": False,
                "stages": self._stages(False, True),
            }
            if body.get("audio"):
                out["audio"] = base64.b64encode(reply_wav()).decode() if self.with_audio else None
            return JSONResponse(out)

        return app


@dataclass
class FakeOutput:
    """Stands in for the Discord voice + text channel."""

    can_play: bool = True
    played: list[bytes] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    async def play(self, pcm48_stereo: bytes) -> None:
        if not self.can_play:
            raise PlaybackUnavailable("not connected to a voice channel")
        self.played.append(pcm48_stereo)

    async def send_text(self, text: str) -> None:
        self.texts.append(text)


@dataclass
class FakeLiveOutput:
    """Stands in for the voice channel in live mode: a player that reads 20 ms frames in time."""

    can_play: bool = True
    replies: list[BufferedReply] = field(default_factory=list)
    played: list[bytearray] = field(default_factory=list)  # what each reply's player read
    texts: list[str] = field(default_factory=list)

    def start_reply(self, reply: BufferedReply) -> None:
        if not self.can_play:
            raise PlaybackUnavailable("not connected to a voice channel")
        self.replies.append(reply)
        heard = bytearray()
        self.played.append(heard)

        def player() -> None:  # as discord.py's player thread: one frame per 20 ms
            while frame := reply.read_frame():
                heard.extend(frame)
                time.sleep(0.02)

        threading.Thread(target=player, daemon=True).start()

    async def send_text(self, text: str) -> None:
        self.texts.append(text)
