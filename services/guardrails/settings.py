"""Guardrails settings (env prefix GUARD_; REDIS_URL and the kit's fields unprefixed)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings
from services.kit.settings import BodyLimit, ListenPort

ToxicityBackend = Literal["transformers", "profanity-check", "none"]


class Settings(ServiceSettings):
    """Everything the guardrails service can be configured with."""

    model_config = SettingsConfigDict(env_prefix="GUARD_")

    port: ListenPort = 9300
    """Listen port."""
    max_body_bytes: BodyLimit = 262_144
    """Largest request body accepted; larger bodies get 413."""
    max_input_chars: PositiveInt = 4000
    """Longest text /validate/input accepts (400 beyond)."""
    max_history_items: NonNegativeInt = 64
    """Most earlier texts /validate/input accepts in `history`."""
    max_history_chars: NonNegativeInt = 32_000
    """Most characters in `history` together (400 beyond): bounds the rule scan."""
    max_output_chars: PositiveInt = 20_000
    """Longest text /validate/output accepts (400 beyond)."""
    toxicity_backend: ToxicityBackend = "transformers"
    """Toxicity engine: transformers (model below), profanity-check, or none."""
    toxicity_model: str = "unitary/toxic-bert"
    """Hub id or local directory of a sequence-classification model."""
    toxicity_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Score at or above which an output counts as toxic."""
    toxicity_max_tokens: PositiveInt = 512
    """Tokens the transformers classifier reads; longer text is cut."""
    injection_classifier: Literal["ngram", "none"] = "ngram"
    """Built-in injection classifier: ngram (the shipped TF-IDF model) or none (rules only). A
    missing ngram artefact keeps the service unready."""
    injection_ngram_path: str = ""
    """n-gram classifier artefact; empty = the one shipped with the service."""
    injection_ngram_threshold: float | None = Field(None, ge=0.0, le=1.0)
    """Score at or above which the n-gram classifier blocks; unset = the threshold calibrated at
    training time (stored in the artefact)."""
    injection_min_chars: NonNegativeInt = 120
    """Shortest text the n-gram classifier scores; shorter ones are left to the rules (the
    classifier mistakes short questions about prompts or instructions for attacks:
    docs/services/guardrails.md)."""
    injection_model: str = ""
    """Optional prompt-injection classifier (hub id or dir); empty = rules only."""
    injection_threshold: float = Field(0.9, ge=0.0, le=1.0)
    """Classifier score at or above which input is blocked."""
    device: str = "cpu"
    """torch device for transformers classifiers."""
    load_timeout_s: PositiveFloat = 600.0
    """Give up loading (readiness reports why) after this many seconds."""
    max_concurrent: PositiveInt = 2
    """Classifier calls run at once."""
    max_queue: NonNegativeInt = 32
    """Classifier calls allowed to wait (429 beyond)."""
    blocked_output_message: str = "I'm sorry, I can't share that response."
    """What `filtered` holds when an output is blocked as toxic."""
    escalation_db: str = "data/guardrails/escalations.sqlite3"
    """SQLite file for escalations; ':memory:' keeps them in the process only."""
    max_escalation_chars: PositiveInt = 16_000
    """Largest escalation reason+context (as JSON) accepted."""
    rate_limit: str = "600/minute"
    """slowapi limit per end user and route, e.g. '600/minute': the identity the orchestrator
    forwards in X-End-User-ID (trusted only from a mesh-token caller, or when no MESH_TOKEN is
    set), else the client address."""
    rate_limit_storage: str = "memory://"
    """slowapi storage URI; memory:// is per process. REDIS_URL wins when set."""
    redis_url: str = Field("", validation_alias=AliasChoices("REDIS_URL"))
    """Shared Redis (redis://...) so replicas share rate-limit counts."""

    @property
    def limiter_storage_uri(self) -> str:
        """The storage slowapi uses: an explicit non-memory URI, else REDIS_URL, else memory."""
        if self.rate_limit_storage and not self.rate_limit_storage.startswith("memory://"):
            return self.rate_limit_storage
        return self.redis_url or self.rate_limit_storage or "memory://"
