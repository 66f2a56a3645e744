"""scripts/make_env.py: the .env that compose needs, with fresh keys, private from the start."""

from __future__ import annotations

import stat
import subprocess
import sys

from scripts.make_env import generate
from testkit.helpers import ROOT


def _env(path) -> dict[str, str]:
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return dict(ln.split("=", 1) for ln in lines)


def test_writes_private_env_with_fresh_keys_and_never_overwrites(tmp_path):
    path = tmp_path / ".env"
    cmd = [sys.executable, str(ROOT / "scripts" / "make_env.py"), "--path", str(path)]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = _env(path)
    assert values["MESH_TOKEN"] in first.stdout  # printed once
    clients = values["ORCHESTRATOR_API_KEYS"].split(",")
    # The UI and the bot talk to the orchestrator with client keys it accepts.
    assert values["UI_ORCHESTRATOR_API_KEY"] in clients
    assert values["DISCORD_ORCHESTRATOR_API_KEY"] in clients
    assert values["UI_USERNAME"] == "tester" and len(values["UI_PASSWORD"]) >= 20
    again = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "exists" in again.stdout and _env(path) == values
    subprocess.run([*cmd, "--force", "--quiet"], capture_output=True, check=True)
    assert _env(path)["MESH_TOKEN"] != values["MESH_TOKEN"]


def test_keys_differ_between_runs_and_between_roles():
    a, b = generate(), generate()
    assert a["MESH_TOKEN"] != b["MESH_TOKEN"]
    secrets = [a["MESH_TOKEN"], a["ADMIN_API_KEYS"], *a["ORCHESTRATOR_API_KEYS"].split(",")]
    assert len(set(secrets)) == len(secrets) and all(len(s) > 40 for s in secrets)
