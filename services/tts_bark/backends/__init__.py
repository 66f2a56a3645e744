"""tts-bark engine backends; torch and transformers are imported only inside the backend."""

from __future__ import annotations

from services.tts_bark.engine import BarkSpeech
from services.tts_bark.settings import Settings


def load_engine(settings: Settings) -> BarkSpeech:
    """Load the configured Bark checkpoint (blocking: call it from a worker thread)."""
    from services.tts_bark.backends.bark_transformers import BarkEngine

    return BarkEngine(
        settings.model,
        device=settings.device,
        voice_preset=settings.voice_preset,
        semantic_max_new_tokens=settings.semantic_max_new_tokens,
        sentence_max_chars=settings.sentence_max_chars,
        self_check_enabled=settings.self_check,
    )
