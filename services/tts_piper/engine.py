"""The engine interface of tts-piper: the shared TTS engine plus the voice files it loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from services.tts_common.engine import SpeechEngine


class PiperSpeech(SpeechEngine, Protocol):
    """Loaded Piper voices; `voice_files` (default first) carry each voice's language."""

    voice_files: list[Path]
