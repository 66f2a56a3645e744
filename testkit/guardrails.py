"""Guardrails test support: settings for an in-process app and the labelled data files."""

from __future__ import annotations

import json
from typing import Any

from services.guardrails.settings import Settings
from testkit.helpers import ROOT

DATA = ROOT / "tests" / "guardrails" / "data"


def load_jsonl(name: str) -> list[dict[str, Any]]:
    """Rows of one labelled data file."""
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def make_settings(**overrides: Any) -> Settings:
    """Settings for an in-process test app (no env files, in-memory escalations)."""
    base: dict[str, Any] = {
        "toxicity_backend": "profanity-check",
        "escalation_db": ":memory:",
        "rate_limit": "100000/minute",
        "rate_limit_storage": "memory://",
        "redis_url": "",
        "log_json": False,
        "mesh_token": "",
        "admin_api_keys": "",
    }
    base.update(overrides)
    return Settings(**base)
