"""The offline mesh's STT path as a Docker Swarm stack on a single-node swarm.

One session: `make docker-engine`, `make compose-build` of the two images the tests use (warm
after `make compose-test`), then `scripts/stack.py up` with docker-stack.yml — the same
rendering `make stack-up` does — keeping only the orchestrator and stt (two replicas), with
Whisper tiny.en and no denoise stage (tests/swarm/stack.test.yml), to hold CI's cost down;
`scripts/stack.py down` at the end, which leaves the swarm only if this run initialised it.
Keys are generated for the run and passed in the environment (no `.env` written). Timings go to
artifacts/swarm-timings.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from scripts.make_env import generate
from scripts.stack import STACK
from tests.helpers import ROOT

SERVICES = "orchestrator,stt"
FILES = [
    "-f", "docker-compose.yml", "-f", "docker-compose.offline.yml", "-f", "docker-stack.yml",
    "-f", "tests/swarm/stack.test.yml",
]  # fmt: skip
TIMINGS = ROOT / "artifacts" / "swarm-timings.json"


def run(
    cmd: list[str], env: dict[str, str], check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run a command in the repo root; on failure show its output."""
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return result


@dataclass
class SwarmStack:
    """The deployed stack: its keys and how to look at its tasks."""

    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    def docker(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        """The docker CLI's stdout."""
        return run(["docker", *args], self.env, check=check, timeout=timeout).stdout

    def service(self, name: str) -> str:
        """The swarm service name of a compose service."""
        return f"{STACK}_{name}"

    def containers(self, name: str) -> list[str]:
        """Ids of the running containers of a service's tasks."""
        label = f"label=com.docker.swarm.service.name={self.service(name)}"
        return self.docker("ps", "-q", "--filter", label, "--filter", "status=running").split()

    def healthy(self, name: str) -> list[str]:
        """Ids of the service's containers whose healthcheck passes."""
        return [
            c
            for c in self.containers(name)
            if self.docker("inspect", "-f", "{{.State.Health.Status}}", c, check=False).strip()
            == "healthy"
        ]

    @property
    def api_key(self) -> str:
        """The first client key the orchestrator accepts."""
        return self.env["ORCHESTRATOR_API_KEYS"].split(",")[0]


def _swarm_state(env: dict[str, str]) -> str:
    return run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], env).stdout.strip()


@pytest.fixture(scope="session")
def swarm_stack() -> Iterator[SwarmStack]:
    """Deploy the stack (two stt replicas); remove it however the tests went."""
    env = {**os.environ, **generate(), "STT_REPLICAS": "2"}
    stack = SwarmStack(env=env)
    run(["make", "docker-engine"], env)
    before = _swarm_state(env)
    start = time.monotonic()
    run(["make", "compose-build", "SERVICES=orchestrator stt"], env)
    stack.timings["build_s"] = round(time.monotonic() - start, 1)
    try:
        start = time.monotonic()
        run(
            [sys.executable, "scripts/stack.py", "up", *FILES, "--only", SERVICES, "--wait", "600"],
            env,
        )
        stack.timings["stack_up_to_healthy_s"] = round(time.monotonic() - start, 1)
        yield stack
    finally:
        if _swarm_state(env) == "active":
            try:
                args = ("service", "logs", "--tail", "100", stack.service("stt"))
                logs = stack.docker(*args, check=False, timeout=60)
            except subprocess.TimeoutExpired:
                # Engine 20.10's `service logs` can hang on a task whose container is gone (seen
                # after the rollback test); the stack must still come down.
                logs = "docker service logs: no answer in 60 s\n"
            (ROOT / "artifacts").mkdir(exist_ok=True)
            (ROOT / "artifacts" / "swarm-stt-logs.txt").write_text(logs)
        start = time.monotonic()
        run([sys.executable, "scripts/stack.py", "down"], env, check=False)
        stack.timings["stack_down_s"] = round(time.monotonic() - start, 1)
        TIMINGS.parent.mkdir(exist_ok=True)
        TIMINGS.write_text(json.dumps(stack.timings, indent=2) + "\n")
        # The engine as we found it: a swarm only if there was one.
        assert _swarm_state(env) == before, (before, _swarm_state(env))
