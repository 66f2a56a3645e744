"""Passthrough: returns the input unchanged (preprocessing disabled)."""

from __future__ import annotations

import numpy as np

from services.preprocessor.engine import DenoiseEngine, DenoiseStream


class _PassthroughStream(DenoiseStream):
    def push(self, samples: np.ndarray) -> np.ndarray:
        """Return the input as is."""
        return np.asarray(samples, dtype=np.float32).copy()

    def finish(self) -> np.ndarray:
        """Nothing is held back."""
        return np.zeros(0, dtype=np.float32)


class PassthroughEngine(DenoiseEngine):
    """No processing at all, zero delay."""

    name = "passthrough"
    model = "none"
    realtime = True

    def open_stream(self, sample_rate: int) -> DenoiseStream:
        """A stream that echoes its input."""
        return _PassthroughStream()

    def max_lag_samples(self, sample_rate: int) -> int:
        """No lag."""
        return 0
