"""The engine interface every transcription backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000  # Whisper's input rate; the routes resample everything to it.


class InvalidOptionError(ValueError):
    """A request option the loaded model cannot honour (e.g. a language it does not know)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class ModelUnavailableError(RuntimeError):
    """The configured model could not be found or loaded."""


@dataclass(frozen=True)
class Word:
    """One word with its timing."""

    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Segment:
    """One decoded segment, with the fields OpenAI's verbose_json reports."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)


@dataclass(frozen=True)
class Transcription:
    """The result of one transcription."""

    text: str
    language: str | None
    duration: float
    segments: list[Segment]

    @property
    def words(self) -> list[Word]:
        """All words of all segments, in order."""
        return [w for s in self.segments for w in s.words]


@dataclass(frozen=True)
class TranscribeOptions:
    """Per-request decoding options."""

    language: str | None = None
    prompt: str | None = None
    # None = the engine's temperature fallback schedule (OpenAI's behaviour for temperature 0).
    temperature: float | None = None
    word_timestamps: bool = False
    beam_size: int = 5
    vad_filter: bool = False


class SpeechToText(Protocol):
    """A loaded speech-to-text model."""

    @property
    def engine(self) -> str:
        """Backend name, e.g. `faster-whisper`."""
        ...

    @property
    def languages(self) -> frozenset[str]:
        """Language codes the model can transcribe."""
        ...

    @property
    def details(self) -> dict[str, str]:
        """Facts worth reporting in readiness (device, compute type, ...)."""
        ...

    def transcribe(self, samples: np.ndarray, options: TranscribeOptions) -> Transcription:
        """Transcribe 16 kHz mono float32 samples (blocking)."""
        ...
