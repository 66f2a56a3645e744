"""Realtime test helpers: an SDK session on the orchestrator, reading events, streaming audio."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import numpy as np
from openai import AsyncOpenAI

from services.kit.audio import to_pcm16

SPEECH_RATE = 24_000
TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def connect(base: str, key: str = "k", **query: Any) -> AsyncIterator[Any]:
    """An SDK realtime connection to `base` (model=voice unless given)."""
    client = AsyncOpenAI(
        api_key=key,
        base_url=base + "/v1",
        websocket_base_url=base.replace("http://", "ws://") + "/v1",
        max_retries=0,
    )
    model = query.pop("model", "voice")
    async with client.realtime.connect(model=model, extra_query=query) as conn:
        yield conn


async def until(conn: Any, kind: str, seen: list[Any] | None = None) -> Any:
    """Read events until one of type `kind` (earlier ones go to `seen`)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            ev = await conn.recv()
            if seen is not None:
                seen.append(ev)
            if ev.type == kind:
                return ev


async def say(conn: Any, audio: np.ndarray, chunk_ms: int = 100, pace: float = 0.0) -> None:
    """Append audio in chunks (pace 1.0 = real time, 0 = as fast as possible)."""
    step = SPEECH_RATE * chunk_ms // 1000
    for i in range(0, len(audio), step):
        pcm = to_pcm16(audio[i : i + step])
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())
        if pace:
            await asyncio.sleep(chunk_ms / 1000 * pace)


def silence(seconds: float) -> np.ndarray:
    """Digital silence at 24 kHz."""
    return np.zeros(int(seconds * SPEECH_RATE), dtype=np.float32)


def run(coro_fn: Callable[[], Any]) -> Any:
    """Run an async test body."""
    return asyncio.run(coro_fn())


async def text_turn_start(conn: Any, text: str) -> None:
    """Add a user text item and ask for a response (without waiting)."""
    await conn.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await conn.response.create()


def metrics(base: str) -> str:
    """The orchestrator's /metrics text."""
    return httpx.get(base + "/metrics", timeout=10).text
