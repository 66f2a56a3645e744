"""A fake engine implementing the real SpeechToText interface, with knobs for tests."""

from __future__ import annotations

import threading

import numpy as np

from services.stt.engine import (
    SAMPLE_RATE,
    Segment,
    TranscribeOptions,
    Transcription,
    check_transcribes,
)


class GatedEngine:
    """Returns a fixed text; each call blocks until `gate` is set (when `block` is on)."""

    name = "fake"

    def __init__(self, text: str = "hello world", languages: frozenset[str] = frozenset({"en"})):
        self.text = text
        self.gate = threading.Event()
        self.started = threading.Event()
        self.block = False
        self.calls: list[TranscribeOptions] = []
        self._languages = languages

    @property
    def languages(self) -> frozenset[str]:
        return self._languages

    @property
    def details(self) -> dict[str, str]:
        return {"device": "none"}

    def self_check(self) -> None:
        check_transcribes(self)

    def transcribe(self, samples: np.ndarray, options: TranscribeOptions) -> Transcription:
        self.calls.append(options)
        if self.block:
            self.started.set()
            assert self.gate.wait(30), "test never opened the gate"
        duration = len(samples) / SAMPLE_RATE
        seg = Segment(0, 0, 0.0, duration, " " + self.text, [1, 2], 0.0, -0.1, 1.0, 0.01)
        return Transcription(self.text, options.language or "en", duration, [seg])
