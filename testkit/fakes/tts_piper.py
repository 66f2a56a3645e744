"""A fake engine implementing the real TTS interface (PiperSpeech / BarkSpeech), with knobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from services.tts_common.engine import check_speaks


class ToneEngine:
    """Speaks a 440 Hz tone per sentence-ish chunk; `silent` makes its self-check fail."""

    name = "fake"

    def __init__(self, voices: tuple[str, ...] = ("fake-a", "fake-b"), rate: int = 16000) -> None:
        self._voices = list(voices)
        self.rate = rate
        self.silent = False
        self.voice_files = [Path(f"{v}.onnx") for v in voices]
        self.default_preset: str | None = None
        self.calls: list[tuple[str, str, float]] = []

    @property
    def details(self) -> dict[str, object]:
        return {"voices": self.voices()}

    def self_check(self) -> None:
        for voice in self._voices:
            check_speaks(self, "Ready.", voice)

    def voices(self) -> list[str]:
        return list(self._voices)

    def sample_rate(self, voice: str) -> int:
        return self.rate

    def synthesize(self, text: str, voice: str, speed: float) -> Iterator[np.ndarray]:
        self.calls.append((text, voice, speed))
        n = int(self.rate * 0.1 * max(1, len(text) // 10) / speed)
        t = np.arange(n) / self.rate
        amplitude = 0.0 if self.silent else 0.3
        yield (amplitude * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
