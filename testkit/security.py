"""A small secured mesh: real guardrails (mesh token, admin key), real orchestrator, fake LLM."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.guardrails.app import build_app as build_guardrails
from services.guardrails.settings import Settings as GuardSettings
from services.orchestrator.app import build_app as build_orchestrator
from services.orchestrator.settings import Settings as OrchSettings
from testkit.fakes.stages import Knobs, fake_stage_app
from testkit.helpers import run_server

MESH_TOKEN = "mesh-token-for-tests"
ADMIN_KEY = "admin-key-for-tests"
KEY_A = "client-key-a"
KEY_B = "client-key-b"
# Small enough to reach in a test, per end user and route.
GUARD_LIMIT = 6


@dataclass
class Mesh:
    """URLs of the running services and the fake LLM's knobs."""

    guardrails: str
    orchestrator: str
    llm: Knobs


def guard_settings(**overrides: Any) -> GuardSettings:
    """Guardrails as an operator would expose them: mesh token, admin key, a per-user limit."""
    base: dict[str, Any] = {
        "toxicity_backend": "none",
        "escalation_db": ":memory:",
        "rate_limit": f"{GUARD_LIMIT}/minute",
        "rate_limit_storage": "memory://",
        "redis_url": "",
        "log_json": False,
        "mesh_token": MESH_TOKEN,
        "admin_api_keys": ADMIN_KEY,
    }
    base.update(overrides)
    return GuardSettings(**base)


def pipelines(path: Path, guard_url: str, llm_url: str) -> Path:
    """The text pipeline with the real guardrails (mesh token as its key) and a fake LLM."""
    doc = {
        "active_pipeline": "text",
        "system_prompt": {"version": "sec-1", "text": "You are a test assistant."},
        "providers": {
            "guardrails": {
                "capability": "guardrails",
                "url": guard_url,
                "api_key": "${MESH_TOKEN:-}",
                "timeout_s": 5,
            },
            "llm": {"capability": "llm", "url": llm_url, "timeout_s": 5},
        },
        "pipelines": {
            "text": [
                {"stage": "guard_input", "providers": ["guardrails"]},
                {"stage": "llm", "providers": ["llm"]},
                {"stage": "guard_output", "providers": ["guardrails"]},
            ]
        },
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@contextlib.contextmanager
def secured_mesh(tmp: Path, guard: dict[str, Any] | None = None, **orch: Any) -> Iterator[Mesh]:
    """Guardrails, a fake LLM and an orchestrator with two client keys and an admin key."""
    knobs = Knobs(name="llm")
    with (
        run_server(build_guardrails(guard_settings(**(guard or {})))) as guard_url,
        run_server(fake_stage_app(knobs)) as llm,
        pytest.MonkeyPatch.context() as mp,
    ):
        # The YAML reads ${MESH_TOKEN} from the orchestrator's environment, as in compose.
        mp.setenv("MESH_TOKEN", MESH_TOKEN)
        settings: dict[str, Any] = {
            "pipelines_path": str(pipelines(tmp / "pipelines.yaml", guard_url, llm)),
            "reload_poll_s": 0,
            "log_json": False,
            "api_keys": f"{KEY_A},{KEY_B}",
            "admin_api_keys": ADMIN_KEY,
            "redis_url": "",
        }
        settings.update(orch)
        with run_server(build_orchestrator(OrchSettings(**settings))) as base:
            yield Mesh(guard_url, base, knobs)
