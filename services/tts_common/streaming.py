"""Turn an engine's blocking chunk generator into a streamed (or whole) HTTP audio response."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator

import numpy as np
from fastapi import Response
from fastapi.responses import StreamingResponse

from services.kit.audio import encode_audio, to_pcm16, wav_header
from services.kit.concurrency import WorkLimiter
from services.tts_common.metrics import TtsMetrics
from services.tts_common.schemas import STREAMED_FORMATS

log = logging.getLogger("tts.streaming")

MEDIA_TYPES = {
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
}
_UNKNOWN = 0xFFFFFFFF


def wav_stream_header(sample_rate: int) -> bytes:
    """A mono PCM16 WAV header whose sizes say "unknown length" (0xFFFFFFFF), for streaming."""
    return wav_header(sample_rate, _UNKNOWN)


async def chunks_in_thread(
    limiter: WorkLimiter, make_iter: Callable[[], Iterator[np.ndarray]]
) -> AsyncGenerator[np.ndarray, None]:
    """Drive a blocking chunk generator from worker threads while holding one limiter slot."""
    await limiter.acquire()
    try:
        it = await asyncio.to_thread(make_iter)
        while True:
            # One thread hop per chunk keeps the event loop free between sentences.
            chunk = await asyncio.to_thread(next, it, None)
            if chunk is None:
                return
            yield chunk
    finally:
        limiter.release()


async def audio_response(
    chunks: AsyncGenerator[np.ndarray, None],
    sample_rate: int,
    fmt: str,
    *,
    engine: str,
    metrics: TtsMetrics,
    characters: int,
    headers: dict[str, str] | None = None,
    stream: bool = True,
    started: float | None = None,
) -> Response:
    """Stream wav/pcm chunk by chunk once the first chunk exists; encode other formats whole.

    `started` (a `time.perf_counter()` value) is when synthesis began, if before this call.
    """
    started = time.perf_counter() if started is None else started
    hdrs = {"X-TTS-Engine": engine, "X-Sample-Rate": str(sample_rate), **(headers or {})}
    media_type = MEDIA_TYPES[fmt]
    # The first chunk is made before answering so an engine failure is a proper error status.
    first = await anext(chunks, None)
    metrics.first_chunk_seconds.labels(engine).observe(time.perf_counter() - started)
    metrics.characters.labels(engine).inc(characters)
    if first is None:
        first = np.zeros(0, dtype=np.float32)

    if not stream or fmt not in STREAMED_FORMATS:
        parts = [first]
        parts.extend([c async for c in chunks])
        audio = np.concatenate(parts) if len(parts) > 1 else first
        data, _ = await asyncio.to_thread(encode_audio, audio, sample_rate, fmt)
        metrics.audio_seconds.labels(engine).inc(len(audio) / sample_rate)
        metrics.synthesis_seconds.labels(engine).observe(time.perf_counter() - started)
        return Response(data, media_type=media_type, headers=hdrs)

    async def body() -> AsyncIterator[bytes]:
        n = len(first)
        try:
            head = wav_stream_header(sample_rate) if fmt == "wav" else b""
            yield head + to_pcm16(first)
            async for chunk in chunks:
                n += len(chunk)
                yield to_pcm16(chunk)
        except Exception as exc:
            # Headers are gone: the only honest signal left is to abort the stream.
            log.error("synthesis failed mid-stream", extra={"error": type(exc).__name__})
            raise
        finally:
            await chunks.aclose()
            metrics.audio_seconds.labels(engine).inc(n / sample_rate)
            metrics.synthesis_seconds.labels(engine).observe(time.perf_counter() - started)

    return StreamingResponse(body(), media_type=media_type, headers=hdrs)
