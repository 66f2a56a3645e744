"""Benchmark the audio-preprocessor engines: real-time factor, SI-SDR and Whisper WER.

Run: python benchmarks/bench_preprocessor.py [--quick]
Writes docs/bench/preprocessor.md.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import arguments, header, write_report  # noqa: E402
from services.preprocessor.backends import load_engine  # noqa: E402
from services.preprocessor.engine import DenoiseEngine, denoise_clip  # noqa: E402
from services.preprocessor.settings import Settings  # noqa: E402
from testkit.audio_quality import RATE, TEXT, deterministic_speech, si_sdr  # noqa: E402
from testkit.helpers import WHISPER_BASE, add_noise, wer  # noqa: E402


def rtf(engine: DenoiseEngine, clip: np.ndarray, rate: int, repeats: int) -> float:
    """Best-of-N wall time over audio time for one whole-clip denoise."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        denoise_clip(engine, clip, rate)
        best = min(best, time.perf_counter() - t0)
    return best / (len(clip) / rate)


def main() -> None:
    """Measure and write the markdown section."""
    args = arguments(
        __doc__, "preprocessor", "one noise seed, one repeat (<60 s idle)"
    ).parse_args()
    takes = 1 if args.quick else 3
    repeats = 1 if args.quick else 3

    from faster_whisper import WhisperModel

    whisper = WhisperModel(str(WHISPER_BASE), device="cpu", compute_type="int8", cpu_threads=2)

    def transcribe(x: np.ndarray) -> str:
        segs, _ = whisper.transcribe(
            x, language="en", beam_size=1, temperature=0.0, condition_on_previous_text=False
        )
        return " ".join(s.text for s in segs)

    engines = {
        "deepfilternet": load_engine(Settings(engine="deepfilternet")),
        "deepfilternet (no atten. limit)": load_engine(
            Settings(engine="deepfilternet", atten_limit_db=100.0)
        ),
        "rnnoise": load_engine(Settings(engine="rnnoise")),
        "passthrough": load_engine(Settings(engine="passthrough")),
    }
    # One deterministic take; each "take" adds a differently seeded noise, which averages
    # out one lucky or unlucky noise draw.
    cleans = [deterministic_speech(TEXT, RATE)] * takes
    seconds = sum(len(c) for c in cleans) / RATE

    rtf_rows = []
    for name, eng in engines.items():
        for rate in (16000, 48000):
            from services.kit.audio import resample

            clip = resample(add_noise(cleans[0], 5.0, 0), RATE, rate)
            rtf_rows.append((name, rate, rtf(eng, clip, rate, repeats)))

    q_rows = []
    for snr in (10.0, 5.0, 0.0):
        noisy = [add_noise(c, snr, seed=i) for i, c in enumerate(cleans)]
        base_sdr = float(np.mean([si_sdr(c, n) for c, n in zip(cleans, noisy, strict=True)]))
        base_wer = float(np.mean([wer(TEXT, transcribe(n)) for n in noisy]))
        for name, eng in engines.items():
            if name == "passthrough":
                continue
            outs = [denoise_clip(eng, n, RATE) for n in noisy]
            sdr = float(np.mean([si_sdr(c, o) for c, o in zip(cleans, outs, strict=True)]))
            w = float(np.mean([wer(TEXT, transcribe(o)) for o in outs]))
            q_rows.append((snr, name, base_sdr, sdr, base_wer, w))
    clean_wer = float(np.mean([wer(TEXT, transcribe(c)) for c in cleans]))
    for eng in engines.values():
        eng.close()

    cmd = "python benchmarks/bench_preprocessor.py" + (" --quick" if args.quick else "")
    lines = [
        *header("Audio preprocessor", f"`{cmd}`"),
        f"- Speech: Piper en_US joe (sampling noise off), {seconds / takes:.1f} s, 16 kHz, with"
        f" white noise seeds 0..{takes - 1} added at 16 kHz; figures are means over the seeds."
        f" WER by faster-whisper base int8 (beam 1); clean-speech WER {clean_wer:.1%}.",
        "",
        f"### Real-time factor (whole clip, best of {repeats}; includes resampling to/from 48 kHz)",
        "",
        "| engine | input rate | RTF |",
        "|---|---|---|",
        *[f"| {n} | {r} Hz | {v:.3f} |" for n, r, v in rtf_rows],
        "",
        "### Quality before → after",
        "",
        "| SNR | engine | SI-SDR before | SI-SDR after | WER before | WER after |",
        "|---|---|---|---|---|---|",
        *[
            f"| {s:g} dB | {n} | {a:.1f} dB | {b:.1f} dB | {c:.1%} | {d:.1%} |"
            for s, n, a, b, c, d in q_rows
        ],
        "",
    ]
    write_report(args.out, "\n".join(lines))


if __name__ == "__main__":
    main()
