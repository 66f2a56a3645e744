"""Fixtures for the UI tests: a fake orchestrator, a small kit service, a real Prometheus."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter

from services.kit import ServiceSettings, create_app
from tests.helpers import ROOT, free_port, run_process, run_server
from tests.ui.fakes import Knobs, build_fake_orchestrator

ARTIFACTS = ROOT / "artifacts" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def save_screenshot(page, name: str) -> Path:
    """Screenshot into artifacts/; also into docs/screenshots/ when REFRESH_SCREENSHOTS=1."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    # A test run must not rewrite tracked files: the docs' copies change only on purpose.
    if os.environ.get("REFRESH_SCREENSHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SHOTS / f"{name}.png")
    return path


@dataclass
class Orchestrator:
    url: str
    knobs: Knobs


@pytest.fixture(scope="session")
def fake_orchestrator() -> Iterator[Orchestrator]:
    """The fake orchestrator served by a real uvicorn."""
    knobs = Knobs()
    with run_server(build_fake_orchestrator(knobs)) as url:
        yield Orchestrator(url, knobs)


@pytest.fixture(autouse=True)
def _reset_knobs(request) -> None:
    # Tests that change failure knobs must not leak them into the next test.
    if "fake_orchestrator" in request.fixturenames:
        knobs = request.getfixturevalue("fake_orchestrator").knobs
        knobs.fail_status = None
        knobs.text_audio = True


def build_demo_service():
    """A small real kit service with one route, for traffic Prometheus can count."""
    router = APIRouter()

    @router.get("/work")
    async def work() -> dict[str, str]:
        return {"done": "yes"}

    return create_app("demo", ServiceSettings(), routers=[router])


@pytest.fixture(scope="session")
def demo_service() -> Iterator[str]:
    """The demo kit service's base URL."""
    with run_server(build_demo_service()) as url:
        yield url


@dataclass
class Prometheus:
    url: str
    jobs: dict[str, str]


def wait_for_targets(prom_url: str, jobs: set[str], timeout: float = 60.0) -> None:
    """Poll /api/v1/targets until every job's target has been scraped successfully."""
    deadline = time.monotonic() + timeout
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            data = httpx.get(prom_url + "/api/v1/targets", timeout=2).json()["data"]
            health = {t["labels"]["job"]: t["health"] for t in data["activeTargets"]}
            if all(health.get(j) == "up" for j in jobs):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"targets not up in {timeout} s: {health}")


@pytest.fixture(scope="session")
def prometheus(
    fake_orchestrator: Orchestrator, demo_service: str, tmp_path_factory
) -> Iterator[Prometheus]:
    """A real Prometheus (Debian package) scraping the fake orchestrator and the demo service."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed (apt-get install prometheus)")
    tmp = tmp_path_factory.mktemp("prometheus")
    jobs = {
        "orchestrator": fake_orchestrator.url.removeprefix("http://"),
        "demo": demo_service.removeprefix("http://"),
    }
    lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s", "scrape_configs:"]
    for job, target in jobs.items():
        lines += [f"  - job_name: {job}", "    static_configs:", f'      - targets: ["{target}"]']
    config = tmp / "prometheus.yml"
    config.write_text("\n".join(lines) + "\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with run_process(cmd, url + "/-/ready", log=tmp / "prometheus.log"):
        wait_for_targets(url, set(jobs))
        yield Prometheus(url, jobs)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.5, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")
