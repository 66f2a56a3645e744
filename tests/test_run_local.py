"""The local runner: reads a compose file, starts real processes, waits, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from scripts.run_local import load_specs
from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.slow


def _compose(tmp: Path, port: int) -> Path:
    doc = {
        "services": {
            "demo": {
                "build": {"context": "."},
                "command": ["python", "-m", "tests.kit.demo_service"],
                "env_file": [str(tmp / "common.env")],
                "environment": {"PORT": "9999", "DEMO_LOAD_SECONDS": "1.0"},
                "ports": [f"{port}:9999"],
                "healthcheck": {
                    "test": ["CMD", "python", "-m", "services.kit.healthcheck", "/health/ready"]
                },
            },
            "future": {
                "build": {"context": "."},
                "command": ["python", "-m", "services.not_built_yet"],
                "ports": [f"{free_port()}:7777"],
            },
        }
    }
    (tmp / "common.env").write_text("DEMO_PEER_URL=http://demo:9999/v1\nLOG_JSON=false\n")
    path = tmp / "compose.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_specs_rewrite_urls_and_ports(tmp_path):
    port = free_port()
    specs = {s.name: s for s in load_specs(_compose(tmp_path, port), [], None)}
    demo = specs["demo"]
    assert demo.env["DEMO_PEER_URL"] == f"http://127.0.0.1:{port}/v1"
    assert demo.env["PORT"] == str(port) and demo.env["HOST"] == "127.0.0.1"
    assert demo.module == "tests.kit.demo_service"


def test_runner_starts_waits_reports_missing_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    compose = _compose(tmp_path, port)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "run_local.py"),
            "--compose",
            str(compose),
            "--profile-env",
            "none",
            "--no-prepare",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "mesh is up" in line or not line:
            break
    out = "".join(lines)
    assert "future: not implemented yet (no module services.not_built_yet)" in out, out
    assert "ready 0/1 | demo:" in out  # the progress display saw it loading
    assert "demo ready in" in out
    ready = httpx.get(f"http://127.0.0.1:{port}/health/ready").json()
    assert ready["model"] == f"http://127.0.0.1:{port}/v1"  # URL rewritten for local use
    assert any("demo |" in ln for ln in lines)  # prefixed service logs
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "stopped" in rest
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)


def test_runner_exit_when_ready_fails_when_a_service_dies(tmp_path):
    port = free_port()
    compose = _compose(tmp_path, port)
    doc = yaml.safe_load(compose.read_text())
    doc["services"]["demo"]["environment"]["DEMO_LOAD_SECONDS"] = "not-a-number"
    compose.write_text(yaml.safe_dump(doc))
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "run_local.py"),
            "--compose",
            str(compose),
            "--profile-env",
            "none",
            "--no-prepare",
            "--exit-when-ready",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 1
    assert "demo exited" in result.stdout and "load_seconds" in result.stdout
