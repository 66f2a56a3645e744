"""config/prometheus*.yml: valid for promtool and scraping every service of the mesh."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from testkit.helpers import ROOT

# compose name → (internal port, host port used by the local runner)
MESH = {
    "audio-preprocessor": (9200, 9210),
    "stt": (9000, 9010),
    "llm-flan": (8100, 8110),
    "tts-piper": (7000, 7010),
    "tts-bark": (7100, 7120),
    "guardrails": (9300, 9310),
    "orchestrator": (8200, 8220),
    "testing-ui": (8080, 8080),
}


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus.local.yml"])
def test_promtool_accepts_config(name):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (apt-get install prometheus)"
    r = subprocess.run(
        [promtool, "check", "config", str(ROOT / "config" / name)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    ("name", "local"), [("prometheus.yml", False), ("prometheus.local.yml", True)]
)
def test_every_service_is_a_job_with_the_right_target(name, local):
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for service, (internal, host) in MESH.items():
        assert service in jobs, f"{name} does not scrape {service}"
        targets = [t for sc in jobs[service]["static_configs"] for t in sc["targets"]]
        expected = f"127.0.0.1:{host}" if local else f"{service}:{internal}"
        assert targets == [expected]
        assert jobs[service].get("metrics_path", "/metrics") == "/metrics"
        # A `service` target label would clash with the kit's own label (→ exported_service).
        assert all("service" not in sc.get("labels", {}) for sc in jobs[service]["static_configs"])
