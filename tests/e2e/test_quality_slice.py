"""A small fixed slice of the quality evaluation (docs/quality.md, `make eval`) on the e2e mesh.

Spoken questions in two synthesisers at clean, 20, 10 and 5 dB SNR go through `POST /v1/voice`;
the thresholds sit well outside the run-to-run noise of greedy decoding, so a failure means a
real regression: a reply that loops or stops mid-sentence, recognition that got worse in noise,
or answers that got wrong.
"""

from __future__ import annotations

import httpx
import pytest

from scripts.quality.dataset import Clip, load_questions
from scripts.quality.make_audio import RATE, render
from scripts.quality.run_eval import run_turn
from services.kit.audio import encode_wav
from testkit.e2e import API_KEY

pytestmark = pytest.mark.slow

# (question id, voice, SNR dB or None for clean, noise type): two or three per condition.
SLICE = [
    ("cap-france", "piper-joe", None, "none"),
    ("col-sky", "espeak-us-m3", None, "none"),
    ("def-moon", "piper-joe-fast", None, "none"),
    ("no-prompt", "piper-joe", None, "none"),
    ("cap-france", "espeak-gb-f3", 20.0, "babble"),
    ("col-grass", "piper-joe", 20.0, "white"),
    ("cap-france", "piper-joe-fast", 10.0, "white"),
    ("col-sky", "piper-joe", 10.0, "babble"),
    ("def-bee", "espeak-us-m3", 10.0, "reverb"),
    ("cap-france", "piper-joe", 5.0, "white"),
    ("col-sky", "espeak-gb-f3", 5.0, "babble"),
]


@pytest.fixture(scope="module")
def turns(mesh):
    questions = {q.id: q for q in load_questions()}
    urls = {"orchestrator": mesh.url("orchestrator"), "stt": mesh.url("stt")}
    out = []
    with httpx.Client(timeout=300) as client:
        for n, (qid, voice, snr, noise) in enumerate(SLICE):
            clip = Clip(questions[qid], voice, snr, noise)
            audio = encode_wav(render(clip, list(questions.values())), RATE)
            item = {"file": clip.name, "id": qid, "voice": voice, "snr": snr, "noise": noise}
            item["question"] = clip.question
            # A fixed session per clip: with the mesh's fixed ORCH_CANARY_KEY the prompt, and so
            # the greedy answer, is the same from run to run.
            session = f"slice-{n}-{qid}"
            rec = run_turn(
                client, urls, item, audio, heard_back=False, api_key=API_KEY, session=session
            )
            assert rec["status"] == 200, rec
            out.append(rec)
    return out


def _wer(recs: list[dict]) -> float:
    return sum(r["wer"] * r["ref_words"] for r in recs) / sum(r["ref_words"] for r in recs)


def test_no_degenerate_reply(turns):
    bad = [(r["file"], r["reply"], r["degenerate"]) for r in turns if r["degenerate"]]
    # One of eleven may trip the rule: one full run (with the canary then random per request)
    # flagged "the color of" said twice in a long, finished reply. A loop (the regression this
    # guards against) trips it on most clips.
    assert len(bad) <= 1, bad


def test_recognition_holds_in_noise(turns):
    by = {s: [r for r in turns if r["snr"] == s] for s in (None, 20.0, 10.0, 5.0)}
    report = {str(s): round(_wer(g), 3) for s, g in by.items()}
    assert _wer(by[None] + by[20.0]) <= 0.15, report
    assert _wer(by[10.0]) <= 0.30, report
    # No bound at 5 dB: Whisper falls back to sampling (temperature > 0) when decoding such
    # audio fails, so two clips' WER swung 0.3-0.93 between runs of the same code; the 5 dB
    # curve is `make eval`'s job (docs/quality.md). The clips still count for the answers.


def test_answers_and_declines(turns):
    wrong = [r for r in turns if r["kind"] != "decline" and not r["correct"]]
    shown = [(r["file"], r["transcript"], r["reply"]) for r in wrong]
    # One miss of five at clean/20 dB and three of ten overall: SmolLM2 words a right answer
    # differently when anything upstream of it changes (the system prompt, a denoise stage
    # skipped under load); a real regression misses far more.
    assert len([r for r in wrong if r["snr"] in (None, 20.0)]) <= 1, shown
    assert len(wrong) <= 3, shown
    declines = [r for r in turns if r["kind"] == "decline"]
    assert all(r["correct"] for r in declines), [(r["file"], r["reply"]) for r in declines]
