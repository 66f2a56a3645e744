"""The denoising engine interface every backend implements, and stream wrappers over it."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from services.kit.engine import Engine, EngineUnavailableError

# The self-check's clip: half a second of seeded white noise at 16 kHz.
CHECK_RATE = 16_000


class EngineUnavailable(EngineUnavailableError):
    """The configured engine cannot run here (missing library or model); the message says why."""


class DenoiseStream(ABC):
    """One stateful denoising stream at a fixed sample rate.

    Output is aligned with the input (the engine's algorithmic delay is already removed):
    `push` returns whatever aligned output is ready, `finish` returns the rest, and all
    returned pieces together are exactly as long as all input.
    """

    @abstractmethod
    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed float32 mono samples; return the aligned output that is ready."""

    @abstractmethod
    def finish(self) -> np.ndarray:
        """Flush the engine; return the remaining output (total output == total input)."""

    def close(self) -> None:  # noqa: B027 - most streams hold nothing to release
        """Release native state (idempotent)."""


class DenoiseEngine(Engine, Protocol):
    """A loaded denoiser: the kit's `Engine` plus streams, which share only the model.

    Backends subclass it explicitly to inherit `details`, `self_check` and `close`.
    """

    name: str
    model: str
    # Whether streams emit output while input arrives (False: only at `finish`).
    realtime: bool

    @property
    def details(self) -> Mapping[str, object]:
        """What readiness reports about the engine."""
        return {"realtime": self.realtime}

    def self_check(self) -> None:
        """Denoise a fixed clip; raise EngineUnavailable unless the output is sane (blocking)."""
        check_denoises(self)

    def open_stream(self, sample_rate: int) -> DenoiseStream:
        """A fresh stream with its own state at `sample_rate`."""
        ...

    def max_lag_samples(self, sample_rate: int) -> int:
        """Upper bound on how far aligned output trails input, in samples at `sample_rate`."""
        ...

    def close(self) -> None:
        """Release the model (most engines hold nothing to release)."""
        return None


def denoise_clip(engine: DenoiseEngine, samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Denoise a whole clip with a fresh stream; output has the input's length and timing."""
    stream = engine.open_stream(sample_rate)
    try:
        head = stream.push(samples)
        tail = stream.finish()
    finally:
        stream.close()
    out = np.concatenate([head, tail]).astype(np.float32, copy=False)
    if len(out) != len(samples):  # a backend bug, not the caller's: surface it as a 500
        raise RuntimeError(f"{engine.name} returned {len(out)} samples for {len(samples)}")
    return out


def check_denoises(engine: DenoiseEngine) -> None:
    """The self-check every backend runs: denoise seeded noise, expect finite same-length audio."""
    noise = (np.random.default_rng(0).standard_normal(CHECK_RATE // 2) * 0.1).astype(np.float32)
    out = denoise_clip(engine, noise, CHECK_RATE)
    if len(out) != len(noise) or not np.all(np.isfinite(out)):
        raise EngineUnavailable(f"{engine.name} self-check produced invalid output")


class FixedLatencyStream:
    """Frame-in/frame-out wrapper: every output block is as long as its input block.

    Output is the aligned denoised signal delayed by `latency` samples (the first `latency`
    samples are silence), so a real-time client gets steady blocks; `flush` returns the last
    `latency` samples, after which the whole denoised signal has been delivered.
    """

    def __init__(self, engine: DenoiseEngine, sample_rate: int, margin_ms: float) -> None:
        self.engine = engine
        self.sample_rate = sample_rate
        self.latency = engine.max_lag_samples(sample_rate) + math.ceil(
            sample_rate * margin_ms / 1000.0
        )
        self.underflows = 0
        self._stream = engine.open_stream(sample_rate)
        self._fifo = np.zeros(self.latency, dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Denoise one block; return a block of the same length."""
        ready = self._stream.push(samples)
        fifo = np.concatenate([self._fifo, ready])
        n = len(samples)
        if len(fifo) < n:
            # The engine lagged more than the announced latency: pad rather than stall the client.
            self.underflows += 1
            fifo = np.concatenate([fifo, np.zeros(n - len(fifo), dtype=np.float32)])
        out, self._fifo = fifo[:n], fifo[n:]
        return out

    def flush(self) -> np.ndarray:
        """End the utterance: return the delayed tail and start a fresh engine state."""
        tail = np.concatenate([self._fifo, self._stream.finish()])
        self._stream.close()
        self._stream = self.engine.open_stream(self.sample_rate)
        self._fifo = np.zeros(self.latency, dtype=np.float32)
        return tail

    def close(self) -> None:
        """Release the engine state."""
        self._stream.close()
