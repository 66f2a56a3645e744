"""Every service's settings: documented variables are read; shared field kinds resolve alike."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource

from services.kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS += sorted((ROOT / "docs" / "services").glob("*.md"))

# env prefix → the settings module that reads it
PREFIXES = {
    "STT_": "stt",
    "LLM_": "llm",
    "PIPER_": "tts_piper",
    "BARK_": "tts_bark",
    "GUARD_": "guardrails",
    "DENOISE_": "preprocessor",
    "ORCH_": "orchestrator",
    "UI_": "testing_ui",
    "DASHBOARD_": "dashboard",
    "DISCORD_": "discord_bot",
}
# Placeholders in the docs, not variables: `ORCH_*`, `LLM_<NAME>`.
DOC_NAME = re.compile(r"\b(?:" + "|".join(PREFIXES) + r")[A-Z0-9_]*[A-Z0-9]\b(?![<*])")
# Variables the files themselves expand: the orchestrator's pipeline YAML (provider URLs, keys)
# and the compose/stack files (replica counts).
EXPANDED = {
    m
    for f in [ROOT / "config" / "pipelines.yaml", *ROOT.glob("docker-*.yml")]
    for m in re.findall(r"\$\{([A-Z][A-Z0-9_]*)", f.read_text())
}


def _settings(module: str) -> type[BaseSettings]:
    cls = importlib.import_module(f"services.{module}.settings").Settings
    assert issubclass(cls, ServiceSettings)
    return cls


def _fields_reading(
    cls: type[BaseSettings], name: str, monkeypatch: pytest.MonkeyPatch
) -> set[str]:
    """The fields pydantic-settings fills from the environment variable `name` (set to "1")."""
    monkeypatch.delenv(name, raising=False)
    before = EnvSettingsSource(cls)()
    monkeypatch.setenv(name, "1")
    found = EnvSettingsSource(cls)()
    monkeypatch.delenv(name)
    fields = set()
    for key in found.keys() - before.keys():
        for fname, info in cls.model_fields.items():
            alias = info.validation_alias
            choices = getattr(alias, "choices", [alias])
            if key == fname or key in choices:
                fields.add(fname)
    return fields


def _documented() -> list[tuple[str, str]]:
    names = set()
    for doc in DOCS:
        found = {m.group(0) for m in DOC_NAME.finditer(doc.read_text())}
        names |= {(name, doc.name) for name in found - EXPANDED}
    return sorted(names)


@pytest.mark.parametrize(("name", "doc"), _documented())
def test_every_documented_variable_is_read(name, doc, monkeypatch):
    readers = [
        m
        for m in sorted(set(PREFIXES.values()))
        if _fields_reading(_settings(m), name, monkeypatch)
    ]
    assert readers, f"{doc}: {name} is read by no settings class and expanded by no config file"


@pytest.mark.parametrize("module", sorted(set(PREFIXES.values())))
def test_every_setting_has_a_description(module):
    cls = _settings(module)
    missing = [f for f, info in cls.model_fields.items() if not (info.description or "").strip()]
    assert not missing, f"{module}: fields without a docstring: {missing}"


@pytest.mark.parametrize(
    ("module", "prefix", "port", "wyoming_port", "wyoming_enabled"),
    [
        ("stt", "STT_", 9000, 10300, True),
        ("tts_piper", "PIPER_", 7000, 10200, True),
        ("orchestrator", "ORCH_", 8200, 10700, False),
    ],
)
def test_shared_fields_read_the_plain_and_the_prefixed_name(
    module, prefix, port, wyoming_port, wyoming_enabled, monkeypatch
):
    cls = _settings(module)
    for var in ("PORT", "WYOMING_PORT", f"{prefix}PORT", f"{prefix}WYOMING_PORT"):
        monkeypatch.delenv(var, raising=False)
    s = cls()
    assert (s.port, s.wyoming_port, s.wyoming_enabled) == (port, wyoming_port, wyoming_enabled)
    assert (s.wyoming_host, s.wyoming_allow) == ("0.0.0.0", "private")
    monkeypatch.setenv(f"{prefix}WYOMING_PORT", "11000")
    monkeypatch.setenv(f"{prefix}PORT", "9100")
    monkeypatch.setenv(f"{prefix}WYOMING_ALLOW", "10.0.0.0/8")
    s = cls()
    assert (s.port, s.wyoming_port, s.wyoming_allow) == (9100, 11000, "10.0.0.0/8")
    # The unprefixed name (what compose passes) wins over the prefixed one.
    monkeypatch.setenv("WYOMING_PORT", "12000")
    monkeypatch.setenv("PORT", "9200")
    s = cls()
    assert (s.port, s.wyoming_port) == (9200, 12000)
    monkeypatch.setenv("WYOMING_PORT", "-1")
    with pytest.raises(ValidationError, match="WYOMING_PORT"):
        cls()


@pytest.mark.parametrize("module", sorted(set(PREFIXES.values()) - {"discord_bot"}))
def test_unknown_variables_are_ignored_and_bounds_still_hold(module, monkeypatch):
    cls = _settings(module)
    prefix = next(p for p, m in PREFIXES.items() if m == module)
    monkeypatch.setenv(f"{prefix}NO_SUCH_SETTING", "x")
    cls()
    monkeypatch.setenv("MAX_BODY_BYTES", "not-a-number")
    with pytest.raises(ValidationError, match="MAX_BODY_BYTES"):
        cls()


@pytest.mark.parametrize(
    ("module", "variable", "value"),
    [
        ("stt", "STT_MAX_CONCURRENCY", "0"),
        ("stt", "STT_MAX_QUEUE", "-1"),
        ("llm", "LLM_MAX_QUEUE", "-1"),
        ("tts_piper", "PIPER_MAX_CONCURRENT", "0"),
        ("tts_bark", "BARK_TIMEOUT_S", "0"),
        ("guardrails", "GUARD_MAX_CONCURRENT", "0"),
        ("orchestrator", "ORCH_BREAKER_FAILURES", "0"),
    ],
)
def test_limits_out_of_range_are_refused(module, variable, value, monkeypatch):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        _settings(module)()


# A settings table row: | `VAR` (or `ALIAS`) | default | what |
ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]+)`(?:\s*\(or `[A-Z_]+`\))?\s*\|\s*([^|]*?)\s*\|")
EMPTY = {"", "empty", "unset", "none", "—", "{}", "[]", "**required**"}
UNITS = {"KiB": 1024, "MiB": 1024**2}


def _documented_defaults() -> list[tuple[str, str, str]]:
    """Rows of the docs' tables whose second column is headed `default`."""
    rows = []
    for doc in DOCS:
        header = ""
        for line in doc.read_text().splitlines():
            if not line.startswith("|"):
                header = ""
            elif not header:
                header = line
            m = ROW.match(line)
            cells = [c.strip().lower() for c in header.split("|")]
            if m and len(cells) > 2 and cells[2] == "default" and _own_field(m.group(1)):
                rows.append((m.group(1), m.group(2), doc.name))
    return rows


def _own_field(name: str) -> FieldInfo | None:
    """The field of the service whose prefix `name` carries (None: another service's URL)."""
    prefix = next((p for p in PREFIXES if name.startswith(p)), None)
    if prefix is None:
        return None
    return _settings(PREFIXES[prefix]).model_fields.get(name[len(prefix) :].lower())


def _as_written(cell: str) -> str:
    """The value a docs table gives: the first `code` span, else the cell; quotes dropped."""
    code = re.match(r"`([^`]*)`", cell)
    value = code.group(1) if code else cell
    value = value.strip().strip('"')
    if value.startswith("(") or value.lower().startswith(("empty", "unset")):
        value = value.strip("()").split(" ")[0].lower()
    return value


def _matches(written: str, default: object) -> bool:
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if default is None or default in ("", {}, []):
        return written.lower() in EMPTY
    if isinstance(default, bool):
        return written.lower() == str(default).lower()
    if isinstance(default, int | float):
        number = re.fullmatch(r"(-?[0-9_.]+)\s*(KiB|MiB)?", written.replace(",", ""))
        return bool(number) and float(number[1]) * UNITS.get(number[2] or "", 1) == default
    return written == str(default)


@pytest.mark.parametrize(("name", "cell", "doc"), _documented_defaults())
def test_documented_defaults_are_the_real_ones(name, cell, doc):
    field = _own_field(name)
    assert field is not None
    default = field.default_factory() if field.default_factory else field.default
    if field.is_required():
        default = None
    assert _matches(_as_written(cell), default), (
        f"{doc}: {name} documented as {cell!r}, is {default!r}"
    )
