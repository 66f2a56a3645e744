"""Test helpers that speak Wyoming with the real `wyoming` client (AsyncTcpClient)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import httpx
import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

HOST = "127.0.0.1"


def wyoming_port(base: str) -> int:
    """The Wyoming port a service reports in its readiness."""
    return int(httpx.get(base + "/health/ready", timeout=5).json()["wyoming"]["port"])


def client(port: int, read_timeout: float = 120.0) -> AsyncTcpClient:
    """A real Wyoming client for a local port."""
    return AsyncTcpClient(HOST, port, connect_timeout=5, read_timeout=read_timeout)


async def read_until(c: AsyncTcpClient, last: str | Iterable[str]) -> list[Event]:
    """Events up to and including the first of type `last` (or the connection's end)."""
    stop = {last} if isinstance(last, str) else set(last)
    events: list[Event] = []
    while True:
        event = await c.read_event()
        if event is None:
            return events
        events.append(event)
        if event.type in stop:
            return events


def pcm(samples: np.ndarray, width: int = 2, channels: int = 1) -> bytes:
    """Float mono samples as interleaved little-endian integer PCM of `width` bytes."""
    clipped = np.clip(samples, -1.0, 1.0)
    frames = np.repeat(clipped[:, None], channels, axis=1).reshape(-1)
    if width == 1:
        return ((frames * 127.0).round() + 128).astype(np.uint8).tobytes()
    if width == 2:
        return (frames * 32767.0).round().astype("<i2").tobytes()
    if width == 3:
        ints = (frames * 8388607.0).round().astype("<i4")
        return b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    return (frames * 2147483647.0).round().astype("<i4").tobytes()


def audio_events(
    samples: np.ndarray, rate: int, width: int = 2, channels: int = 1, chunk_frames: int = 1024
) -> list[Event]:
    """audio-start, audio-chunks and audio-stop for float samples in the given format."""
    data = pcm(samples, width, channels)
    step = chunk_frames * width * channels
    events = [AudioStart(rate=rate, width=width, channels=channels).event()]
    events += [
        AudioChunk(rate=rate, width=width, channels=channels, audio=data[i : i + step]).event()
        for i in range(0, len(data), step)
    ]
    events.append(AudioStop().event())
    return events


async def raw_exchange(port: int, data: bytes, wait_s: float = 10.0) -> list[dict[str, Any]]:
    """Send raw bytes, half-close, and return the headers of every event sent back."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    headers: list[dict[str, Any]] = []
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), wait_s)
            if not line:
                break
            header = json.loads(line)
            for key in ("data_length", "payload_length"):
                if header.get(key):
                    extra = await reader.readexactly(header[key])
                    if key == "data_length":
                        header.setdefault("data", {}).update(json.loads(extra))
            headers.append(header)
    finally:
        writer.close()
    return headers
