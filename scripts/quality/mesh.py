"""Start the local mesh on free ports for the evaluation (the project's own runner)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from scripts.run_local import Mesh
from testkit.mesh import copy_pipelines, wyoming_ports
from testkit.mesh import local_mesh as free_port_mesh

API_KEY = "quality-eval-key"
# The stages a voice turn goes through (no views: UI, dashboard, Prometheus).
SERVICES = ["audio-preprocessor", "stt", "llm-flan", "tts-piper", "tts-bark", "guardrails"]


@contextlib.contextmanager
def local_mesh(
    log_dir: Path, extra_env: dict[str, dict[str, str]] | None = None, timeout: float = 900
) -> Iterator[Mesh]:
    """The stage services and the orchestrator, ready, on free ports; stopped on exit."""
    pipelines = copy_pipelines(log_dir / "pipelines.yaml")
    env: dict[str, dict[str, str]] = {
        "orchestrator": {"ORCHESTRATOR_API_KEYS": API_KEY, "ORCH_PIPELINES_PATH": str(pipelines)},
        **wyoming_ports(),
        "guardrails": {"GUARD_ESCALATION_DB": str(log_dir / "escalations.sqlite3")},
    }
    for name, values in (extra_env or {}).items():
        env.setdefault(name, {}).update(values)
    with free_port_mesh([*SERVICES, "orchestrator"], log_dir, env, timeout=timeout) as mesh:
        yield mesh
