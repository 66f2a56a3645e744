"""Settings of tts-piper (env prefix PIPER_)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings


class Settings(ServiceSettings):
    """tts-piper configuration; every field reads `PIPER_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="PIPER_", extra="ignore", populate_by_name=True)

    port: int = Field(
        7000, validation_alias=AliasChoices("PORT"), description="Listen port (internal)."
    )
    voice: str = Field(
        "en_US-lessac-medium",
        description="Default voice: a Piper voice name (looked up in voices_dir, downloaded if"
        " allowed), a path to a .onnx voice, or a directory of voices.",
    )
    voices_dir: str = Field(
        "",
        description="Directory scanned for extra *.onnx voices (each needs its .onnx.json);"
        " also where named voices are looked up and downloaded to. Empty = ./voices.",
    )
    download: bool = Field(
        True, description="Download a named voice from the Piper voice repository if missing."
    )
    voice_map: dict[str, str] = Field(
        default_factory=dict,
        description="JSON object mapping OpenAI voice names to local voices,"
        ' e.g. {"nova": "en_US-amy-medium"}; unmapped OpenAI names are spread over the'
        " local voices in a fixed order.",
    )
    load_timeout_s: float = Field(
        600.0,
        gt=0,
        description="Longest voice loading (a download included) before the service reports"
        " not ready.",
    )
    max_chars: int = Field(4096, ge=1, description="Longest input text accepted (400 beyond).")
    sentence_max_chars: int = Field(
        400, ge=20, description="Longest piece synthesised at once; longer sentences are split."
    )
    max_concurrent: int = Field(1, ge=1, description="Syntheses running at once.")
    max_queue: int = Field(8, ge=0, description="Requests waiting for a slot (429 beyond).")
    wyoming_enabled: bool = Field(
        True, description="Serve the Wyoming protocol (Home Assistant) beside the HTTP API."
    )
    wyoming_host: str = Field("0.0.0.0", description="Bind address of the Wyoming endpoint.")
    wyoming_port: int = Field(
        10200,
        ge=0,
        validation_alias=AliasChoices("WYOMING_PORT", "PIPER_WYOMING_PORT"),
        description="Wyoming TCP port (wyoming-piper's 10200); 0 = any free port.",
    )
    wyoming_allow: str = Field(
        "private",
        description="Comma-separated client networks (CIDR, or `private`); empty = everyone."
        " Wyoming carries no key, so by default only private-network addresses are served.",
    )
    max_body_bytes: int = Field(
        262_144,
        validation_alias=AliasChoices("MAX_BODY_BYTES"),
        description="Largest request body (413 beyond); requests are JSON text, so small.",
    )
