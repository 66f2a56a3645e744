"""Orchestrators built from a YAML document, pointing at fake stage services on real uvicorn."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from services.orchestrator.app import build_app
from services.orchestrator.balancer import Resolver
from services.orchestrator.settings import Settings
from testkit.fakes.stages import Knobs
from testkit.helpers import free_port, run_server


class Fake:
    """A running fake stage service."""

    def __init__(self, knobs: Knobs, url: str) -> None:
        self.knobs = knobs
        self.url = url


def ask(base: str, text: str, **extra: object) -> httpx.Response:
    """POST a transcript to /mcp/transcript with any extra fields."""
    return httpx.post(base + "/mcp/transcript", json={"transcript": text, **extra}, timeout=30)


def stage(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The record of one stage in a run's JSON."""
    return next(s for s in body["stages"] if s["stage"] == name)


def dead_url() -> str:
    """A URL nobody listens on: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"


def config_doc(
    urls: dict[str, str],
    *,
    llm: tuple[str, ...] = ("llm-a", "llm-b"),
    tts: tuple[str, ...] = ("tts-a", "tts-b"),
    guard: tuple[str, ...] = ("guard",),
    stt: tuple[str, ...] = ("stt-a", "stt-b"),
    denoise_optional: bool = True,
    timeout_s: float = 2.0,
    active: str = "voice",
    prompt_version: str = "test-1",
) -> dict[str, Any]:
    """A pipeline document whose providers point at the given URLs (key = provider name)."""
    caps = {"denoise": "denoise", "stt": "stt", "guard": "guardrails", "llm": "llm", "tts": "tts"}
    providers = {
        name: {"capability": caps[name.split("-")[0]], "url": url, "timeout_s": timeout_s}
        for name, url in urls.items()
    }
    den = [{"stage": "denoise", "providers": ["denoise"], "optional": denoise_optional}]
    text = [
        {"stage": "guard_input", "providers": list(guard)},
        {"stage": "llm", "providers": list(llm), "options": {"temperature": 0.2}},
        {"stage": "guard_output", "providers": list(guard)},
    ]
    return {
        "active_pipeline": active,
        "system_prompt": {"version": prompt_version, "text": "You are a test assistant."},
        "providers": providers,
        "pipelines": {
            "voice": [
                *den,
                {"stage": "stt", "providers": list(stt)},
                *text,
                {"stage": "tts", "providers": list(tts), "options": {"voice": "nova"}},
            ],
            "text": text,
            "transcribe": [{"stage": "stt", "providers": list(stt)}],
            "speak": [{"stage": "tts", "providers": list(tts)}],
        },
    }


def all_urls(fakes: dict[str, Fake], **override: str) -> dict[str, str]:
    """Every provider on a fake: `-a` on primary, `-b` on backup, shared ones on third."""
    p, b, t = fakes["primary"].url, fakes["backup"].url, fakes["third"].url
    urls = {
        "denoise": t,
        "stt-a": p,
        "stt-b": b,
        "guard": t,
        "llm-a": p,
        "llm-b": b,
        "tts-a": p,
        "tts-b": b,
    }
    urls.update(override)
    return urls


def write_config(path: Path, doc: dict[str, Any]) -> Path:
    """Write the YAML document."""
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@contextlib.contextmanager
def orchestrator(path: Path, resolver: Resolver | None = None, **settings: Any) -> Iterator[str]:
    """Run an orchestrator on `path` with real uvicorn; yield its base URL.

    `resolver` decides how provider hosts resolve (DNS by default); `settings` override the
    test defaults (keyless, no Redis, no hot reload, every stage switched on).
    """
    defaults: dict[str, Any] = {
        "pipelines_path": str(path),
        "reload_poll_s": 0,
        "admin_open": True,
        "log_json": False,
        "api_keys": "",
        "admin_api_keys": "",
        "redis_url": "",
        "enable_preprocessing": True,
        "enable_guardrails": True,
        # The fakes' test audio is a tone, not speech: the SNR gate would skip every denoise
        # stage. tests/orchestrator/test_denoise_gate.py switches it on with real speech.
        "denoise_min_snr_db": None,
    }
    defaults.update(settings)
    with run_server(build_app(Settings(**defaults), resolver=resolver)) as base:
        yield base
