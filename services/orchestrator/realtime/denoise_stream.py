"""Streaming denoise for a live session: input audio through `WS /denoise/ws` while the user speaks.

The session's 24 kHz input goes to the pipeline's denoise provider as it arrives (a background
task behind a bounded backlog, so the receive loop never waits on the preprocessor). The
preprocessor answers every frame with a frame of the same length, delayed by its announced
`latency_samples`; the client undoes that delay and keeps the denoised signal indexed by input
sample position, so at the end of an utterance `segment(start, n)` is exactly the denoised span
of the input — the whole-utterance POST (and its time after the end of speech) is not needed.

Rate: every engine of the preprocessor takes 8–48 kHz and resamples to its native 48 kHz
itself (soxr, streaming), so the session's own 24 kHz is sent as it is: no resampling here,
and input positions map one to one.

Anything that goes wrong (no provider accepts a stream, the connection drops, the backlog
overflows) turns the stream off for the session, logged once; `segment` then answers None and
the turn uses the denoise stage as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from services.kit.audio import from_pcm16, to_pcm16
from services.orchestrator.config import ProviderConfig
from services.orchestrator.executor import StageRecord
from services.orchestrator.realtime.protocol import PCM_RATE
from services.orchestrator.run import Plan
from services.orchestrator.stages import StageClient, open_denoise_ws

log = logging.getLogger("orchestrator.realtime")

# At most 100 ms per frame: far below the preprocessor's frame cap, and a steady pace.
_FRAME = PCM_RATE // 10


@dataclass(frozen=True)
class StreamTarget:
    """One denoise provider a stream may be opened on."""

    name: str
    config: ProviderConfig
    timeout_s: float


def stream_targets(plan: Plan, default_timeout_s: float) -> list[StreamTarget]:
    """The plan's denoise providers in order (empty when the pipeline does not denoise)."""
    stage = next((s for s in plan.pipe.stages if s.stage == "denoise"), None)
    if stage is None:
        return []
    out = []
    for name in stage.providers:
        prov = plan.runtime.providers[name]
        if prov.enabled:
            timeout = stage.timeout_s or prov.timeout_s or default_timeout_s
            out.append(StreamTarget(name, prov, timeout))
    return out


@dataclass(frozen=True)
class PendingSpan:
    """An utterance's denoised span, being fetched while its transcription waits its turn."""

    source: StreamingDenoiser
    task: asyncio.Task[np.ndarray | None]

    async def result(self) -> tuple[np.ndarray, StageRecord] | None:
        """The span and its stage record (the time the turn waited for it), or None."""
        started = time.perf_counter()
        audio = await self.task
        if audio is None:
            return None
        return audio, self.source.record(time.perf_counter() - started)


class _Flush:
    """Queue marker: ask the preprocessor for the delayed tail of everything sent so far."""


class StreamingDenoiser:
    """One session's denoising stream and the denoised input it keeps (the last `keep_s`)."""

    def __init__(
        self,
        client: StageClient,
        targets: list[StreamTarget],
        *,
        keep_s: float,
        wait_s: float,
    ) -> None:
        self.client = client
        self.targets = targets
        self.wait_s = wait_s
        self.fed = 0  # input samples fed so far (the position of the next one)
        self.provider: StreamTarget | None = None
        self.latency: int | None = None  # the preprocessor's delay, once connected
        self.failed: str | None = None
        self._ring = np.zeros(max(1, int(keep_s * PCM_RATE)), dtype=np.float32)
        self._hi = 0  # denoised input is known for positions below this
        self._queue: asyncio.Queue[np.ndarray | _Flush | None] = asyncio.Queue()
        self._backlog = 0  # samples queued, not yet sent
        # More unsent audio than the buffer keeps: the preprocessor cannot keep up (or never
        # answered), and every span would be gone before it came back. Stream off.
        self._max_backlog = len(self._ring)
        self._flushed_to = 0  # input position up to which a flush was asked for
        # The preprocessor's stream since its last flush: first input position, output count.
        self._epoch = 0
        self._out = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._notifier: asyncio.Task[None] | None = None
        self._closing = False

    # ---- session side ---------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (audio fed meanwhile waits in the backlog)."""
        self._task = asyncio.create_task(self._run())
        self._task.add_done_callback(self._crashed)

    def feed(self, samples: np.ndarray) -> None:
        """Queue input audio (never waits); a backlog beyond its bound turns the stream off."""
        self.fed += len(samples)
        if self.failed is not None or self._closing:
            return
        if self._backlog + len(samples) > self._max_backlog:
            behind = self._max_backlog / PCM_RATE
            self._fail(f"fell behind: more than {behind:g} s of audio waiting to be sent")
            return
        for i in range(0, len(samples), _FRAME):
            frame = samples[i : i + _FRAME]
            self._backlog += len(frame)
            self._queue.put_nowait(frame)

    async def segment(self, start: int, n: int) -> np.ndarray | None:
        """The denoised input at positions [start, start + n), or None when it is not there.

        Waits up to `wait_s` for it; when the span reaches into the preprocessor's delayed
        part, that tail is flushed out at once instead of waiting for more input.
        """
        end = start + n
        if n <= 0 or start < 0 or n > len(self._ring):
            return None
        try:
            async with asyncio.timeout(self.wait_s), self._changed:
                await self._changed.wait_for(lambda: self.failed is not None or self._ready(end))
                if self.failed is None and self._hi < end:
                    assert self.latency is not None
                    if end > self.fed - self.latency and end > self._flushed_to:
                        self._flushed_to = self.fed
                        self._queue.put_nowait(_Flush())
                    await self._changed.wait_for(lambda: self.failed is not None or self._hi >= end)
        except TimeoutError:
            log.info("streamed denoise: utterance span not ready in time; the stage is used")
            return None
        if self.failed is not None or self._hi < end:
            return None
        if start < self._hi - len(self._ring):
            log.info("streamed denoise: utterance span no longer kept; the stage is used")
            return None
        idx = np.arange(start, end) % len(self._ring)
        return self._ring[idx]

    def request(self, start: int, n: int) -> PendingSpan:
        """Start fetching a span now (at the end of the utterance) for a turn that may queue."""
        return PendingSpan(self, asyncio.create_task(self.segment(start, n)))

    def record(self, waited_s: float) -> StageRecord:
        """The turn's denoise record: done by this stream, `waited_s` spent waiting for it."""
        target = self.provider
        return StageRecord(
            "denoise",
            provider=target.name if target else None,
            url=target.config.url if target else None,
            attempts=0,
            status="ok",
            latency_ms=round(waited_s * 1000, 2),
            note="streamed while the user spoke (WS /denoise/ws)",
        )

    async def close(self) -> None:
        """Stop streaming and close the connection (the preprocessor frees its stream slot)."""
        self._closing = True
        if self.failed is None:
            self.failed = "closed"  # a span still awaited gets None at once
        self._queue.put_nowait(None)
        task = self._task
        if task is not None:
            task.cancel()
            # Waited for, not awaited: a crash was logged by `_crashed` and must not reach here.
            await asyncio.wait([task])
        await self._notify()

    # ---- the connection -------------------------------------------------------------------

    def _ready(self, end: int) -> bool:
        # Connected, and either the span is in or it will only come with a flush.
        return self.latency is not None and (self._hi >= end or end > self.fed - self.latency)

    def _fail(self, reason: str) -> None:
        if self.failed is None and not self._closing:
            self.failed = reason
            # Once per session; the reason names providers and limits, never audio or text.
            log.warning("streamed denoise off for this session: %s", reason)
        while not self._queue.empty():
            self._queue.get_nowait()
        self._backlog = 0
        self._queue.put_nowait(None)
        # Wake waiting `segment` calls (a reference kept: the loop holds tasks only weakly).
        self._notifier = asyncio.get_running_loop().create_task(self._notify())
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()  # its `finally` closes the connection: the preprocessor frees the slot

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a bug here: say so loudly; the turns go on without the stream
            log.error("streamed denoise crashed", exc_info=exc)
            self._fail(f"crashed: {type(exc).__name__}")

    async def _run(self) -> None:
        ws = await self._connect()
        if ws is None:
            return
        sender = asyncio.create_task(self._send(ws))
        try:
            reason = await self._receive(ws)
            if reason is not None:
                self._fail(reason)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError, OSError):
                await sender
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                await ws.close()

    async def _connect(self) -> aiohttp.ClientWebSocketResponse | None:
        refusals = []
        for target in self.targets:
            try:
                async with asyncio.timeout(target.timeout_s):
                    ws = await open_denoise_ws(
                        self.client, target.config, PCM_RATE, target.timeout_s
                    )
                    hello = await ws.receive()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                refusals.append(f"{target.name}: {type(exc).__name__}: {exc}"[:200])
                continue
            latency = _ready_latency(hello)
            if latency is None:
                refusals.append(f"{target.name}: {_refusal(hello)}")
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    await ws.close()
                continue
            if self._closing:
                await ws.close()
                return None
            self.provider, self.latency = target, latency
            await self._notify()
            return ws
        self._fail("no denoise provider opened a stream (" + "; ".join(refusals) + ")")
        return None

    async def _send(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while (item := await self._queue.get()) is not None:
            if isinstance(item, _Flush):
                await ws.send_str("flush")
                continue
            self._backlog -= len(item)
            await ws.send_bytes(to_pcm16(item))

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> str | None:
        """Read replies until the connection ends; the reason it failed, None when closed here."""
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                if (problem := await self._place(from_pcm16(msg.data))) is not None:
                    return problem
            elif msg.type == aiohttp.WSMsgType.TEXT:
                data = _json(msg.data)
                if data.get("type") != "flushed":
                    return f"preprocessor error: {_message(data)}"
                # The tail is in: a fresh engine state starts after everything sent so far.
                sent = data.get("samples")
                if not isinstance(sent, int) or self._out != sent + (self.latency or 0):
                    return "preprocessor flushed a different amount of audio than was sent"
                self._epoch += sent
                self._out = 0
            else:
                break
        if self._closing:
            return None
        return f"connection closed by the preprocessor (code {ws.close_code})"

    async def _place(self, block: np.ndarray) -> str | None:
        """Store one reply: output index k of this epoch is input position epoch + k - latency."""
        assert self.latency is not None
        first = self._out - self.latency  # input index (in this epoch) of the block's first sample
        self._out += len(block)
        if first < 0:
            block = block[-first:]
            first = 0
        if len(block) == 0:
            return None
        pos = self._epoch + first
        if pos != self._hi:
            return f"preprocessor output out of step (at {pos}, expected {self._hi})"
        size, n = len(self._ring), len(block)
        kept = block[-size:]  # a block longer than the buffer keeps only its end
        idx = np.arange(self._hi + n - len(kept), self._hi + n) % size
        self._ring[idx] = kept
        self._hi += n
        async with self._changed:
            self._changed.notify_all()
        return None


def _json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _message(data: dict[str, Any]) -> str:
    err = data.get("error")
    if isinstance(err, dict):
        return f"{err.get('code')}: {err.get('message')}"[:200]
    return "unexpected message"


def _ready_latency(msg: aiohttp.WSMessage) -> int | None:
    """The latency of a `ready` hello at our rate; None for anything else."""
    if msg.type != aiohttp.WSMsgType.TEXT:
        return None
    data = _json(msg.data)
    latency = data.get("latency_samples")
    ok = data.get("type") == "ready" and data.get("sample_rate") == PCM_RATE
    return latency if ok and isinstance(latency, int) and latency >= 0 else None


def _refusal(msg: aiohttp.WSMessage) -> str:
    if msg.type == aiohttp.WSMsgType.TEXT:
        return _message(_json(msg.data))
    return f"closed before it was ready ({msg.type.name})"
