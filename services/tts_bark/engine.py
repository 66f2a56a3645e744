"""The engine interface of tts-bark: the shared TTS engine plus Bark's speaker presets."""

from __future__ import annotations

from typing import Protocol

from services.tts_common.engine import SpeechEngine

DEFAULT_VOICE = "default"  # the voice that speaks with BARK_VOICE_PRESET


class BarkSpeech(SpeechEngine, Protocol):
    """A loaded Bark checkpoint: voices are `default` plus every speaker preset it ships."""

    @property
    def default_preset(self) -> str | None:
        """The preset `default` speaks with (None: the checkpoint's unconditioned voice)."""
        ...
