"""MetricGAN+ loaded from the hub checkpoint layout and run through the service's HTTP API.

No hub here: the test writes the two files speechbrain/metricgan-plus-voicebank publishes
(hyperparams.yaml in HyperPyYAML, enhance_model.ckpt = the generator's state_dict) with the
real shapes and key names of speechbrain's EnhancementGenerator (2-layer BiLSTM 257→200 per
direction, Linear 400→300, Linear 300→257, a learnable-sigmoid slope per bin), built here
with plain torch modules, not with the backend's own classes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from services.kit.audio import decode_audio, from_pcm16, to_pcm16
from services.preprocessor.app import build_app
from services.preprocessor.settings import Settings
from testkit.audio_quality import Speech, si_sdr
from testkit.helpers import run_server, wav_bytes

pytestmark = pytest.mark.slow
LOWPASS_BIN = 128  # 128 * 16000 / 512 = 4 kHz

# The hub's form (speechbrain/metricgan-plus-voicebank): HyperPyYAML tags, the entries
# SpectralMaskEnhancement needs, the generator loaded from <source>/enhance_model.ckpt.
HPARAMS = """\
# Model: MetricGAN+ (spectral mask), speechbrain SpectralMaskEnhancement
sample_rate: 16000
n_fft: 512
win_length: 32
hop_length: 16
window_fn: !name:torch.hamming_window

compute_stft: !new:speechbrain.processing.features.STFT
    sample_rate: !ref <sample_rate>
    n_fft: !ref <n_fft>
    win_length: !ref <win_length>
    hop_length: !ref <hop_length>
    window_fn: !ref <window_fn>

compute_istft: !new:speechbrain.processing.features.ISTFT
    sample_rate: !ref <sample_rate>
    n_fft: !ref <n_fft>
    win_length: !ref <win_length>
    hop_length: !ref <hop_length>
    window_fn: !ref <window_fn>

spectral_magnitude: !name:speechbrain.processing.features.spectral_magnitude
    power: 0.5

resynth: !name:speechbrain.processing.signal_processing.resynthesize
    stft: !ref <compute_stft>
    istft: !ref <compute_istft>

enhance_model: !new:speechbrain.lobes.models.MetricGAN.EnhancementGenerator

modules:
    enhance_model: !ref <enhance_model>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        enhance_model: !ref <enhance_model>
"""


def _state_dict(kind: str, seed: int = 0) -> dict[str, object]:
    """EnhancementGenerator's parameters: random, an all-pass mask, or a low-pass mask.

    With linear2's weights zeroed the mask of bin k is 1.2 * sigmoid(slope_k * bias_k): exactly 1
    for bias ln 5 (slope 1) and ~1e-13 for bias -30. "lowpass" passes bins below 4 kHz only.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    lstm = nn.LSTM(257, 200, num_layers=2, bidirectional=True, batch_first=True)
    linear1, linear2 = nn.Linear(400, 300), nn.Linear(300, 257)
    slope = torch.ones(257)
    if kind != "random":
        with torch.no_grad():
            linear2.weight.zero_()
            linear2.bias.fill_(math.log(5.0))
            if kind == "lowpass":
                linear2.bias[LOWPASS_BIN:] = -30.0
    state: dict[str, object] = {f"blstm.rnn.{k}": v for k, v in lstm.state_dict().items()}
    state.update({f"linear1.{k}": v for k, v in linear1.state_dict().items()})
    state.update({f"linear2.{k}": v for k, v in linear2.state_dict().items()})
    state["Learnable_sigmoid.slope"] = slope
    return state


def _model_dir(root: Path, kind: str) -> Path:
    import torch

    directory = root / f"metricgan-{kind}"
    directory.mkdir()
    (directory / "hyperparams.yaml").write_text(HPARAMS)
    torch.save(_state_dict(kind), directory / "enhance_model.ckpt")
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints in the hub layout: random weights, an all-pass and a low-pass mask."""
    root = tmp_path_factory.mktemp("metricgan")
    return {kind: _model_dir(root, kind) for kind in ("random", "identity", "lowpass")}


@pytest.fixture(scope="module")
def urls(models: dict[str, Path]) -> Iterator[dict[str, str]]:
    """One real uvicorn per checkpoint, each loading it through DENOISE_METRICGAN_SOURCE."""
    with contextlib.ExitStack() as stack:
        yield {
            kind: stack.enter_context(
                run_server(build_app(Settings(engine="metricgan", metricgan_source=str(path))))
            )
            for kind, path in models.items()
        }


def _denoise(url: str, audio: np.ndarray, rate: int) -> np.ndarray:
    r = httpx.post(url + "/denoise", content=wav_bytes(audio, rate), timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["x-denoise-engine"] == "metricgan"
    out = decode_audio(r.content)
    assert out.sample_rate == rate
    return out.samples


def test_ready_after_loading_the_checkpoint(urls: dict[str, str], models: dict[str, Path]) -> None:
    body = httpx.get(urls["random"] + "/health/ready").json()
    assert body["status"] == "ready" and body["engine"] == "metricgan"
    assert body["model"] == str(models["random"]) and body["realtime"] is False


def test_all_pass_mask_gives_back_the_input(urls: dict[str, str], speech: Speech) -> None:
    # Mask 1 everywhere: STFT → |.| → log1p → expm1 → noisy phase → ISTFT must rebuild the
    # input exactly (peak-normalised, as speechbrain's resynthesize does by default).
    noisy = from_pcm16(to_pcm16(speech.noisy[: speech.rate * 2]))  # what the service receives
    out = _denoise(urls["identity"], noisy, speech.rate)
    assert len(out) == len(noisy)
    expected = noisy / np.max(np.abs(noisy))
    assert np.max(np.abs(out - expected)) < 2e-4  # PCM16 steps: output is rounded to 16 bits
    # At 48 kHz the input goes through 48k → 16k → 48k around the same model.
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(48_000) / 48_000)).astype(np.float32)
    out48 = _denoise(urls["identity"], tone, 48_000)
    assert len(out48) == len(tone)
    assert si_sdr(tone, out48) > 30


def test_the_mask_is_applied_per_frequency_bin(urls: dict[str, str]) -> None:
    # A constant mask is invisible after peak normalisation; a low-pass one is not.
    rate = 16_000
    t = np.arange(rate) / rate
    low, high = np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 6000 * t)
    two_tones = (0.3 * low + 0.3 * high).astype(np.float32)
    out = _denoise(urls["lowpass"], two_tones, rate)
    spectrum = np.abs(np.fft.rfft(out))  # 1 Hz per bin over one second
    assert spectrum[6000] < 1e-3 * spectrum[300], (spectrum[6000], spectrum[300])
    assert spectrum[300] == np.max(spectrum)


def test_random_checkpoint_denoises_every_endpoint(urls: dict[str, str], speech: Speech) -> None:
    clip = speech.noisy[: speech.rate * 2]
    out = _denoise(urls["random"], clip, speech.rate)
    assert len(out) == len(clip) and np.all(np.isfinite(out))
    assert np.max(np.abs(out)) > 0.5  # peak-normalised, not silence
    assert not np.allclose(out, clip / np.max(np.abs(clip)), atol=1e-2)  # the mask did act
    # Deterministic: the same clip gives the same output (no state carried between requests).
    np.testing.assert_array_equal(_denoise(urls["random"], clip, speech.rate), out)
    # /denoise/streaming takes the whole body, so MetricGAN+ (not a streaming model) serves it.
    r = httpx.post(
        urls["random"] + "/denoise/streaming?sample_rate=16000", content=to_pcm16(clip), timeout=60
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(from_pcm16(r.content), out, atol=1 / 32768)


def test_missing_weights_are_a_clear_not_ready(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "hyperparams.yaml").write_text(HPARAMS)
    settings = Settings(engine="metricgan", metricgan_source=str(empty))
    with run_server(build_app(settings), ready_path=None) as url:
        body = _wait_for_reason(url)
        assert body["status"] == "not_ready" and body["engine"] == "metricgan"
        assert "enhance_model.ckpt" in str(body["reason"]) and str(empty) in str(body["reason"])
        r = httpx.post(url + "/denoise", content=wav_bytes(np.zeros(1600, np.float32), 16000))
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
    # A hub id with nothing in DENOISE_METRICGAN_SAVEDIR and no hub: says where to put them.
    settings = Settings(
        engine="metricgan",
        metricgan_source="speechbrain/metricgan-plus-voicebank",
        metricgan_savedir=str(tmp_path / "cache"),
    )
    with run_server(build_app(settings), ready_path=None) as url:
        reason = str(_wait_for_reason(url)["reason"])
        assert "MetricGAN+ weights not found" in reason and "DENOISE_METRICGAN_SAVEDIR" in reason


def test_wrong_checkpoint_is_refused(tmp_path: Path) -> None:
    import torch

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "hyperparams.yaml").write_text(HPARAMS)
    state = _state_dict("random")
    state["linear1.weight"] = torch.zeros(300, 256)  # another model's shape
    torch.save(state, bad / "enhance_model.ckpt")
    settings = Settings(engine="metricgan", metricgan_source=str(bad))
    with run_server(build_app(settings), ready_path=None) as url:
        reason = str(_wait_for_reason(url)["reason"])
        assert "not a MetricGAN+ generator checkpoint" in reason and "linear1.weight" in reason


def _wait_for_reason(url: str) -> dict[str, object]:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body: dict[str, object] = httpx.get(url + "/health/ready").json()
        if body.get("reason") not in ("starting", "loading"):
            return body
        time.sleep(0.05)
    raise AssertionError("readiness never settled")
