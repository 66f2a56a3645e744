"""The engine interface both TTS services implement: blocking, chunked synthesis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np


class SpeechEngine(Protocol):
    """A loaded TTS model; methods block and run in worker threads."""

    name: str

    def voices(self) -> list[str]:
        """Local voice names this engine can speak with."""
        ...

    def sample_rate(self, voice: str) -> int:
        """Output sample rate of `voice` in Hz."""
        ...

    def synthesize(self, text: str, voice: str, speed: float) -> Iterator[np.ndarray]:
        """Yield float32 mono chunks (one per sentence or so) for `text`."""
        ...
