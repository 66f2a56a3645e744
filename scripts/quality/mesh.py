"""Start the local mesh on free ports for the evaluation (the project's own runner)."""

from __future__ import annotations

import contextlib
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from scripts.quality.dataset import ROOT
from scripts.run_local import Mesh, load_specs

API_KEY = "quality-eval-key"
# The stages a voice turn goes through (no views: UI, dashboard, Prometheus).
SERVICES = ["audio-preprocessor", "stt", "llm-flan", "tts-piper", "tts-bark", "guardrails"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def local_mesh(
    log_dir: Path, extra_env: dict[str, dict[str, str]] | None = None, timeout: float = 900
) -> Iterator[Mesh]:
    """The stage services and the orchestrator, ready, on free ports; stopped on exit."""
    names = [*SERVICES, "orchestrator"]
    # A private copy of the pipelines: editing config/pipelines.yaml during a run (the
    # orchestrator hot-reloads it) must not change the run's configuration half-way.
    log_dir.mkdir(parents=True, exist_ok=True)
    pipelines = log_dir / "pipelines.yaml"
    shutil.copy(ROOT / "config" / "pipelines.yaml", pipelines)
    ports = {name: free_port() for name in names}
    specs = load_specs(ROOT / "docker-compose.yml", [], ROOT / ".env.local", host_ports=ports)
    env: dict[str, dict[str, str]] = {
        "orchestrator": {"ORCHESTRATOR_API_KEYS": API_KEY, "ORCH_PIPELINES_PATH": str(pipelines)},
        "stt": {"WYOMING_PORT": str(free_port())},
        "tts-piper": {"WYOMING_PORT": str(free_port())},
        "guardrails": {"GUARD_ESCALATION_DB": str(log_dir / "escalations.sqlite3")},
    }
    for name, values in (extra_env or {}).items():
        env.setdefault(name, {}).update(values)
    with (log_dir / "runner.log").open("w") as out:
        mesh = Mesh(
            specs, only=set(names), out=out, log_dir=log_dir, quiet_logs=True, extra_env=env
        )
        mesh.start_all()
        try:
            if not mesh.wait_ready(timeout=timeout):
                raise RuntimeError(f"the mesh did not become ready; see {log_dir}")
            yield mesh
        finally:
            mesh.stop_all()
