"""Settings of tts-piper (env prefix PIPER_)."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings
from services.kit.settings import BodyLimit, ListenPort, WyomingPort, WyomingSettings


class Settings(ServiceSettings, WyomingSettings):
    """tts-piper configuration; every field reads `PIPER_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="PIPER_")

    port: ListenPort = 7000
    """Listen port (internal)."""
    voice: str = "en_US-lessac-medium"
    """Default voice: a Piper voice name (looked up in voices_dir, downloaded if allowed), a path
    to a .onnx voice, or a directory of voices."""
    voices_dir: str = ""
    """Directory scanned for extra *.onnx voices (each needs its .onnx.json); also where named
    voices are looked up and downloaded to. Empty = ./voices."""
    download: bool = True
    """Download a named voice from the Piper voice repository if missing."""
    voice_map: dict[str, str] = Field(default_factory=dict)
    """JSON object mapping OpenAI voice names to local voices, e.g. {"nova": "en_US-amy-medium"};
    unmapped OpenAI names are spread over the local voices in a fixed order."""
    load_timeout_s: PositiveFloat = 600.0
    """Longest voice loading (a download included) before the service reports not ready."""
    max_chars: PositiveInt = 4096
    """Longest input text accepted (400 beyond)."""
    sentence_max_chars: int = Field(400, ge=20)
    """Longest piece synthesised at once; longer sentences are split."""
    max_concurrent: PositiveInt = 1
    """Syntheses running at once."""
    max_queue: NonNegativeInt = 8
    """Requests waiting for a slot (429 beyond)."""
    wyoming_port: WyomingPort = 10200
    """Wyoming TCP port (wyoming-piper's 10200); 0 = any free port."""
    max_body_bytes: BodyLimit = 262_144
    """Largest request body (413 beyond); requests are JSON text, so small."""
