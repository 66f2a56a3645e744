"""Live sessions: the orchestrator's `WS /v1/realtime` through the openai SDK's realtime client.

Audio goes both ways as 24 kHz mono PCM16 (the API's only PCM rate). `live_session` opens one
session; `LiveSession.stream` sends audio at real-time pace as a microphone would; `live_turn`
is one spoken turn with client-side timings (what `voice_client --live` and the realtime
benchmark run). The openai package (the `orchestrator` extra) is imported only here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openai.resources.realtime.realtime import AsyncRealtimeConnection
    from openai.types.realtime import RealtimeServerEvent

RATE = 24_000
CHUNK_MS = 40
_BYTES_PER_SECOND = RATE * 2


def ws_url(base_url: str) -> str:
    """The SDK's websocket base for an orchestrator base URL (http → ws, plus /v1)."""
    base = base_url.rstrip("/")
    return base.replace("https://", "wss://").replace("http://", "ws://") + "/v1"


class LiveSession:
    """One open realtime session: send audio, read the server's typed events."""

    def __init__(self, conn: AsyncRealtimeConnection) -> None:
        self.conn = conn

    async def append(self, pcm16: bytes) -> None:
        """Send 24 kHz mono PCM16 to the input buffer (server VAD decides where turns end)."""
        await self.conn.input_audio_buffer.append(audio=base64.b64encode(pcm16).decode())

    async def stream(self, pcm16: bytes, pace: float = 1.0, chunk_ms: int = CHUNK_MS) -> None:
        """Send audio in `chunk_ms` chunks; pace 1.0 is real time, 0 as fast as possible."""
        step = _BYTES_PER_SECOND * chunk_ms // 1000
        started = time.perf_counter()
        for n, i in enumerate(range(0, len(pcm16), step)):
            await self.append(pcm16[i : i + step])
            if pace > 0:
                # Against the clock, not per chunk: sleeps oversleep and would drift.
                due = started + (n + 1) * chunk_ms / 1000 / pace
                await asyncio.sleep(max(0.0, due - time.perf_counter()))

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """Tell the server how much of an assistant reply was played, so memory keeps only that."""
        await self.conn.conversation.item.truncate(
            item_id=item_id, content_index=0, audio_end_ms=audio_end_ms
        )

    async def events(self) -> AsyncIterator[RealtimeServerEvent]:
        """The server's events, parsed by the SDK, until the session closes."""
        async for ev in self.conn:
            yield ev


@contextlib.asynccontextmanager
async def live_session(
    base_url: str,
    *,
    api_key: str | None = None,
    pipeline: str = "voice",
    session_id: str | None = None,
) -> AsyncIterator[LiveSession]:
    """Open `WS /v1/realtime?model=<pipeline>` (conversation memory under `session_id`)."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        api_key=api_key or "not-needed",
        base_url=base_url.rstrip("/") + "/v1",
        websocket_base_url=ws_url(base_url),
        max_retries=0,
    )
    query = {"session_id": session_id} if session_id else {}
    async with client.realtime.connect(model=pipeline, extra_query=query) as conn:
        yield LiveSession(conn)


@dataclass
class LiveResult:
    """What one live turn produced, with client-side timings (perf_counter seconds)."""

    transcript: str | None = None
    response: str = ""
    status: str = ""
    audio: bytes = b""  # PCM16 24 kHz mono
    speech_end_sent: float = 0.0  # when the last speech sample left
    speech_stopped: float | None = None
    first_audio: float | None = None
    done: float | None = None
    errors: list[str] = field(default_factory=list)

    def since_speech_end(self, at: float | None) -> float | None:
        """Seconds from the end of the sent speech to `at`."""
        return None if at is None else at - self.speech_end_sent


async def collect_turn(session: LiveSession, result: LiveResult) -> None:
    """Read events until the reply's `response.done` (or a failed transcription)."""
    chunks: list[bytes] = []
    async for ev in session.events():
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
            message = ev.error.message if ev.error else "no reason given"
            result.errors.append(f"transcription failed: {message}")
            break
        elif ev.type == "response.done":
            result.done = now
            result.status = ev.response.status or ""
            result.response = reply_text(ev)
            break
    result.audio = b"".join(chunks)


def reply_text(ev: RealtimeServerEvent) -> str:
    """The spoken reply's text from a `response.done` event ("" for other events)."""
    if ev.type != "response.done":
        return ""
    for item in ev.response.output or []:
        for part in getattr(item, "content", None) or []:
            text = getattr(part, "transcript", None)
            if text:
                return str(text)
    return ""


async def live_turn(
    base_url: str,
    speech_pcm16: bytes,
    *,
    api_key: str | None = None,
    pipeline: str = "voice",
    session_id: str | None = None,
    pace: float = 1.0,
    tail_s: float = 1.5,
    timeout_s: float = 120.0,
) -> LiveResult:
    """Stream one recording (24 kHz PCM16) and collect the reply; server VAD ends the turn."""
    result = LiveResult()
    async with live_session(
        base_url, api_key=api_key, pipeline=pipeline, session_id=session_id
    ) as session:
        await session.stream(speech_pcm16, pace)
        result.speech_end_sent = time.perf_counter()
        # Silence after the speech, as a microphone would send, so the VAD hears the end.
        tail = bytes(2 * int(tail_s * RATE))
        sender = asyncio.create_task(session.stream(tail, pace))
        try:
            async with asyncio.timeout(timeout_s):
                await collect_turn(session, result)
        finally:
            sender.cancel()
    return result
