"""Docker support for the compose and swarm acceptance tests: the CLI, the mesh, the stack."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field

from scripts.stack import STACK
from testkit.helpers import ROOT

PROJECT = "audio-orchestrator"
FILES = ["-f", "docker-compose.yml", "-f", "docker-compose.offline.yml"]


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
    cmd: list[str], env: dict[str, str], check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command in the repo root; on failure show its output."""
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
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


def swarm_state(env: dict[str, str]) -> str:
    """The engine's swarm state: inactive, active, pending, ..."""
    return run(
        ["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], env, timeout=900
    ).stdout.strip()
