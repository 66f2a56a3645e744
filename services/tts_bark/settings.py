"""Settings of tts-bark (env prefix BARK_)."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings
from services.kit.settings import BodyLimit, ListenPort


class Settings(ServiceSettings):
    """tts-bark configuration."""

    model_config = SettingsConfigDict(env_prefix="BARK_")

    port: ListenPort = 7100
    """Listen port (internal)."""
    max_body_bytes: BodyLimit = 262_144
    """Largest request body (413 beyond); requests are JSON text, so small."""
    model: str = "suno/bark-small"
    """Hugging Face id or local directory of a transformers Bark checkpoint."""
    device: str = "auto"
    """torch device: auto (cuda if present), cpu, cuda:N."""
    voice_preset: str = "v2/en_speaker_6"
    """Bark speaker preset used for the 'default' voice and unmapped OpenAI voices (ignored if the
    checkpoint ships no presets)."""
    voice_map: dict[str, str] = Field(default_factory=dict)
    """JSON object mapping OpenAI voice names to Bark presets, e.g. {"nova": "v2/en_speaker_9"}."""
    load_timeout_s: PositiveFloat = 3600.0
    """Longest checkpoint loading (a first download included) before the service reports not
    ready."""
    timeout_s: PositiveFloat = 60.0
    """Longest Bark generation (queue wait included); 504 beyond, so the pipeline's next TTS
    provider answers."""
    max_chars: PositiveInt = 300
    """Longest text Bark takes; longer text is refused with 503 so the pipeline's next TTS provider
    speaks it."""
    max_input_chars: PositiveInt = 4096
    """Longest text accepted at all (400 beyond)."""
    sentence_max_chars: int = Field(200, ge=20)
    """Longest piece Bark generates at once (it makes ~13 s clips)."""
    semantic_max_new_tokens: PositiveInt = 768
    """Cap on Bark semantic tokens per piece (bounds generation time)."""
    self_check: bool = True
    """Generate a short phrase after loading; Bark counts only if it works."""
    max_concurrent: PositiveInt = 1
    """Bark generations running at once."""
    max_queue: NonNegativeInt = 4
    """Requests waiting for Bark (429 beyond)."""
