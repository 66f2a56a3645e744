"""The engine interface both TTS services implement: blocking, chunked synthesis."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

import numpy as np

from services.kit.engine import Engine, EngineUnavailableError


class VoiceUnavailableError(EngineUnavailableError):
    """The configured voice or checkpoint could not be loaded, or it spoke nothing."""


class SpeechEngine(Engine, Protocol):
    """A loaded TTS model (the kit's `Engine` plus synthesis); methods block."""

    name: str  # backend name, `piper` or `bark`: the X-TTS-Engine header and metric label

    @property
    def details(self) -> Mapping[str, object]:
        """Facts for `/health/ready` (voices, device, sample rate, ...)."""
        ...

    def self_check(self) -> None:
        """Speak a fixed phrase; raise VoiceUnavailableError without real audio."""
        ...

    def voices(self) -> list[str]:
        """Local voice names this engine can speak with, the default first."""
        ...

    def sample_rate(self, voice: str) -> int:
        """Output sample rate of `voice` in Hz."""
        ...

    def synthesize(self, text: str, voice: str, speed: float) -> Iterator[np.ndarray]:
        """Yield float32 mono chunks (one per sentence or so) for `text`."""
        ...


def check_speaks(engine: SpeechEngine, text: str, voice: str, min_peak: float = 1e-3) -> float:
    """The self-check every backend runs: `text` in `voice` must peak above `min_peak`.

    Returns the seconds of audio produced.
    """
    chunks = list(engine.synthesize(text, voice, 1.0))
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    if audio.size == 0 or float(np.abs(audio).max()) <= min_peak:
        raise VoiceUnavailableError(
            f"{engine.name} voice {voice!r} produced no audio in its self-check"
        )
    return audio.size / engine.sample_rate(voice)
