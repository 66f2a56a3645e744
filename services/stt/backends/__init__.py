"""Transcription backends; each imports its heavy library only when loaded."""

from __future__ import annotations

from services.stt.engine import SpeechToText
from services.stt.settings import Settings


def load_engine(settings: Settings) -> SpeechToText:
    """Load the backend the settings name (blocking: call it from a worker thread)."""
    if settings.engine == "faster-whisper":
        from services.stt.backends.faster_whisper_backend import FasterWhisperEngine

        return FasterWhisperEngine.load(settings)
    raise ValueError(f"unknown STT engine {settings.engine!r}")
