"""The offline mesh in real containers, built and started by the project's own make targets.

One session: `make docker-engine` (installs Debian's docker.io and starts dockerd when none
answers), `make compose-build`, `make compose-up` with keys generated for this run (passed in
the environment, so no `.env` is written), and `make compose-down` at the end. Timings go to
artifacts/compose-timings.json for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from scripts.make_env import generate
from tests.helpers import ROOT

PROJECT = "audio-orchestrator"
FILES = ["-f", "docker-compose.yml", "-f", "docker-compose.offline.yml"]
TIMINGS = ROOT / "artifacts" / "compose-timings.json"


@dataclass
class ComposeMesh:
    """The running offline mesh: its keys and how to drive compose and docker."""

    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the compose CLI on the offline files with this run's keys."""
        return run(["docker-compose", *FILES, *args], self.env, check=check)

    def container(self, service: str) -> str:
        """The container id of a compose service."""
        out = self.compose("ps", "-q", service).stdout.split()
        assert out, f"no container for {service}"
        return out[0]

    @property
    def api_key(self) -> str:
        """The first client key the orchestrator accepts."""
        return self.env["ORCHESTRATOR_API_KEYS"].split(",")[0]


def run(
    cmd: list[str], env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command in the repo root; on failure show its output."""
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return result


def timed_make(target: str, env: dict[str, str], timings: dict[str, float], *args: str) -> None:
    """`make <target> [VAR=value...]`, its wall time recorded."""
    start = time.monotonic()
    run(["make", target, *args], env)
    timings[f"make_{target.replace('-', '_')}_s"] = round(time.monotonic() - start, 1)


@pytest.fixture(scope="session")
def compose_mesh() -> Iterator[ComposeMesh]:
    """Build and start the offline mesh; tear it down at the end however the tests went."""
    env = {**os.environ, **generate()}
    mesh = ComposeMesh(env=env)
    timed_make("docker-engine", env, mesh.timings)
    timed_make("compose-build", env, mesh.timings)
    try:
        # Built just above; `up -d --wait` returns once every healthcheck passes: the time
        # to all-healthy.
        timed_make("compose-up", env, mesh.timings, "NO_BUILD=1")
        yield mesh
    finally:
        if mesh.compose("ps", "-q", check=False).stdout.strip():
            mesh.compose("logs", "--no-color", "--tail", "200", check=False)
            (ROOT / "artifacts").mkdir(exist_ok=True)
            logs = mesh.compose("logs", "--no-color", "--tail", "300", check=False).stdout
            (ROOT / "artifacts" / "compose-logs.txt").write_text(logs)
        run(["make", "compose-down"], env, check=False)
        TIMINGS.parent.mkdir(exist_ok=True)
        TIMINGS.write_text(json.dumps(mesh.timings, indent=2) + "\n")
