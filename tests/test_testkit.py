"""The test-support package: where support code may be imported from, and the local mesh."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import httpx
import pytest

from testkit.helpers import ROOT
from testkit.mesh import local_mesh


def _imported_modules(path: Path) -> list[str]:
    """Every module a Python file imports (top level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def _python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def test_nothing_imports_a_conftest() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _python_files("tests", "testkit", "benchmarks", "scripts", "services")
        for name in _imported_modules(path)
        if name.split(".")[-1] == "conftest"
    ]
    assert not found, "conftest.py holds fixtures only; import support from testkit:\n" + (
        "\n".join(found)
    )


def test_nothing_imports_from_tests() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        # Tests included: a helper one test file takes from another belongs in testkit.
        for path in _python_files("tests", "testkit", "benchmarks", "scripts", "services")
        for name in _imported_modules(path)
        if name == "tests" or name.startswith("tests.")
    ]
    assert not found, "support code lives in testkit, not tests/:\n" + "\n".join(found)


@pytest.mark.slow
def test_local_mesh_serves_on_free_ports_and_stops_everything(tmp_path: Path) -> None:
    env = {"guardrails": {"GUARD_ESCALATION_DB": str(tmp_path / "esc.db")}}
    with local_mesh(["guardrails"], tmp_path / "logs", env, timeout=180) as mesh:
        url = mesh.url("guardrails")
        assert url != "http://127.0.0.1:9310", "the compose host port, not a free one"
        assert httpx.get(url + "/health/ready", timeout=5).status_code == 200
        pids = mesh.pids()
        assert pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    assert "guardrails" in (tmp_path / "logs" / "runner.log").read_text()
