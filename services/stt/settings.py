"""Settings of the stt service (env prefix `STT_`)."""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings

# Multipart framing (boundaries, part headers, the small form fields) on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class Settings(ServiceSettings):
    """Everything the stt service reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="STT_", extra="ignore", populate_by_name=True)

    port: int = Field(
        9000,
        validation_alias=AliasChoices("PORT"),
        description="Listen port (internal container port).",
    )
    engine: Literal["faster-whisper"] = Field(
        "faster-whisper", description="Transcription backend."
    )
    model: str = Field(
        "base",
        description=(
            "Whisper model: a faster-whisper size or hub id (`base`, `small`, "
            "`Systran/faster-whisper-small`) or a local CTranslate2 model directory."
        ),
    )
    served_model_name: str | None = Field(
        None,
        description="Model id reported by /v1/models and readiness; default derived from model.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="CTranslate2 device; auto picks cuda when a GPU is visible."
    )
    compute_type: str = Field(
        "auto",
        description="CTranslate2 compute type (int8, int8_float16, float16, float32); auto = "
        "int8 on CPU, float16 on GPU.",
    )
    cpu_threads: int = Field(
        0, ge=0, description="CPU threads per transcription; 0 = library default."
    )
    beam_size: int = Field(5, ge=1, le=20, description="Beam width for decoding.")
    vad_filter: bool = Field(
        False,
        description="Drop non-speech with faster-whisper's bundled Silero VAD before decoding.",
    )
    language: str | None = Field(
        None, description="Default language code (e.g. `en`); empty = detect per request."
    )
    download_root: str | None = Field(
        None, description="Where hub models are cached; default is the Hugging Face cache."
    )
    local_files_only: bool = Field(
        False,
        description="Never download: load hub ids only from the local cache (as HF_HUB_OFFLINE=1).",
    )
    load_timeout_s: float = Field(
        600.0, gt=0, description="Give up loading (readiness reports why) after this many seconds."
    )
    max_upload_bytes: int = Field(
        25 * 1024 * 1024, gt=0, description="Largest audio file accepted (413 beyond)."
    )
    max_duration_s: float = Field(
        600.0, gt=0, description="Longest audio accepted, in seconds (413 beyond)."
    )
    max_prompt_chars: int = Field(1000, ge=0, description="Longest `prompt` accepted (400 beyond).")
    silence_dbfs: float = Field(
        -60.0,
        description="Audio whose peak is below this level is silence: empty text without "
        "running the model (Whisper tends to invent words for pure silence).",
    )
    max_concurrency: int = Field(1, ge=1, description="Transcriptions running at once.")
    max_queue: int = Field(8, ge=0, description="Transcriptions waiting for a slot (429 beyond).")
    wyoming_enabled: bool = Field(
        True, description="Serve the Wyoming protocol (Home Assistant) beside the HTTP API."
    )
    wyoming_host: str = Field("0.0.0.0", description="Bind address of the Wyoming endpoint.")
    wyoming_port: int = Field(
        10300,
        ge=0,
        validation_alias=AliasChoices("WYOMING_PORT", "STT_WYOMING_PORT"),
        description="Wyoming TCP port (wyoming-faster-whisper's 10300); 0 = any free port.",
    )
    wyoming_allow: str = Field(
        "private",
        description="Comma-separated client networks (CIDR, or `private`); empty = everyone."
        " Wyoming carries no key, so by default only private-network addresses are served.",
    )

    @model_validator(mode="after")
    def _derive_body_limit(self) -> Settings:
        # The HTTP body limit follows the upload limit so the two can never disagree.
        self.max_body_bytes = self.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
        return self

    def model_id(self) -> str:
        """The model name clients see: the served name, a directory's name, or the hub id."""
        if self.served_model_name:
            return self.served_model_name
        if looks_like_path(self.model):
            return PurePath(self.model.rstrip("/")).name or self.model
        return self.model


def looks_like_path(model: str) -> bool:
    """True for a filesystem path; hub ids are `size` or `org/name`."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or Path(model).is_dir()
