"""The SNR gate of the denoise stage: noisy-enough speech goes to stt raw, over real HTTP."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from testkit.audio_quality import RATE, TEXT, deterministic_speech
from testkit.fakes.stages import tiny_wav
from testkit.helpers import wav_bytes
from testkit.orchestrator import all_urls, config_doc, orchestrator, stage, write_config

pytestmark = pytest.mark.slow  # starts real uvicorn servers


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    """Piper speech at 16 kHz with 0.5 s of silence before and after (a microphone's pauses)."""
    pad = np.zeros(RATE // 2, np.float32)
    return np.concatenate([pad, deterministic_speech(TEXT, RATE), pad])


def _noisy(clean: np.ndarray, snr_db: float) -> bytes:
    """White noise over the whole clip at `snr_db` against the speech's power."""
    speech = clean[np.abs(clean) > 0]
    noise = np.random.default_rng(7).standard_normal(len(clean)).astype(np.float32)
    p_speech = float(np.mean(speech.astype(np.float64) ** 2)) * len(speech) / len(clean)
    noise *= np.sqrt(p_speech / 10 ** (snr_db / 10))
    return wav_bytes((clean + noise).astype(np.float32), RATE)


def _voice(base: str, audio: bytes) -> dict:
    r = httpx.post(base + "/v1/voice", files={"file": ("a.wav", audio, "audio/wav")}, timeout=60)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_gate_denoises_above_the_threshold_and_skips_below(fakes, tmp_path, clean):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    denoiser = fakes["third"].knobs
    with orchestrator(path, denoise_min_snr_db=8.0) as base:
        body = _voice(base, _noisy(clean, 15.0))
        den = stage(body, "denoise")
        assert den["status"] == "ok" and den["note"].startswith("estimated SNR 1"), den
        assert denoiser.calls["denoise"] == 1

        body = _voice(base, _noisy(clean, 2.0))
        den = stage(body, "denoise")
        assert den["status"] == "skipped", den
        assert "below ORCH_DENOISE_MIN_SNR_DB 8" in den["note"], den
        assert denoiser.calls["denoise"] == 1  # the preprocessor was not called
        assert stage(body, "stt")["status"] == "ok"

        # No pause to measure the noise in (a tone): no estimate, so no denoising either.
        den = stage(_voice(base, tiny_wav()), "denoise")
        assert den["status"] == "skipped" and den["note"].startswith("no SNR estimate"), den
        assert denoiser.calls["denoise"] == 1


def test_gate_unset_denoises_everything(fakes, tmp_path, clean):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, denoise_min_snr_db=None) as base:
        den = stage(_voice(base, _noisy(clean, 2.0)), "denoise")
        assert den["status"] == "ok" and "note" not in den, den
        assert fakes["third"].knobs.calls["denoise"] == 1


def test_undecodable_audio_is_a_4xx_with_the_gate_on(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, denoise_min_snr_db=8.0) as base:
        r = httpx.post(
            base + "/v1/voice",
            files={"file": ("a.wav", b"RIFF not really a wav", "audio/wav")},
            timeout=30,
        )
        assert r.status_code == 415, r.text
        assert r.json()["error"]["code"] == "unsupported_audio"


def test_default_gate_denoises_measurable_noise_at_any_snr(fakes, tmp_path, clean):
    from services.orchestrator.settings import Settings

    default = Settings.model_fields["denoise_min_snr_db"].default
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, denoise_min_snr_db=default) as base:
        den = stage(_voice(base, _noisy(clean, 0.0)), "denoise")
        assert den["status"] == "ok" and den["note"].startswith("estimated SNR"), den
        den = stage(_voice(base, tiny_wav()), "denoise")
        assert den["status"] == "skipped" and den["note"].startswith("no SNR estimate"), den


def test_empty_setting_switches_the_gate_off(monkeypatch):
    from services.orchestrator.settings import Settings

    monkeypatch.setenv("ORCH_DENOISE_MIN_SNR_DB", "")
    assert Settings().denoise_min_snr_db is None
    monkeypatch.setenv("ORCH_DENOISE_MIN_SNR_DB", "3.5")
    assert Settings().denoise_min_snr_db == 3.5
