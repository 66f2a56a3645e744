"""Settings of the stt service (env prefix `STT_`)."""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Literal

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings
from services.kit.settings import ListenPort, WyomingPort, WyomingSettings

# Multipart framing (boundaries, part headers, the small form fields) on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class Settings(ServiceSettings, WyomingSettings):
    """Everything the stt service reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="STT_")

    port: ListenPort = 9000
    """Listen port (internal container port)."""
    engine: Literal["faster-whisper"] = "faster-whisper"
    """Transcription backend."""
    model: str = "base"
    """Whisper model: a faster-whisper size or hub id (`base`, `small`,
    `Systran/faster-whisper-small`) or a local CTranslate2 model directory."""
    served_model_name: str | None = None
    """Model id reported by /v1/models and readiness; default derived from model."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """CTranslate2 device; auto picks cuda when a GPU is visible."""
    compute_type: str = "auto"
    """CTranslate2 compute type (int8, int8_float16, float16, float32); auto = int8 on CPU, float16
    on GPU."""
    cpu_threads: NonNegativeInt = 0
    """CPU threads per transcription; 0 = library default."""
    beam_size: int = Field(5, ge=1, le=20)
    """Beam width for decoding."""
    encoder_pad_s: float = Field(5.0, ge=0.0, le=30.0)
    """Padding after the audio that Whisper's encoder sees (its cost grows with it); 30 = Whisper's
    fixed 30 s window for every clip. Less padding is faster; 3 s made the decoder repeat questions
    before the padding was filled with silence (docs/services/stt.md, "Encoder window")."""
    vad_filter: bool = False
    """Drop non-speech with faster-whisper's bundled Silero VAD before decoding."""
    language: str | None = None
    """Default language code (e.g. `en`); empty = detect per request."""
    download_root: str | None = None
    """Where hub models are cached; default is the Hugging Face cache."""
    local_files_only: bool = False
    """Never download: load hub ids only from the local cache (as HF_HUB_OFFLINE=1)."""
    load_timeout_s: PositiveFloat = 600.0
    """Give up loading (readiness reports why) after this many seconds."""
    max_upload_bytes: PositiveInt = 25 * 1024 * 1024
    """Largest audio file accepted (413 beyond)."""
    max_duration_s: PositiveFloat = 600.0
    """Longest audio accepted, in seconds (413 beyond)."""
    max_prompt_chars: NonNegativeInt = 1000
    """Longest `prompt` accepted (400 beyond)."""
    silence_dbfs: float = -60.0
    """Audio whose peak is below this level is silence: empty text without running the model
    (Whisper tends to invent words for pure silence)."""
    max_concurrency: PositiveInt = 1
    """Transcriptions running at once."""
    max_queue: NonNegativeInt = 8
    """Transcriptions waiting for a slot (429 beyond)."""
    wyoming_port: WyomingPort = 10300
    """Wyoming TCP port (wyoming-faster-whisper's 10300); 0 = any free port."""

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
