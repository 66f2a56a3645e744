"""The whole local mesh, started once per test session by the project's own runner."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.run_local import STAGE_SERVICES, Mesh
from testkit.e2e import ADMIN_KEY, API_KEY, VIEW_SERVICES
from testkit.helpers import ROOT, echo_llm_app, free_port, run_server
from testkit.mesh import copy_pipelines, local_mesh, wyoming_ports


@pytest.fixture(scope="session")
def echo_llm() -> Iterator[str]:
    """Base URL of the echo LLM."""
    with run_server(echo_llm_app(history=True), ready_path="/docs") as base:
        yield base


@pytest.fixture(scope="session")
def pipelines_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of config/pipelines.yaml that tests may rewrite (hot reload)."""
    return copy_pipelines(tmp_path_factory.mktemp("config") / "pipelines.yaml")


@pytest.fixture(scope="session")
def mesh(pipelines_file: Path) -> Iterator[Mesh]:
    """Start the stage services and the orchestrator on free ports; stop them at the end."""
    log_dir = ROOT / "artifacts" / "e2e-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    env = {
        # Wyoming endpoints on free ports (tests/e2e/test_wyoming_e2e.py).
        **wyoming_ports(),
        "orchestrator": {
            "ORCH_WYOMING_ENABLED": "true",
            "WYOMING_PORT": str(free_port()),
            "ORCH_PIPELINES_PATH": str(pipelines_file),
            "ORCHESTRATOR_API_KEYS": API_KEY,
            "ADMIN_API_KEYS": ADMIN_KEY,
            "ORCH_RELOAD_POLL_S": "0.5",
            "ORCH_BREAKER_COOLDOWN_S": "2",
            # Fixed canaries: the same prompt, so the same greedy answers, on every run.
            "ORCH_CANARY_KEY": "e2e-canary-key",
        },
        "testing-ui": {"UI_ORCHESTRATOR_API_KEY": API_KEY},
        "monitoring-dashboard": {"DASHBOARD_REFRESH_S": "2", "DASHBOARD_RATE_WINDOW": "1m"},
        # The shipped (per end user) rate limit: the e2e load must fit under it.
        "guardrails": {"GUARD_ESCALATION_DB": str(pipelines_file.parent / "esc.db")},
    }
    with local_mesh(STAGE_SERVICES + VIEW_SERVICES, log_dir, env) as m:
        yield m


@pytest.fixture(scope="session")
def orch(mesh: Mesh) -> Iterator[httpx.Client]:
    """An HTTP client for the orchestrator with the test API key."""
    with httpx.Client(
        base_url=mesh.url("orchestrator"),
        timeout=180,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client
