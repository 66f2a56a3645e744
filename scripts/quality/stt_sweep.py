"""STT-only sweep: WER and STT time per SNR × noise type for beam size, prompt and denoising.

    python -m scripts.quality.stt_sweep --label noise --per-cell 6
    python -m scripts.quality.stt_sweep --summarise eval/stt-sweep/noise.jsonl

Over the clips `scripts.quality.make_audio` writes (generated here when missing), runs the real
stt app (faster-whisper on the offline profile's model, one app per beam size) and the real
preprocessor app (its default denoiser) in-process through their HTTP APIs. Every clip is
denoised once; then every configuration (beam × prompt × raw/denoised audio) transcribes it,
in an order that rotates clip by clip, so load swings on a shared box hit all configurations
alike. Each clip also gets the preprocessor's SNR estimate (services.kit.snr.py) of
its raw audio, to compare with the SNR it was made at. One JSON line per clip goes to
eval/stt-sweep/<label>.jsonl as it finishes (an interrupted run keeps what it measured);
the summary (markdown tables) is printed at the end or by --summarise.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from starlette.testclient import TestClient

from scripts.quality import make_audio
from scripts.quality.dataset import ROOT, grid, load_questions, snr_label
from scripts.quality.scoring import normalize, wer

OUT_DIR = ROOT / "eval" / "stt-sweep"
ENV_FILE = ROOT / ".env.local"
PROMPTS = {"none": None, "assistant": "A spoken question to a voice assistant."}
SNR_ORDER = ["clean", "20dB", "10dB", "5dB", "0dB"]


@dataclass(frozen=True)
class Config:
    """One STT configuration of the sweep."""

    beam: int
    prompt: str  # a key of PROMPTS
    audio: str  # "raw" or "denoised"

    @property
    def name(self) -> str:
        """Short label: beam, prompt, audio."""
        return f"b{self.beam}/{self.prompt}/{self.audio}"


def configs(beams: list[int], prompts: list[str]) -> list[Config]:
    """Every combination of beam, prompt and audio path."""
    return [Config(b, p, a) for b, p, a in itertools.product(beams, prompts, ("raw", "denoised"))]


def _offline_env() -> None:
    """The offline profile's variables (.env.local), as `make run` gives the services."""
    for line in ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            os.environ.setdefault(key, value)


@contextmanager
def services(beams: list[int]) -> Iterator[tuple[TestClient, dict[int, TestClient]]]:
    """The preprocessor app and one stt app per beam size, started (lifespan run), in-process."""
    _offline_env()
    from services.preprocessor.app import build_app as build_pre
    from services.stt.app import build_app as build_stt
    from services.stt.settings import Settings as SttSettings

    with ExitStack() as stack:
        pre = stack.enter_context(TestClient(build_pre()))
        stt = {
            b: stack.enter_context(TestClient(build_stt(SttSettings(beam_size=b)))) for b in beams
        }
        deadline = time.monotonic() + 600
        for client in [pre, *stt.values()]:
            # The engines load after startup; readiness says when they are up (or why not).
            while (ready := client.get("/health/ready")).status_code != 200:
                if time.monotonic() > deadline or "error" in ready.text.lower():
                    raise RuntimeError(f"service not ready: {ready.text}")
                time.sleep(0.5)
        yield pre, stt


def transcribe(client: TestClient, audio: bytes, prompt: str | None) -> tuple[str, float, float]:
    """Text, client wall seconds and the service's own processing seconds of one request."""
    data = {"language": "en", "response_format": "json"}
    if prompt:
        data["prompt"] = prompt
    started = time.perf_counter()
    r = client.post(
        "/v1/audio/transcriptions", files={"file": ("a.wav", audio, "audio/wav")}, data=data
    )
    wall = time.perf_counter() - started
    r.raise_for_status()
    processing = float(r.headers.get("x-processing-ms", "nan")) / 1000
    return str(r.json()["text"]), wall, processing


def sweep(args: argparse.Namespace) -> Path:
    """Run every configuration over the chosen clips; return the JSONL file written."""
    from services.kit.audio import decode_audio
    from services.kit.snr import estimate_snr_db, estimate_snr_db_percentile
    from services.kit.vad import SileroDetector

    questions = {q.id: q for q in load_questions()}
    clips = grid(list(questions.values()), args.per_cell)
    make_audio.generate(args.audio, args.per_cell)
    random.Random(args.seed).shuffle(clips)  # SNR levels spread over the run's load swings
    if args.limit:
        clips = clips[: args.limit]
    cfgs = configs(args.beams, args.prompts)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"{args.label}.jsonl"
    started = time.time()
    with services(args.beams) as (pre, stt), out.open("w") as sink:
        sink.write(json.dumps({"meta": _meta(args, [c.name for c in cfgs], len(clips))}) + "\n")
        for i, clip in enumerate(clips):
            raw = (args.audio / f"{clip.name}.wav").read_bytes()
            samples = decode_audio(raw, 16000).samples
            t0 = time.perf_counter()
            r = pre.post("/denoise", files={"file": ("a.wav", raw, "audio/wav")})
            r.raise_for_status()
            audio = {"raw": raw, "denoised": r.content}
            row: dict[str, Any] = {
                "clip": clip.name,
                "id": clip.question.id,
                "voice": clip.voice,
                "snr": snr_label(clip.snr),
                "noise": clip.noise,
                "reference": clip.question.q,
                "denoise_s": round(time.perf_counter() - t0, 3),
                # A fresh detector per clip: Silero keeps context between calls of one stream.
                "snr_est": estimate_snr_db(samples, SileroDetector()),
                "snr_est_pct": estimate_snr_db_percentile(samples),
                "results": {},
            }
            k = i % len(cfgs)
            for cfg in cfgs[k:] + cfgs[:k]:
                text, wall, processing = transcribe(
                    stt[cfg.beam], audio[cfg.audio], PROMPTS[cfg.prompt]
                )
                row["results"][cfg.name] = {
                    "text": text,
                    "wer": round(wer(clip.question.q, text), 4),
                    "wall_s": round(wall, 3),
                    "stt_s": round(processing, 3),
                }
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            print(f"{i + 1}/{len(clips)} {clip.name} ({time.time() - started:.0f} s)", flush=True)
    return out


def _meta(args: argparse.Namespace, names: list[str], n: int) -> dict[str, Any]:
    import platform
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "label": args.label,
        "configs": names,
        "clips": n,
        "per_cell": args.per_cell,
        "prompts": {k: v for k, v in PROMPTS.items() if k in args.prompts},
        "commit": commit,
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        ),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def load(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The meta line and the clip rows of a sweep's JSONL file."""
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return lines[0]["meta"], lines[1:]


def corpus_wer(rows: list[dict[str, Any]], pick: Callable[[dict[str, Any]], float]) -> float:
    """Errors over reference words across rows; `pick(row)` gives the row's WER (NaN: no rows)."""
    if not rows:
        return float("nan")
    words = [len(normalize(r["reference"]).split()) for r in rows]
    errors = sum(pick(r) * w for r, w in zip(rows, words, strict=True))
    return errors / max(sum(words), 1)


def _wer_of(name: str) -> Callable[[dict[str, Any]], float]:
    """A row's WER under configuration `name`."""
    return lambda row: float(row["results"][name]["wer"])


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(path: Path, gates: list[tuple[float, float]]) -> str:
    """Markdown tables: WER per SNR (× noise) per configuration, STT time, SNR estimates, gates."""
    meta, rows = load(path)
    names: list[str] = meta["configs"]
    lines = [
        f"Sweep `{meta['label']}`: {len(rows)} clips, {meta['date']}, commit {meta['commit']}, "
        f"{meta['machine']}, load average before {meta['load_before']}"
        + (f", after {meta['load_after']}" if "load_after" in meta else ""),
        "",
        "WER per SNR level (all noise types; n = clips):",
        "",
        "| config | " + " | ".join(SNR_ORDER) + " | all |",
        "|---|" + "---|" * (len(SNR_ORDER) + 1),
    ]
    by_snr = {s: [r for r in rows if r["snr"] == s] for s in SNR_ORDER}
    lines.append(
        "| n | " + " | ".join(str(len(by_snr[s])) for s in SNR_ORDER) + f" | {len(rows)} |"
    )
    for name in names:
        cells = [f"{corpus_wer(by_snr[s], _wer_of(name)):.3f}" for s in SNR_ORDER]
        total = corpus_wer(rows, _wer_of(name))
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {total:.3f} |")
    noises = sorted({r["noise"] for r in rows if r["noise"] != "none"})
    cols = [(s, n) for s in SNR_ORDER[1:] for n in noises]
    lines += [
        "",
        "WER per SNR × noise type:",
        "",
        "| config | " + " | ".join(f"{s} {n}" for s, n in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    cell_rows = {c: [r for r in rows if (r["snr"], r["noise"]) == c] for c in cols}
    lines.append("| n | " + " | ".join(str(len(cell_rows[c])) for c in cols) + " |")
    for name in names:
        cells = [f"{corpus_wer(cell_rows[c], _wer_of(name)):.2f}" for c in cols]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        "STT time per clip, s (the service's processing time; client wall time in brackets):",
        "",
        "| config | median | p95 | median clean | median 0 dB |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        t = [r["results"][name]["stt_s"] for r in rows]
        w = [r["results"][name]["wall_s"] for r in rows]
        clean = [r["results"][name]["stt_s"] for r in by_snr["clean"]]
        zero = [r["results"][name]["stt_s"] for r in by_snr["0dB"]]
        lines.append(
            f"| `{name}` | {statistics.median(t):.2f} ({statistics.median(w):.2f}) | "
            f"{_pct(t, 95):.2f} ({_pct(w, 95):.2f}) | "
            f"{statistics.median(clean) if clean else float('nan'):.2f} | "
            f"{statistics.median(zero) if zero else float('nan'):.2f} |"
        )
    d = [r["denoise_s"] for r in rows]
    lines += [
        "",
        f"Denoise time per clip: median {statistics.median(d):.2f} s, p95 {_pct(d, 95):.2f} s.",
        "",
    ]
    lines += _paired(rows, names, by_snr)
    lines += _snr_table(rows, noises, "snr_est", "Silero speech vs non-speech windows")
    lines += _snr_table(rows, noises, "snr_est_pct", "loudest half vs quietest 15 % of windows")
    lines += _gate_table(rows, names, gates)
    return "\n".join(lines)


def _paired(
    rows: list[dict[str, Any]], names: list[str], by_snr: dict[str, list[dict[str, Any]]]
) -> list[str]:
    """Clip by clip: how often one setting beats the other with the rest held fixed."""
    pairs: list[tuple[str, str, str]] = []
    for name in names:
        beam, prompt, audio = name.split("/")
        if beam != "b1" and f"b1/{prompt}/{audio}" in names:
            pairs.append((f"b1 vs {beam}, {prompt}/{audio}", f"b1/{prompt}/{audio}", name))
        if prompt != "none" and f"{beam}/none/{audio}" in names:
            pairs.append((f"{prompt} vs none, {beam}/{audio}", name, f"{beam}/none/{audio}"))
        if audio == "denoised":
            pairs.append((f"denoised vs raw, {beam}/{prompt}", name, f"{beam}/{prompt}/raw"))
    lines = [
        "Paired, clip by clip: clips where the first setting has the lower / higher WER"
        " (equal ones not counted):",
        "",
        "| comparison | " + " | ".join(SNR_ORDER) + " | all |",
        "|---|" + "---|" * (len(SNR_ORDER) + 1),
    ]
    for label, a, b in pairs:
        cells = []
        for sel in [*(by_snr[s] for s in SNR_ORDER), rows]:
            better = sum(r["results"][a]["wer"] < r["results"][b]["wer"] for r in sel)
            worse = sum(r["results"][a]["wer"] > r["results"][b]["wer"] for r in sel)
            cells.append(f"{better} / {worse}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _snr_table(rows: list[dict[str, Any]], noises: list[str], key: str, what: str) -> list[str]:
    lines = [
        f"SNR estimate ({what}) against the SNR the clip was made at:"
        " median [min–max] dB, clips with no estimate in brackets",
        "",
        "| SNR | " + " | ".join(noises) + " | clean |",
        "|---|" + "---|" * (len(noises) + 1),
    ]
    for s in SNR_ORDER:
        cells = []
        for n in [*noises, "none"]:
            sel = [r.get(key) for r in rows if r["snr"] == s and r["noise"] == n]
            est = [x for x in sel if x is not None]
            if not sel:
                cells.append("–")
                continue
            text = (
                f"{statistics.median(est):.1f} [{min(est):.1f}–{max(est):.1f}]" if est else "none"
            )
            cells.append(text + (f" ({len(sel) - len(est)})" if len(est) < len(sel) else ""))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _gate_table(
    rows: list[dict[str, Any]], names: list[str], gates: list[tuple[float, float]]
) -> list[str]:
    """WER per SNR level if denoised audio were used only when the estimate lies in [lo, hi)."""
    lines = [
        "SNR gate (from the same transcripts): `never` = raw audio, `always` = denoised, [lo, hi)"
        " = denoised only when the estimate lies in it, raw otherwise and when there is none:",
        "",
        "| beam/prompt | gate | " + " | ".join(SNR_ORDER) + " | all |",
        "|---|---|" + "---|" * (len(SNR_ORDER) + 1),
    ]
    bases = sorted({n.rsplit("/", 1)[0] for n in names})
    by_snr = {s: [r for r in rows if r["snr"] == s] for s in SNR_ORDER}
    choices: list[tuple[str, float, float]] = [("never", math.inf, math.inf)]
    choices += [("always", -math.inf, math.inf)]
    choices += [(f"[{lo:g}, {hi:g})", lo, hi) for lo, hi in gates]
    for base in bases:
        for label, lo, hi in choices:

            def pick(r: dict[str, Any], lo: float = lo, hi: float = hi, base: str = base) -> float:
                est = r["snr_est"]
                if math.isinf(lo) and math.isinf(hi):  # never / always: the estimate plays no part
                    use = lo < 0
                else:
                    use = est is not None and lo <= est < hi
                return float(r["results"][f"{base}/{'denoised' if use else 'raw'}"]["wer"])

            cells = [f"{corpus_wer(by_snr[s], pick):.3f}" for s in SNR_ORDER]
            total = corpus_wer(rows, pick)
            lines.append(f"| `{base}` | {label} | " + " | ".join(cells) + f" | {total:.3f} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--label", default="sweep")
    ap.add_argument("--per-cell", type=int, default=None, help="questions per voice × SNR cell")
    ap.add_argument("--limit", type=int, default=None, help="only the first N (shuffled) clips")
    ap.add_argument("--beams", default="5,1")
    ap.add_argument("--prompts", default="none,assistant", help=f"keys of {sorted(PROMPTS)}")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--audio", type=Path, default=make_audio.DEFAULT_OUT)
    ap.add_argument(
        "--gates", default="-10:1000,3:1000,8:1000,8:15", help="lo:hi dB ranges to evaluate"
    )
    ap.add_argument("--summarise", type=Path, default=None, help="only summarise this JSONL")
    args = ap.parse_args(argv)
    args.beams = [int(b) for b in args.beams.split(",")]
    args.prompts = args.prompts.split(",")
    gates = [(float(a), float(b)) for a, b in (g.split(":") for g in args.gates.split(","))]
    path = args.summarise or sweep(args)
    if not args.summarise:
        meta, rows = load(path)
        meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
        path.write_text("\n".join(json.dumps(x) for x in [{"meta": meta}, *rows]) + "\n")
    print(summarise(path, gates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
