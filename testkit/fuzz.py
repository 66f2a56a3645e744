"""Bad-input robustness: every service served by real uvicorn with cheap but real engines.

`serve(name)` starts one service (and whatever it leans on) and yields its base URL.
Limits are set low so oversize cases are cheap to send; engines are the smallest real ones
the repository ships or builds (whisper-tiny.en, a tiny random T5, the Piper voice, a tiny
random Bark) and fake stage services for the orchestrator's pipeline.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from testkit.helpers import PIPER_VOICE, WHISPER_TINY_EN, run_server

# Small on purpose: "too large" cases then cost kilobytes, not the 25 MB default.
MAX_BODY = 300_000
SERVICES = ("stt", "llm", "tts_piper", "tts_bark", "guardrails", "preprocessor", "orchestrator")


@contextlib.contextmanager
def _stt(tmp: Path) -> Iterator[str]:
    from services.stt.app import build_app
    from services.stt.settings import Settings

    settings = Settings(
        model=str(WHISPER_TINY_EN),
        beam_size=1,
        max_upload_bytes=MAX_BODY,
        max_body_bytes=MAX_BODY,
        max_duration_s=5.0,
        log_json=False,
    )
    with run_server(build_app(settings), timeout=180) as base:
        yield base


def _llm(tmp: Path) -> contextlib.AbstractContextManager[str]:
    from services.llm.app import build_app
    from services.llm.settings import Settings
    from testkit.models.tiny_t5 import build_t5

    model = build_t5(tmp / "flan-t5-tiny")
    settings = Settings(
        model=str(model),
        max_new_tokens_limit=16,
        default_max_tokens=4,
        max_input_tokens=128,
        max_body_bytes=MAX_BODY,
        log_json=False,
    )
    return run_server(build_app(settings), timeout=180)


def _piper_settings() -> Any:
    from services.tts_piper.settings import Settings

    return Settings(
        voice=str(PIPER_VOICE),
        download=False,
        max_chars=200,
        max_body_bytes=MAX_BODY,
        log_json=False,
    )


@contextlib.contextmanager
def _tts_piper(tmp: Path) -> Iterator[str]:
    from services.tts_piper.app import build_app

    with run_server(build_app(_piper_settings())) as base:
        yield base


@contextlib.contextmanager
def _tts_bark(tmp: Path) -> Iterator[str]:
    from services.tts_bark.app import build_app
    from services.tts_bark.settings import Settings
    from testkit.models.tiny_bark import build_tiny_bark

    model = build_tiny_bark(tmp / "tiny-bark", presets={"v2/en_speaker_0": True})
    settings = Settings(
        model=str(model),
        semantic_max_new_tokens=8,
        max_chars=200,
        max_body_bytes=MAX_BODY,
        log_json=False,
    )
    with run_server(build_app(settings), timeout=180) as base:
        yield base


@contextlib.contextmanager
def _guardrails(tmp: Path) -> Iterator[str]:
    from services.guardrails.app import build_app
    from testkit.guardrails import make_settings

    with run_server(build_app(make_settings(max_body_bytes=MAX_BODY))) as base:
        yield base


@contextlib.contextmanager
def _preprocessor(tmp: Path) -> Iterator[str]:
    from services.preprocessor.app import build_app
    from services.preprocessor.settings import Settings

    # Passthrough: validation, decoding and framing are engine-independent and real.
    settings = Settings(
        engine="passthrough", max_duration_s=5.0, max_body_bytes=MAX_BODY, log_json=False
    )
    with run_server(build_app(settings)) as base:
        yield base


@contextlib.contextmanager
def _orchestrator(tmp: Path) -> Iterator[str]:
    from testkit.fakes.stages import Knobs, fake_stage_app
    from testkit.orchestrator import Fake, all_urls, config_doc, orchestrator, write_config

    with contextlib.ExitStack() as stack:
        fakes = {}
        for name in ("primary", "backup", "third"):
            knobs = Knobs(name=name)
            fakes[name] = Fake(knobs, stack.enter_context(run_server(fake_stage_app(knobs))))
        doc = config_doc(all_urls(fakes))
        path = write_config(tmp / "pipelines.yaml", doc)
        with orchestrator(path, max_body_bytes=MAX_BODY) as base:
            yield base


_BUILDERS = {
    "stt": _stt,
    "llm": _llm,
    "tts_piper": _tts_piper,
    "tts_bark": _tts_bark,
    "guardrails": _guardrails,
    "preprocessor": _preprocessor,
    "orchestrator": _orchestrator,
}


@contextlib.contextmanager
def serve(name: str) -> Iterator[str]:
    """Run service `name` with cheap real engines on a free port; yield its base URL."""
    with (
        tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as tmp,
        _BUILDERS[name](Path(tmp)) as base,
    ):
        yield base


def assert_healthy(base: str) -> None:
    """The service still answers liveness and readiness after the abuse."""
    assert httpx.get(base + "/health/live", timeout=10).status_code == 200
    r = httpx.get(base + "/health/ready", timeout=10)
    assert r.status_code == 200, r.text
