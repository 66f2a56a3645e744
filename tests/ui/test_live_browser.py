"""The live mode in headless Chromium: a fake microphone speaks, the page holds a live session."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.testing_ui.app import build_app
from services.testing_ui.settings import Settings
from testkit.helpers import run_server, synth_speech, wav_bytes
from testkit.ui import CHROMIUM_ARGS, FAKE_MIC_ARGS, LIVE_KEY, save_screenshot, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.browser]
RATE = 16_000


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the fake microphone says: a question, a pause, then words over the reply."""
    question, _ = synth_speech("What is the weather like in Paris today?", RATE)
    interruption, _ = synth_speech("Wait, tell me about tomorrow instead.", RATE)
    audio = np.concatenate([_silence(1.0), question, _silence(3.0), interruption, _silence(4.0)])
    path = tmp_path_factory.mktemp("mic") / "speech.wav"
    # Chromium's fake capture reads a PCM16 WAV file and resamples it to the device's rate.
    path.write_bytes(wav_bytes(audio, RATE))
    return path


@pytest.fixture(scope="module")
def browser(microphone: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    mic = f"--use-file-for-fake-audio-capture={microphone}%noloop"
    args = [*CHROMIUM_ARGS, *FAKE_MIC_ARGS, mic]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        yield b
        b.close()


@pytest.fixture(scope="module")
def ui(live_orchestrator: str) -> Iterator[str]:
    """The real testing UI relaying to the real orchestrator (fake stages)."""
    app = build_app(Settings(orchestrator_url=live_orchestrator, orchestrator_api_key=LIVE_KEY))
    with run_server(app) as url:
        yield url


def _text(page: Any, elem_id: str) -> str:
    return str(page.locator(f"#{elem_id}").inner_text())


def start_live(page: Any) -> None:
    """Open the live accordion and press Start once live.js has attached to the block."""
    page.get_by_text("Live mode (streaming microphone)").click()
    page.locator('#live[data-attached="yes"]').wait_for(timeout=15_000)
    page.locator("#live-start").click()


def _rows(page: Any) -> list[list[str]]:
    rows = page.locator("#live-turns tr").all()
    return [[c.strip() for c in r.locator("td").all_inner_texts()] for r in rows]


def test_live_turn_from_the_microphone_with_barge_in(
    browser: Any, ui: str, stage_fakes: dict[str, Any]
) -> None:
    # A long spoken reply, so the second utterance lands while it is playing.
    stage_fakes["primary"].knobs.tts_seconds = 8.0
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    try:
        page.goto(ui + "/")
        wait_for(
            lambda: page.locator("#pipeline input").input_value() == "voice",
            timeout=20,
            what="the pipeline list",
        )
        start_live(page)
        wait_for(lambda: _text(page, "live-state") == "live: speak", timeout=15, what="live")
        first = wait_for(
            lambda: (r := _rows(page)) and r[0][1] == "what is the weather like" and r[0],
            timeout=40,
            what="the first turn's transcript",
        )
        assert first[0] == "1"
        wait_for(
            lambda: int(_text(page, "live-chunks")) > 0, timeout=30, what="reply audio scheduled"
        )
        # The second utterance interrupts the reply: playback cut, truncate sent, no error.
        rows = wait_for(
            lambda: (r := _rows(page)) and len(r) >= 2 and r[1][5] == "completed" and r,
            timeout=60,
            what="the second turn answered",
        )
        # All 8 s were sent at once (fast fakes): the server completed the response, the page
        # cut its playback and the server kept what was played.
        cut = re.fullmatch(r"completed · cut at (\d+) ms · server kept (\d+) ms", rows[0][5])
        assert cut is not None, rows
        # It was cut during the pause-and-speak window, not at its start or its end.
        assert 1000 < int(cut.group(1)) == int(cut.group(2)) < 6000
        assert rows[0][2] == "[primary] seen: what is the weather like"
        assert _text(page, "live-truncated") == "1"
        assert rows[1][1] == "what is the weather like"
        assert rows[1][3].endswith(" ms") and rows[1][4].endswith(")")
        assert int(_text(page, "live-sent")) > 100  # 40 ms appends for several seconds
        assert _text(page, "live-error") == "", _text(page, "live-error")
        assert "Hz → 24 kHz" in _text(page, "live-path")
        save_screenshot(page, "testing-ui-live")
        page.locator("#live-stop").click()
        wait_for(lambda: _text(page, "live-state") == "idle", timeout=10, what="stopped")
    finally:
        stage_fakes["primary"].knobs.tts_seconds = 0.1
        page.close()


def test_live_mode_behind_the_login(browser: Any, live_orchestrator: str) -> None:
    """With UI_PASSWORD set, the page's live session works once logged in (cookie on the socket)."""
    settings = Settings(
        orchestrator_url=live_orchestrator,
        orchestrator_api_key=LIVE_KEY,
        username="tester",
        password="s3cret",
    )
    with run_server(build_app(settings)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            page.goto(url + "/")
            page.get_by_label("username").fill("tester")
            page.get_by_label("password").fill("s3cret")
            page.get_by_role("button", name="Login").click()
            start_live(page)
            wait_for(
                lambda: int(_text(page, "live-sent")) > 10,
                timeout=20,
                what="audio appended through the relay",
            )
            assert _text(page, "live-state") == "live: speak"
            assert _text(page, "live-error") == ""
        finally:
            page.close()
