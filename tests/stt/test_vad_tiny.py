"""The English-only tiny.en model with Silero VAD on: noise gives no words, speech still does."""

from __future__ import annotations

import logging

import httpx
import numpy as np
import pytest

from services.stt.app import build_app
from services.stt.settings import Settings
from testkit.helpers import WHISPER_TINY_EN, add_noise, run_server, synth_speech, wav_bytes, wer

pytestmark = pytest.mark.slow

RATE = 16000
SENTENCE = "Please close the window before you leave."


@pytest.fixture(scope="module")
def base_url():
    settings = Settings(model=str(WHISPER_TINY_EN), vad_filter=True, beam_size=1, log_json=False)
    with run_server(build_app(settings), timeout=120) as base:
        yield base


def _post(base: str, samples: np.ndarray, **fields: str) -> httpx.Response:
    return httpx.post(
        base + "/transcribe",
        files={"file": ("a.wav", wav_bytes(samples, RATE), "audio/wav")},
        data=fields,
        timeout=120,
    )


def test_noise_without_speech_gives_no_words(base_url: str):
    # Loud enough to pass the silence gate, so only the VAD can keep Whisper from guessing.
    noise = np.random.default_rng(1).normal(0, 0.02, RATE * 3).astype(np.float32)
    body = _post(base_url, noise).json()
    assert body["text"] == "" and body["segments"] == []


def test_vad_cuts_the_pauses_and_keeps_the_speech(base_url: str, caplog: pytest.LogCaptureFixture):
    speech, _ = synth_speech(SENTENCE, RATE)
    pad = np.zeros(2 * RATE, dtype=np.float32)
    noisy = add_noise(np.concatenate([pad, speech, pad]), snr_db=20, seed=2)
    with caplog.at_level(logging.INFO, logger="faster_whisper"):
        r = _post(base_url, noisy)
    assert r.status_code == 200 and wer(SENTENCE, r.json()["text"]) <= 0.15, r.text
    # The server runs in this process, so faster-whisper's own log shows the VAD really ran.
    removed = [m for m in caplog.messages if m.startswith("VAD filter removed")]
    assert removed, caplog.messages
    # Timestamps are mapped back to the original clip: speech starts after the 2 s pause.
    assert r.json()["segments"][0]["start"] >= 1.5


def test_english_only_model_refuses_other_languages(base_url: str):
    r = _post(base_url, np.zeros(RATE, dtype=np.float32) + 0.1, language="de")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_language"
    models = httpx.get(base_url + "/v1/models").json()
    assert models["data"][0]["id"] == "whisper-tiny.en"
