"""tts-piper engine backends; piper-tts is imported only inside the backend module."""

from __future__ import annotations

from pathlib import Path

from services.tts_piper.engine import PiperSpeech
from services.tts_piper.settings import Settings


def load_engine(settings: Settings) -> PiperSpeech:
    """Find (or download) the configured voices and load them (blocking: use a worker thread)."""
    from services.tts_piper.backends.piper_voice import PiperEngine, find_voice_files

    voices_dir = Path(settings.voices_dir or "voices").expanduser()
    files = find_voice_files(settings.voice, voices_dir, settings.download)
    return PiperEngine(files, settings.sentence_max_chars)
