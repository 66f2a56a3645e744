"""Settings of tts-bark (env prefix BARK_)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings


class Settings(ServiceSettings):
    """tts-bark configuration."""

    model_config = SettingsConfigDict(env_prefix="BARK_", extra="ignore", populate_by_name=True)

    port: int = Field(
        7100, validation_alias=AliasChoices("PORT"), description="Listen port (internal)."
    )
    max_body_bytes: int = Field(
        262_144,
        validation_alias=AliasChoices("MAX_BODY_BYTES"),
        description="Largest request body (413 beyond); requests are JSON text, so small.",
    )
    model: str = Field(
        "suno/bark-small",
        description="Hugging Face id or local directory of a transformers Bark checkpoint.",
    )
    device: str = Field("auto", description="torch device: auto (cuda if present), cpu, cuda:N.")
    voice_preset: str = Field(
        "v2/en_speaker_6",
        description="Bark speaker preset used for the 'default' voice and unmapped OpenAI voices"
        " (ignored if the checkpoint ships no presets).",
    )
    voice_map: dict[str, str] = Field(
        default_factory=dict,
        description="JSON object mapping OpenAI voice names to Bark presets,"
        ' e.g. {"nova": "v2/en_speaker_9"}.',
    )
    load_timeout_s: float = Field(
        3600.0,
        gt=0,
        description="Longest checkpoint loading (a first download included) before the service"
        " reports not ready.",
    )
    timeout_s: float = Field(
        60.0,
        gt=0,
        description="Longest Bark generation (queue wait included); 504 beyond, so the"
        " pipeline's next TTS provider answers.",
    )
    max_chars: int = Field(
        300,
        ge=1,
        description="Longest text Bark takes; longer text is refused with 503 so the"
        " pipeline's next TTS provider speaks it.",
    )
    max_input_chars: int = Field(
        4096, ge=1, description="Longest text accepted at all (400 beyond)."
    )
    sentence_max_chars: int = Field(
        200, ge=20, description="Longest piece Bark generates at once (it makes ~13 s clips)."
    )
    semantic_max_new_tokens: int = Field(
        768, ge=1, description="Cap on Bark semantic tokens per piece (bounds generation time)."
    )
    self_check: bool = Field(
        True, description="Generate a short phrase after loading; Bark counts only if it works."
    )
    max_concurrent: int = Field(1, ge=1, description="Bark generations running at once.")
    max_queue: int = Field(4, ge=0, description="Requests waiting for Bark (429 beyond).")
