"""Fixtures for the UI tests: a fake orchestrator, a small kit service, a real Prometheus.

Helpers (Chromium flags, screenshots, polling) live in testkit.ui.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from testkit.fakes.stages import Knobs as StageKnobs
from testkit.fakes.stages import fake_stage_app
from testkit.fakes.ui_orchestrator import Knobs, build_fake_orchestrator
from testkit.helpers import free_port, run_process, run_server
from testkit.orchestrator import Fake, all_urls, config_doc, orchestrator, write_config
from testkit.ui import LIVE_KEY, build_demo_service, wait_for_targets


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


@pytest.fixture(scope="session")
def demo_service() -> Iterator[str]:
    """The demo kit service's base URL."""
    with run_server(build_demo_service()) as url:
        yield url


@dataclass
class Prometheus:
    url: str
    jobs: dict[str, str]


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


@pytest.fixture(scope="module")
def stage_fakes() -> Iterator[dict[str, Fake]]:
    """Three fake stage services (primary, backup, third) for a real orchestrator."""
    with contextlib.ExitStack() as stack:
        out = {}
        for name in ("primary", "backup", "third"):
            knobs = StageKnobs(name=name)
            out[name] = Fake(knobs, stack.enter_context(run_server(fake_stage_app(knobs))))
        yield out


@pytest.fixture(scope="module")
def live_orchestrator(
    tmp_path_factory: pytest.TempPathFactory, stage_fakes: dict[str, Fake]
) -> Iterator[str]:
    """The real orchestrator on the fake stages, requiring the key LIVE_KEY."""
    doc = config_doc(all_urls(stage_fakes))
    path = write_config(tmp_path_factory.mktemp("live") / "p.yaml", doc)
    with orchestrator(path, api_keys=LIVE_KEY) as base:
        yield base
