"""Shared fixtures: generated speech with seeded noise, and a DeepFilterNet server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.preprocessor.app import build_app
from services.preprocessor.settings import Settings
from testkit.audio_quality import RATE, TEXT, Speech, deterministic_speech
from testkit.helpers import add_noise, run_server


@pytest.fixture(scope="package")
def speech() -> Speech:
    """Piper speech at 16 kHz plus white noise (seed 0) at 5 dB SNR."""
    clean = deterministic_speech(TEXT, RATE)
    return Speech(TEXT, clean, add_noise(clean, 5.0, seed=0), RATE)


@pytest.fixture(scope="package")
def dfn_url() -> Iterator[str]:
    """A real uvicorn serving the DeepFilterNet engine."""
    with run_server(build_app(Settings(engine="deepfilternet"))) as base:
        yield base
