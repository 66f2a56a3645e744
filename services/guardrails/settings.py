"""Guardrails settings (env prefix GUARD_; REDIS_URL and the kit's fields unprefixed)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings

ToxicityBackend = Literal["transformers", "profanity-check", "none"]


class Settings(ServiceSettings):
    """Everything the guardrails service can be configured with."""

    model_config = SettingsConfigDict(env_prefix="GUARD_", extra="ignore", populate_by_name=True)

    port: int = Field(9300, validation_alias=AliasChoices("PORT"), description="Listen port.")
    max_body_bytes: int = Field(
        262_144,
        validation_alias=AliasChoices("MAX_BODY_BYTES"),
        description="Largest request body accepted; larger bodies get 413.",
    )
    max_input_chars: int = Field(
        4000, gt=0, description="Longest text /validate/input accepts (400 beyond)."
    )
    max_history_items: int = Field(
        64, ge=0, description="Most earlier texts /validate/input accepts in `history`."
    )
    max_history_chars: int = Field(
        32_000,
        ge=0,
        description="Most characters in `history` together (400 beyond): bounds the rule scan.",
    )
    max_output_chars: int = Field(
        20_000, gt=0, description="Longest text /validate/output accepts (400 beyond)."
    )
    toxicity_backend: ToxicityBackend = Field(
        "transformers",
        description="Toxicity engine: transformers (model below), profanity-check, or none.",
    )
    toxicity_model: str = Field(
        "unitary/toxic-bert",
        description="Hub id or local directory of a sequence-classification model.",
    )
    toxicity_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Score at or above which an output counts as toxic."
    )
    toxicity_max_tokens: int = Field(
        512, gt=0, description="Tokens the transformers classifier reads; longer text is cut."
    )
    injection_classifier: Literal["ngram", "none"] = Field(
        "ngram",
        description="Built-in injection classifier: ngram (the shipped TF-IDF model) or none "
        "(rules only). A missing ngram artefact keeps the service unready.",
    )
    injection_ngram_path: str = Field(
        "", description="n-gram classifier artefact; empty = the one shipped with the service."
    )
    injection_ngram_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Score at or above which the n-gram classifier blocks; unset = the "
        "threshold calibrated at training time (stored in the artefact).",
    )
    injection_min_chars: int = Field(
        120,
        ge=0,
        description="Shortest text the n-gram classifier scores; shorter ones are left to the "
        "rules (the classifier mistakes short questions about prompts or instructions for "
        "attacks: docs/services/guardrails.md).",
    )
    injection_model: str = Field(
        "",
        description="Optional prompt-injection classifier (hub id or dir); empty = rules only.",
    )
    injection_threshold: float = Field(
        0.9, ge=0.0, le=1.0, description="Classifier score at or above which input is blocked."
    )
    device: str = Field("cpu", description="torch device for transformers classifiers.")
    load_timeout_s: float = Field(
        600.0, gt=0, description="Give up loading (readiness reports why) after this many seconds."
    )
    max_concurrent: int = Field(2, gt=0, description="Classifier calls run at once.")
    max_queue: int = Field(32, ge=0, description="Classifier calls allowed to wait (429 beyond).")
    blocked_output_message: str = Field(
        "I'm sorry, I can't share that response.",
        description="What `filtered` holds when an output is blocked as toxic.",
    )
    escalation_db: str = Field(
        "data/guardrails/escalations.sqlite3",
        description="SQLite file for escalations; ':memory:' keeps them in the process only.",
    )
    max_escalation_chars: int = Field(
        16_000, gt=0, description="Largest escalation reason+context (as JSON) accepted."
    )
    rate_limit: str = Field(
        "600/minute",
        description="slowapi limit per end user and route, e.g. '600/minute': the identity "
        "the orchestrator forwards in X-End-User-ID (trusted only from a mesh-token caller, "
        "or when no MESH_TOKEN is set), else the client address.",
    )
    rate_limit_storage: str = Field(
        "memory://",
        description="slowapi storage URI; memory:// is per process. REDIS_URL wins when set.",
    )
    redis_url: str = Field(
        "",
        validation_alias=AliasChoices("REDIS_URL"),
        description="Shared Redis (redis://...) so replicas share rate-limit counts.",
    )

    @property
    def limiter_storage_uri(self) -> str:
        """The storage slowapi uses: an explicit non-memory URI, else REDIS_URL, else memory."""
        if self.rate_limit_storage and not self.rate_limit_storage.startswith("memory://"):
            return self.rate_limit_storage
        return self.redis_url or self.rate_limit_storage or "memory://"
