"""The local mesh on free ports, started by the project's own runner (scripts/run_local.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path

from scripts.run_local import Mesh, load_specs
from testkit.helpers import ROOT, free_port


def copy_pipelines(path: Path) -> Path:
    """A private copy of config/pipelines.yaml at `path`.

    The orchestrator hot-reloads its pipelines file: editing the tracked one during a run must
    not change the run's configuration half-way, and a test may rewrite its own copy.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config" / "pipelines.yaml", path)
    return path


def wyoming_ports() -> dict[str, dict[str, str]]:
    """Free ports for the Wyoming endpoints of stt and tts-piper (compose publishes fixed ones)."""
    return {name: {"WYOMING_PORT": str(free_port())} for name in ("stt", "tts-piper")}


@contextlib.contextmanager
def local_mesh(
    names: Iterable[str],
    log_dir: Path,
    extra_env: dict[str, dict[str, str]] | None = None,
    *,
    timeout: float = 600,
) -> Iterator[Mesh]:
    """The named compose services with the offline profile on free ports, ready; stopped on exit.

    Each service's log goes to `log_dir`, the runner's own lines to `log_dir/runner.log`;
    a mesh that does not become ready in `timeout` seconds raises RuntimeError.
    """
    chosen = list(names)
    ports = {name: free_port() for name in chosen}
    specs = load_specs(ROOT / "docker-compose.yml", [], ROOT / ".env.local", host_ports=ports)
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "runner.log").open("w") as out:
        mesh = Mesh(
            specs,
            only=set(chosen),
            out=out,
            log_dir=log_dir,
            quiet_logs=True,
            extra_env=extra_env or {},
        )
        mesh.start_all()
        try:
            if not mesh.wait_ready(timeout=timeout):
                raise RuntimeError(f"the mesh did not become ready; see {log_dir}")
            yield mesh
        finally:
            # A service a benchmark paused (SIGSTOP) would ignore SIGTERM until continued.
            for run in mesh.running.values():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(run.proc.pid, signal.SIGCONT)
            mesh.stop_all()
