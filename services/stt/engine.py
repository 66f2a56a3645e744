"""The engine interface every transcription backend implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from services.kit.engine import EngineUnavailableError

SAMPLE_RATE = 16000  # Whisper's input rate; the routes resample everything to it.


class InvalidOptionError(ValueError):
    """A request option the loaded model cannot honour (e.g. a language it does not know)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class ModelUnavailableError(EngineUnavailableError):
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
    """A loaded speech-to-text model (the kit's `Engine` plus transcription)."""

    name: str  # backend name, e.g. `faster-whisper`

    @property
    def languages(self) -> frozenset[str]:
        """Language codes the model can transcribe."""
        ...

    @property
    def details(self) -> Mapping[str, object]:
        """Facts worth reporting in readiness (device, compute type, ...)."""
        ...

    def self_check(self) -> None:
        """Transcribe `self_check_clip()`; raise ModelUnavailableError without a result."""
        ...

    def transcribe(self, samples: np.ndarray, options: TranscribeOptions) -> Transcription:
        """Transcribe 16 kHz mono float32 samples (blocking)."""
        ...


def self_check_clip() -> np.ndarray:
    """Half a second of a 440 Hz tone then half a second of silence, at 16 kHz."""
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    return np.concatenate([tone, np.zeros(SAMPLE_RATE // 2)]).astype(np.float32)


def check_transcribes(engine: SpeechToText) -> None:
    """The self-check every backend runs: a real transcription of a fixed clip."""
    check = engine.transcribe(self_check_clip(), TranscribeOptions(beam_size=1))
    if not isinstance(check.text, str) or check.duration <= 0:
        raise ModelUnavailableError("self-check transcription returned no result")
