"""A denoise engine (the preprocessor's `DenoiseEngine` Protocol) whose output is recognisable.

`MarkedEngine` scales each sample by a gain that depends on the sample's index in its stream
(`marked`), and holds back `delay` samples like an engine with algorithmic delay. So a test
can tell the streamed denoise (one stream since the session began) from the whole-utterance
POST (a fresh stream per clip), and check sample-exact alignment through the preprocessor's
latency compensation. Serve it with `services.preprocessor.app.build_app(settings,
engine_factory=lambda _: MarkedEngine(...))`.
"""

from __future__ import annotations

import numpy as np

from services.preprocessor.engine import DenoiseEngine, DenoiseStream


def marked(samples: np.ndarray, offset: int, period: int) -> np.ndarray:
    """What the engine makes of `samples` starting at index `offset` of its stream."""
    idx = np.arange(offset, offset + len(samples))
    gain = np.where((idx // period) % 2 == 0, 0.5, -0.25).astype(np.float32)
    return (np.asarray(samples, dtype=np.float32) * gain).astype(np.float32)


class _MarkedStream(DenoiseStream):
    def __init__(self, delay: int, period: int) -> None:
        self.delay = delay
        self.period = period
        self.held = np.zeros(0, dtype=np.float32)  # input not yet answered
        self.done = 0  # output samples returned so far

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Answer all but the last `delay` samples seen."""
        self.held = np.concatenate([self.held, np.asarray(samples, dtype=np.float32)])
        n = max(0, len(self.held) - self.delay)
        return self._emit(n)

    def finish(self) -> np.ndarray:
        """The held-back rest."""
        return self._emit(len(self.held))

    def _emit(self, n: int) -> np.ndarray:
        out = marked(self.held[:n], self.done, self.period)
        self.held = self.held[n:]
        self.done += n
        return out


class MarkedEngine(DenoiseEngine):
    """Streams that scale by stream position and answer `delay` samples late."""

    name = "marked"
    model = "marked"
    realtime = True

    def __init__(self, delay: int = 1000, period: int = 2400) -> None:
        self.delay = delay
        self.period = period
        self.streams_opened = 0

    def open_stream(self, sample_rate: int) -> DenoiseStream:
        """A fresh stream: positions start at 0."""
        self.streams_opened += 1
        return _MarkedStream(self.delay, self.period)

    def max_lag_samples(self, sample_rate: int) -> int:
        """Exactly the held-back samples."""
        return self.delay
