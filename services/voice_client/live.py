"""`--live`: one spoken turn over the orchestrator's realtime WebSocket, through the openai SDK.

The audio is streamed as 24 kHz PCM16 at real-time pace (as a microphone would), followed by
silence so the server's VAD hears the end of the turn; the reply's audio deltas are collected
into a WAV. Timings are measured on the client: end of speech sent → speech_stopped → first
reply audio byte → response.done.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.kit.audio import decode_audio, encode_wav, to_pcm16

RATE = 24_000
CHUNK_MS = 40


@dataclass
class LiveResult:
    """What one live turn produced, with client-side timings in seconds."""

    transcript: str | None = None
    response: str = ""
    status: str = ""
    audio: bytes = b""  # PCM16 24 kHz
    speech_end_sent: float = 0.0  # when the last speech sample left (perf_counter)
    speech_stopped: float | None = None
    first_audio: float | None = None
    done: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def wav(self) -> bytes:
        """The reply audio as a WAV file."""
        samples = np.frombuffer(self.audio, dtype="<i2").astype(np.float32) / 32768.0
        return encode_wav(samples, RATE)

    def since_speech_end(self, at: float | None) -> float | None:
        """Seconds from the end of the sent speech to `at`."""
        return None if at is None else at - self.speech_end_sent


def ws_url(base_url: str) -> str:
    """The SDK's websocket base for an orchestrator base URL (http → ws, plus /v1)."""
    base = base_url.rstrip("/")
    return base.replace("https://", "wss://").replace("http://", "ws://") + "/v1"


async def _send(conn: Any, samples: np.ndarray, pace: float) -> None:
    step = RATE * CHUNK_MS // 1000
    started = time.perf_counter()
    for n, i in enumerate(range(0, len(samples), step)):
        pcm = to_pcm16(samples[i : i + step])
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
        if pace > 0:
            # Against the clock, not per chunk: sleeps oversleep and would drift.
            due = started + (n + 1) * CHUNK_MS / 1000 / pace
            await asyncio.sleep(max(0.0, due - time.perf_counter()))


async def live_turn(
    base_url: str,
    audio_file: bytes,
    *,
    api_key: str | None = None,
    pipeline: str = "voice",
    session_id: str | None = None,
    pace: float = 1.0,
    tail_s: float = 1.5,
    timeout_s: float = 120.0,
) -> LiveResult:
    """Stream one recording to /v1/realtime and collect the reply (server VAD ends the turn)."""
    from openai import AsyncOpenAI

    speech = decode_audio(audio_file, RATE).samples
    client = AsyncOpenAI(
        api_key=api_key or "not-needed",
        base_url=base_url.rstrip("/") + "/v1",
        websocket_base_url=ws_url(base_url),
        max_retries=0,
    )
    result = LiveResult()
    query = {"session_id": session_id} if session_id else {}
    async with client.realtime.connect(model=pipeline, extra_query=query) as conn:
        await _send(conn, speech, pace)
        result.speech_end_sent = time.perf_counter()
        sender = asyncio.create_task(_send(conn, np.zeros(int(tail_s * RATE), np.float32), pace))
        try:
            async with asyncio.timeout(timeout_s):
                await _collect(conn, result)
        finally:
            sender.cancel()
    return result


async def _collect(conn: Any, result: LiveResult) -> None:
    chunks: list[bytes] = []
    async for ev in conn:
        now = time.perf_counter()
        if ev.type == "input_audio_buffer.speech_stopped" and result.speech_stopped is None:
            result.speech_stopped = now
        elif ev.type == "conversation.item.input_audio_transcription.completed":
            result.transcript = ev.transcript
        elif ev.type == "response.output_audio.delta":
            if result.first_audio is None:
                result.first_audio = now
            chunks.append(base64.b64decode(ev.delta))
        elif ev.type == "error":
            result.errors.append(f"{ev.error.code}: {ev.error.message}")
        elif ev.type == "conversation.item.input_audio_transcription.failed":
            result.errors.append(f"transcription failed: {ev.error.message}")
            return
        elif ev.type == "response.done":
            result.done = now
            result.status = ev.response.status or ""
            output = ev.response.output or []
            content = output[0].content if output else []
            result.response = (content[0].transcript or "") if content else ""
            break
    result.audio = b"".join(chunks)
