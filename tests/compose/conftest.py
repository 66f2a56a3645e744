"""The offline mesh in real containers, built and started by the project's own make targets.

One session: `make docker-engine` (installs Debian's docker.io and starts dockerd when none
answers), `make compose-build`, `make compose-up` with keys generated for this run (passed in
the environment, so no `.env` is written), and `make compose-down` at the end. Timings go to
artifacts/compose-timings.json for docs/benchmarks.md. Helpers: testkit.docker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from scripts.make_env import generate
from testkit.docker import ComposeMesh, run, timed_make
from testkit.helpers import ROOT

TIMINGS = ROOT / "artifacts" / "compose-timings.json"


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
