"""The Swarm stack as `make stack-up` renders it (no engine needed: the compose CLI renders)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from scripts.stack import DEFAULT_FILES, merged, to_swarm
from testkit.helpers import ROOT

KEYS = {
    "ORCHESTRATOR_API_KEYS": "k-client",
    "MESH_TOKEN": "k-mesh",
    "UI_ORCHESTRATOR_API_KEY": "k-client",
    "UI_PASSWORD": "k-ui",
}
STAGES = ("stt", "llm-flan", "tts-piper", "tts-bark", "guardrails")


@pytest.fixture(scope="module")
def stack() -> dict:
    """The offline stack file, rendered with placeholder keys (a checkout's .env aside)."""
    env = {**KEYS, "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    return to_swarm(merged(DEFAULT_FILES, env))


def test_every_stage_has_replicas_and_resolves_each_of_them(stack: dict):
    for name in STAGES:
        deploy = stack["services"][name]["deploy"]
        assert deploy["replicas"] >= 2, name
        assert deploy["endpoint_mode"] == "dnsrr", name  # works without IPVS
        res = deploy["resources"]
        assert res["limits"]["cpus"] and res["reservations"]["memory"], name


def test_updates_start_the_new_replica_first_and_roll_back_on_failure(stack: dict):
    for name, svc in stack["services"].items():
        update = svc["deploy"]["update_config"]
        assert update["order"] == "start-first" and update["failure_action"] == "rollback", name
        assert svc["deploy"]["rollback_config"]["order"] == "start-first", name
        assert svc["deploy"]["restart_policy"]["condition"] == "any", name
        # What gates an update: the new task must pass its readiness check.
        assert "healthcheck" in svc, name


def test_only_authenticated_views_are_published_in_host_mode(stack: dict):
    published = {
        name: [(p["published"], p["mode"]) for p in svc.get("ports", [])]
        for name, svc in stack["services"].items()
        if svc.get("ports")
    }
    assert published == {"orchestrator": [(8220, "host")], "testing-ui": [(8080, "host")]}


def test_nothing_swarm_refuses_and_the_keys_come_from_the_environment(stack: dict):
    for name, svc in stack["services"].items():
        assert not {"build", "depends_on", "restart", "env_file"} & set(svc), name
        assert all(v is not None for v in svc.values()), name
    assert stack["services"]["stt"]["environment"]["MESH_TOKEN"] == "k-mesh"
    assert stack["services"]["orchestrator"]["environment"]["ORCHESTRATOR_API_KEYS"] == "k-client"
    # The offline models are a read-only bind mount of the checkout's .models-docker.
    mounts = {v["target"]: v for v in stack["services"]["stt"]["volumes"]}
    assert mounts["/app/.models"]["source"] == str(ROOT / ".models-docker")
    assert mounts["/app/.models"]["read_only"] is True
    assert stack["networks"]["default"]["driver"] == "overlay"


def test_the_swarm_prometheus_config_scrapes_every_replica():
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package, make system-deps) is required"
    path = ROOT / "config" / "prometheus.swarm.yml"
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True)
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    for name in (*STAGES, "audio-preprocessor", "orchestrator"):
        assert f'"tasks.{name}"' in text, name


def test_the_gpu_overlay_places_the_cuda_engines_on_gpu_nodes():
    env = {**KEYS, "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    files = (
        "docker-compose.yml",
        "docker-compose.enhanced.yml",
        "docker-stack.yml",
        "docker-stack.gpu.yml",
    )
    stack = to_swarm(merged(files, env))
    for name in ("stt", "llm-flan", "tts-bark", "guardrails"):
        deploy = stack["services"][name]["deploy"]
        assert deploy["placement"]["constraints"] == ["node.labels.gpu == true"], name
        reservations = deploy["resources"]["reservations"]
        assert "devices" not in reservations, name  # compose's GPU syntax; not swarm's
        spec = reservations["generic_resources"][0]["discrete_resource_spec"]
        assert spec == {"kind": "NVIDIA-GPU", "value": 1}, name
    assert not stack["services"]["tts-piper"]["deploy"].get("placement")  # Piper: any node
