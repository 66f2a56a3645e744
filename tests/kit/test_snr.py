"""The SNR estimate (Silero speech vs non-speech windows) against speech mixed at a known SNR."""

from __future__ import annotations

import numpy as np
import pytest

from services.kit.snr import estimate_snr_db
from services.kit.vad import SileroDetector
from testkit.audio_quality import RATE, TEXT, deterministic_speech


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    """Three sentences of Piper speech at 16 kHz, no noise."""
    return deterministic_speech(TEXT, RATE)


def _mixed(clean: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """0.5 s pads around the speech, white noise at `snr_db` against the speech's own power."""
    pad = np.zeros(RATE // 2, np.float32)
    padded = np.concatenate([pad, clean, pad])
    noise = np.random.default_rng(seed).standard_normal(len(padded)).astype(np.float32)
    p_speech = float(np.mean(clean.astype(np.float64) ** 2))
    noise *= np.sqrt(
        p_speech / (float(np.mean(noise.astype(np.float64) ** 2)) * 10 ** (snr_db / 10))
    )
    out: np.ndarray = (padded + noise).astype(np.float32)
    return out


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 5.0, 0.0])
def test_estimate_is_within_3_db_of_the_mixed_snr(clean: np.ndarray, snr_db: float) -> None:
    est = estimate_snr_db(_mixed(clean, snr_db), SileroDetector())
    assert est is not None
    assert abs(est - snr_db) < 3.0, est


def test_estimates_order_like_the_snrs(clean: np.ndarray) -> None:
    ests = [estimate_snr_db(_mixed(clean, s), SileroDetector()) for s in (15.0, 10.0, 5.0)]
    assert all(e is not None for e in ests)
    assert ests == sorted(ests, key=lambda e: -float(e or 0)), ests


def test_no_estimate_without_speech_or_for_a_clip_too_short() -> None:
    noise = np.random.default_rng(0).standard_normal(RATE * 2).astype(np.float32) * 0.05
    assert estimate_snr_db(noise, SileroDetector()) is None
    assert estimate_snr_db(np.zeros(1000, np.float32), SileroDetector()) is None
