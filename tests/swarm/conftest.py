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

import pytest

from scripts.make_env import generate
from testkit.docker import SwarmStack, run, swarm_state
from testkit.helpers import ROOT

SERVICES = "orchestrator,stt"
FILES = [
    "-f", "docker-compose.yml", "-f", "docker-compose.offline.yml", "-f", "docker-stack.yml",
    "-f", "tests/swarm/stack.test.yml",
]  # fmt: skip
TIMINGS = ROOT / "artifacts" / "swarm-timings.json"
# Every docker/make call of the session gets this long (a hung engine must not hang CI).
TIMEOUT_S = 900


@pytest.fixture(scope="session")
def swarm_stack() -> Iterator[SwarmStack]:
    """Deploy the stack (two stt replicas); remove it however the tests went."""
    env = {**os.environ, **generate(), "STT_REPLICAS": "2"}
    stack = SwarmStack(env=env)
    run(["make", "docker-engine"], env, timeout=TIMEOUT_S)
    before = swarm_state(env)
    start = time.monotonic()
    run(["make", "compose-build", "SERVICES=orchestrator stt"], env, timeout=TIMEOUT_S)
    stack.timings["build_s"] = round(time.monotonic() - start, 1)
    try:
        start = time.monotonic()
        run(
            [sys.executable, "scripts/stack.py", "up", *FILES, "--only", SERVICES, "--wait", "600"],
            env,
            timeout=TIMEOUT_S,
        )
        stack.timings["stack_up_to_healthy_s"] = round(time.monotonic() - start, 1)
        yield stack
    finally:
        if swarm_state(env) == "active":
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
        run([sys.executable, "scripts/stack.py", "down"], env, check=False, timeout=TIMEOUT_S)
        stack.timings["stack_down_s"] = round(time.monotonic() - start, 1)
        TIMINGS.parent.mkdir(exist_ok=True)
        TIMINGS.write_text(json.dumps(stack.timings, indent=2) + "\n")
        # The engine as we found it: a swarm only if there was one.
        assert swarm_state(env) == before, (before, swarm_state(env))
