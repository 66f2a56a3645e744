"""Settings of the llm-flan service (env prefix LLM_)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings
from services.kit.settings import BodyLimit, ListenPort


class Settings(ServiceSettings):
    """Everything the LLM service reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="LLM_")

    port: ListenPort = 8100
    """Listen port."""
    max_body_bytes: BodyLimit = 1_048_576
    """Largest request body accepted (413 beyond)."""
    model: str = "google/flan-t5-base"
    """Model to serve: small/base/large/xl (FLAN-T5 sizes), a hub id, a local model directory, or a
    local .gguf file (causal models only)."""
    engine: Literal["auto", "transformers", "ctranslate2"] = "auto"
    """Inference engine: auto = ctranslate2 when LLM_MODEL is a directory holding a CTranslate2
    model.bin, transformers otherwise."""
    served_model_name: str = ""
    """Model id reported to clients; empty = derived from LLM_MODEL."""
    device: str = "cpu"
    """torch device to run on (cpu, cuda, cuda:0, ...)."""
    torch_threads: NonNegativeInt = 0
    """torch intra-op threads; 0 leaves torch's default."""
    ct2_compute_type: str = "int8"
    """CTranslate2 compute type (int8, int8_float32, int8_float16, float16, float32, default = as
    converted, auto = fastest the device supports)."""
    ct2_threads: NonNegativeInt = 1
    """CTranslate2 threads per generation (intra_threads); 0 = CTranslate2's default. 1 measured
    fastest for SmolLM2-135M on a 2-core CPU."""
    max_input_tokens: int = Field(512, ge=8)
    """Longest prompt in tokens; older turns are dropped first to fit."""
    default_max_tokens: PositiveInt = 256
    """New tokens generated when a request sets no max_tokens."""
    max_new_tokens_limit: PositiveInt = 1024
    """Largest max_tokens a request may ask for (400 beyond)."""
    default_temperature: float = Field(0.0, ge=0.0, le=2.0)
    """Temperature when a request sets none; 0 = greedy decoding."""
    max_messages: PositiveInt = 256
    """Most messages accepted in one request (400 beyond)."""
    max_content_chars: PositiveInt = 32_000
    """Most characters across all message contents (400 beyond)."""
    max_stop_sequences: NonNegativeInt = 4
    """Most stop sequences per request."""
    max_no_repeat_ngram_size: NonNegativeInt = 16
    """Largest no_repeat_ngram_size a request may ask for (400 beyond)."""
    cut_at_sentence: bool = True
    """When max_tokens runs out, end a (non-streamed) reply after its last complete sentence
    instead of mid-word; finish_reason stays `length`."""
    max_concurrency: PositiveInt = 1
    """Generations that run at the same time."""
    max_queue: NonNegativeInt = 8
    """Requests that may wait for a slot; 429 beyond."""
    stream_idle_timeout_s: PositiveFloat = 120.0
    """Longest wait for the next token before a generation is abandoned."""
    load_timeout_s: PositiveFloat = 600.0
    """Give up loading (readiness reports why) after this many seconds; the self-check (two tokens
    generated) then runs before the service reports ready."""
