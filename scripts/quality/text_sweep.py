"""Text-only answer accuracy of the offline LLM for system prompts and decoding options.

    python -m scripts.quality.text_sweep [--model .models/smollm2-ct2] [--max-tokens 64]

The spoken set's questions as typed text (no STT, no noise), through the LLM service's own
engine and prompt code in-process: a quick way to compare prompts, penalties and models
before a full `make eval`. Follow-ups get their context turn (and the model's own reply to
it) first. Prints one line per variant: answer accuracy, decline accuracy, degenerate rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from scripts.quality.dataset import ROOT, load_questions
from scripts.quality.scoring import answer_correct, declined, degenerate_reasons
from services.llm.engine import ChatEngine, ChatMessage, GenerationParams
from services.llm.stops import cut_at_sentence_end

PIPELINES = ROOT / "config" / "pipelines.yaml"


def _load(model: str) -> ChatEngine:
    from services.llm.backends import load_engine
    from services.llm.settings import Settings

    return load_engine(Settings(model=model, engine="auto"))


def answer(engine: Any, messages: list[ChatMessage], params: GenerationParams) -> str:
    """One greedy reply, cut at its last sentence end when it ran out of tokens (as served)."""
    prompt = engine.prepare(messages, 1024)
    pieces: list[str] = []
    outcome = engine.generate(prompt, params, pieces.append, lambda: False)
    text = "".join(pieces)
    if not outcome.hit_eos and outcome.completion_tokens >= params.max_new_tokens:
        text = cut_at_sentence_end(text)
    return text


def score(engine: Any, system: str, params: GenerationParams) -> dict[str, float]:
    """Accuracy, decline accuracy and degenerate rate over the whole set, as text."""
    right = total = refused = declines = degenerate = 0
    for q in load_questions():
        convo = [ChatMessage("system", system)]
        if q.context:
            convo += [ChatMessage("user", q.context)]
            convo += [ChatMessage("assistant", answer(engine, convo, params))]
        reply = answer(engine, [*convo, ChatMessage("user", q.q)], params)
        degenerate += bool(degenerate_reasons(reply))
        if q.decline:
            declines += 1
            refused += declined(reply, False)
        else:
            total += 1
            right += answer_correct(reply, q.expect)
    n = total + declines
    return {"acc": right / total, "decline": refused / declines, "degenerate": degenerate / n}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / ".models" / "smollm2-ct2"))
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--penalties", default="0,0.5,1.0", help="frequency_penalty values")
    ap.add_argument("--prompts", type=str, default=None, help="YAML list of system prompts")
    args = ap.parse_args(argv)
    shipped = yaml.safe_load(PIPELINES.read_text())["system_prompt"]["text"]
    prompts = [shipped]
    if args.prompts:
        prompts += yaml.safe_load(Path(args.prompts).read_text())
    engine = _load(args.model)
    for p, system in enumerate(prompts):
        for pen in [float(x) for x in args.penalties.split(",")]:
            params = GenerationParams(max_new_tokens=args.max_tokens, frequency_penalty=pen)
            started = time.perf_counter()
            m = score(engine, system, params)
            print(
                f"prompt {p} frequency_penalty {pen:g}: answer acc {m['acc']:.0%}, decline "
                f"{m['decline']:.0%}, degenerate {m['degenerate']:.0%} "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
