"""Settings of the llm-flan service (env prefix LLM_)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings


class Settings(ServiceSettings):
    """Everything the LLM service reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="LLM_", extra="ignore", populate_by_name=True)

    port: int = Field(8100, validation_alias=AliasChoices("PORT"), description="Listen port.")
    max_body_bytes: int = Field(
        1_048_576,
        validation_alias=AliasChoices("MAX_BODY_BYTES"),
        description="Largest request body accepted (413 beyond).",
    )
    model: str = Field(
        "google/flan-t5-base",
        description=(
            "Model to serve: small/base/large/xl (FLAN-T5 sizes), a hub id, a local model "
            "directory, or a local .gguf file (causal models only)."
        ),
    )
    engine: Literal["auto", "transformers", "ctranslate2"] = Field(
        "auto",
        description=(
            "Inference engine: auto = ctranslate2 when LLM_MODEL is a directory holding a "
            "CTranslate2 model.bin, transformers otherwise."
        ),
    )
    served_model_name: str = Field(
        "",
        description="Model id reported to clients; empty = derived from LLM_MODEL.",
    )
    device: str = Field("cpu", description="torch device to run on (cpu, cuda, cuda:0, ...).")
    torch_threads: int = Field(
        0, ge=0, description="torch intra-op threads; 0 leaves torch's default."
    )
    ct2_compute_type: str = Field(
        "int8",
        description=(
            "CTranslate2 compute type (int8, int8_float32, int8_float16, float16, float32, "
            "default = as converted, auto = fastest the device supports)."
        ),
    )
    ct2_threads: int = Field(
        1,
        ge=0,
        description=(
            "CTranslate2 threads per generation (intra_threads); 0 = CTranslate2's default. "
            "1 measured fastest for SmolLM2-135M on a 2-core CPU."
        ),
    )
    max_input_tokens: int = Field(
        512,
        ge=8,
        description="Longest prompt in tokens; older turns are dropped first to fit.",
    )
    default_max_tokens: int = Field(
        256, ge=1, description="New tokens generated when a request sets no max_tokens."
    )
    max_new_tokens_limit: int = Field(
        1024, ge=1, description="Largest max_tokens a request may ask for (400 beyond)."
    )
    default_temperature: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="Temperature when a request sets none; 0 = greedy decoding.",
    )
    max_messages: int = Field(
        256, ge=1, description="Most messages accepted in one request (400 beyond)."
    )
    max_content_chars: int = Field(
        32_000, ge=1, description="Most characters across all message contents (400 beyond)."
    )
    max_stop_sequences: int = Field(4, ge=0, description="Most stop sequences per request.")
    max_no_repeat_ngram_size: int = Field(
        16, ge=0, description="Largest no_repeat_ngram_size a request may ask for (400 beyond)."
    )
    cut_at_sentence: bool = Field(
        True,
        description="When max_tokens runs out, end a (non-streamed) reply after its last "
        "complete sentence instead of mid-word; finish_reason stays `length`.",
    )
    max_concurrency: int = Field(1, ge=1, description="Generations that run at the same time.")
    max_queue: int = Field(8, ge=0, description="Requests that may wait for a slot; 429 beyond.")
    stream_idle_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Longest wait for the next token before a generation is abandoned.",
    )
    load_timeout_s: float = Field(
        600.0,
        gt=0,
        description="Give up loading (readiness reports why) after this many seconds; the "
        "self-check (two tokens generated) then runs before the service reports ready.",
    )
