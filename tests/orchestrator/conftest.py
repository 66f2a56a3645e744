"""Fixtures: fake stage services on real uvicorn (helpers: testkit.orchestrator)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

from testkit.fakes.stages import Knobs, fake_stage_app
from testkit.helpers import run_server, synth_speech
from testkit.orchestrator import Fake
from testkit.realtime import SPEECH_RATE


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Fake]]:
    """Three fake stage services: primary, backup, third."""
    with contextlib.ExitStack() as stack:
        out = {}
        for name in ("primary", "backup", "third"):
            knobs = Knobs(name=name)
            url = stack.enter_context(run_server(fake_stage_app(knobs)))
            out[name] = Fake(knobs, url)
        yield out


@pytest.fixture(autouse=True)
def _reset_fakes(request: pytest.FixtureRequest) -> None:
    if "fakes" in request.fixturenames:
        for fake in request.getfixturevalue("fakes").values():
            fake.knobs.reset()


@pytest.fixture(scope="module")
def question() -> np.ndarray:
    """A spoken question at 24 kHz (Piper, PyPI voice), for the realtime tests."""
    audio, _ = synth_speech("What is the weather like in Paris today?", SPEECH_RATE)
    return audio
