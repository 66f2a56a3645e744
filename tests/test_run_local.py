"""The local runner: reads a compose file, starts real processes, waits, stops cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from scripts.run_local import load_specs
from testkit.helpers import ROOT, free_port

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


# --- stopping on signals -------------------------------------------------------------------
# The runner must stop every service within 15 s of a stop signal, however many arrive and
# whenever they arrive (issue #17: SIGTERM then SIGINT once deadlocked it with ten services
# left serving).
STOP_LIMIT_S = 15.0


def _mesh_compose(tmp: Path, ports: dict[str, int], load_seconds: float) -> Path:
    """Three kit demo services and one that ignores SIGTERM/SIGINT and forks a worker."""
    services: dict[str, object] = {}
    for name, port in ports.items():
        if name == "stubborn":
            services[name] = {
                "command": ["python", "-m", "tests.stubborn_service"],
                "environment": {"STUBBORN_LOAD_SECONDS": str(load_seconds)},
                "ports": [f"{port}:8000"],
                "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost:8000/ready"]},
            }
        else:
            services[name] = {
                "command": ["python", "-m", "tests.kit.demo_service"],
                "environment": {"DEMO_LOAD_SECONDS": str(load_seconds), "LOG_JSON": "false"},
                "ports": [f"{port}:9999"],
            }
    path = tmp / "compose.yml"
    path.write_text(yaml.safe_dump({"services": services}))
    return path


@dataclass
class _Runner:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def wait_for(self, text: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in list(self.lines)):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, f"no {text!r} in:\n" + "".join(self.lines)
            time.sleep(0.05)


@contextmanager
def _runner(compose: Path) -> Iterator[_Runner]:
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
    runner = _Runner(proc)

    def drain() -> None:
        # Read all output: a full pipe would block the runner's prints, not its stop logic.
        assert proc.stdout is not None
        for line in proc.stdout:
            runner.lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    try:
        yield runner
    finally:
        if proc.poll() is None:  # the test failed: do not leave a mesh behind
            os.killpg(proc.pid, signal.SIGKILL)
            for pid in _descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            proc.wait()


def _ppids() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process, from /proc."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            out[int(entry.name)] = int(fields[1])
    return out


def _descendants(root: int) -> set[int]:
    ppids = _ppids()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in ppids.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    return pids & set(_ppids())


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _signal_and_check_stop(
    runner: _Runner, signals: list[signal.Signals], ports: dict[str, int], gap_s: float
) -> float:
    """Send `signals` to the runner, `gap_s` apart; check it and every service are gone.

    Returns the seconds from the first signal until the runner exited.
    """
    children = _descendants(runner.proc.pid)
    # One process per service at least (the stubborn one forks a worker once it runs).
    assert len(children) >= len(ports), children
    started = time.monotonic()
    for sig in signals:
        os.kill(runner.proc.pid, sig)
        time.sleep(gap_s)
    try:
        runner.proc.wait(timeout=STOP_LIMIT_S + 5)
    except subprocess.TimeoutExpired:
        pytest.fail("runner still running 20 s after the signals:\n" + "".join(runner.lines))
    took = time.monotonic() - started
    output = "".join(runner.lines)
    assert took < STOP_LIMIT_S, f"stopping took {took:.1f} s\n{output}"
    assert runner.proc.returncode == 0, output
    assert [name for name, port in ports.items() if _listening(port)] == [], output
    assert _alive(children) == set(), output
    return took


def _ports() -> dict[str, int]:
    return {name: free_port() for name in ("demo-a", "demo-b", "demo-c", "stubborn")}


@pytest.mark.parametrize(
    "signals",
    [
        # The sequence that deadlocked the old handler; the second signal escalates to SIGKILL.
        [signal.SIGTERM, signal.SIGINT],
        [signal.SIGTERM, signal.SIGINT] * 10,
    ],
    ids=["sigterm-then-sigint", "burst"],
)
def test_signals_while_up_stop_every_service(tmp_path, signals):
    ports = _ports()
    with _runner(_mesh_compose(tmp_path, ports, load_seconds=0.2)) as runner:
        runner.wait_for("mesh is up")
        assert all(_listening(port) for port in ports.values())
        _signal_and_check_stop(runner, signals, ports, gap_s=0.02)


def test_signal_burst_while_services_start_stops_every_service(tmp_path):
    ports = _ports()
    with _runner(_mesh_compose(tmp_path, ports, load_seconds=30)) as runner:
        runner.wait_for("[runner] ready 0/4")  # every service started, none ready yet
        burst = [signal.SIGINT, signal.SIGTERM] * 10
        _signal_and_check_stop(runner, burst, ports, gap_s=0.0)
        assert "mesh is up" not in "".join(runner.lines)


def test_one_sigterm_kills_a_service_that_ignores_it_within_the_limit(tmp_path):
    ports = _ports()
    with _runner(_mesh_compose(tmp_path, ports, load_seconds=0.2)) as runner:
        runner.wait_for("mesh is up")
        took = _signal_and_check_stop(runner, [signal.SIGTERM], ports, gap_s=0.0)
        # The stubborn service only goes when the SIGTERM grace ends and SIGKILL follows.
        assert took >= 5.0, took
