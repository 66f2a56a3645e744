"""Guardrails benchmark: p50/p95 latency per check and the labelled evaluation figures.

Run: python benchmarks/bench_guardrails.py [--quick]
Writes docs/bench/guardrails.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

OUT = ROOT / "docs" / "bench" / "guardrails.md"

from benchmarks.common import write_report  # noqa: E402
from testkit.guardrails import load_jsonl, make_settings  # noqa: E402


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _time(fn: Callable[[str], object], texts: list[str], repeat: int) -> tuple[float, float]:
    """p50 and p95 in milliseconds of fn over texts, `repeat` passes."""
    samples = []
    for _ in range(repeat):
        for text in texts:
            t0 = time.perf_counter()
            fn(text)
            samples.append((time.perf_counter() - t0) * 1000)
    return _pct(samples, 0.5), _pct(samples, 0.95)


def _long_text(n_chars: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    words = [r["text"] for r in load_jsonl("benign.jsonl")]
    out = ""
    while len(out) < n_chars:
        out += rng.choice(words) + " "
    return out[:n_chars]


def main() -> None:
    """Measure, print and write the markdown section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (< 60 s)")
    args = parser.parse_args()
    repeat = 3 if args.quick else 20

    import httpx

    from services.guardrails.app import build_app
    from services.guardrails.backends.profanity import ProfanityCheckClassifier
    from services.guardrails.injection import InjectionRules
    from services.guardrails.pii import redact
    from testkit.helpers import run_server

    attacks, benign = load_jsonl("injection.jsonl"), load_jsonl("benign.jsonl")
    toxic_rows, pii_rows = load_jsonl("toxicity.jsonl"), load_jsonl("pii.jsonl")
    prompts = [r["text"] for r in attacks + benign]
    outputs = [r["text"] for r in toxic_rows + pii_rows]
    long_in, long_out = _long_text(4000), _long_text(20_000)
    # Worst case for the optional-group patterns: one repeated qualifier, max input length.
    adversarial = ("reveal your " + "full " * 790)[:4000]

    rules = InjectionRules()
    profanity = ProfanityCheckClassifier()
    lat: list[tuple[str, str, float, float]] = []
    lat.append(
        ("input rules", f"{len(prompts)} eval prompts", *_time(rules.check, prompts, repeat))
    )
    lat.append(("input rules", "4,000-char text", *_time(rules.check, [long_in], repeat * 3)))
    lat.append(("input rules", "4,000-char adversarial", *_time(rules.check, [adversarial], 3)))
    lat.append(("PII redaction", f"{len(outputs)} eval outputs", *_time(redact, outputs, repeat)))
    lat.append(("PII redaction", "20,000-char text", *_time(redact, [long_out], repeat)))
    lat.append(
        (
            "toxicity (profanity-check)",
            f"{len(outputs)} eval outputs",
            *_time(lambda t: profanity.scores([t]), outputs, repeat),
        )
    )

    settings = make_settings(rate_limit="1000000/minute")
    with run_server(build_app(settings)) as base, httpx.Client(base_url=base) as client:

        def post_in(text: str) -> object:
            return client.post("/validate/input", json={"text": text}).raise_for_status()

        def post_out(text: str) -> object:
            return client.post("/validate/output", json={"text": text}).raise_for_status()

        lat.append(("HTTP /validate/input", "eval prompts", *_time(post_in, prompts, repeat)))
        lat.append(("HTTP /validate/output", "eval outputs", *_time(post_out, outputs, repeat)))

        # Evaluation figures through the service, exactly as the tests compute them.
        def blocked(path: str, text: str) -> bool:
            return not client.post(path, json={"text": text}).json()["safe"]

        by_kind: dict[str, list[bool]] = {}
        for r in attacks:
            by_kind.setdefault(r["kind"], []).append(blocked("/validate/input", r["text"]))
        false_blocks = sum(blocked("/validate/input", r["text"]) for r in benign)
        tp = sum(sum(v) for v in by_kind.values())
        inj_p = tp / (tp + false_blocks)
        inj_r = tp / len(attacks)
        obf = [b for k, v in by_kind.items() if k not in ("plain", "paraphrase") for b in v]
        t_tp = t_fp = t_fn = 0
        for r in toxic_rows:
            flagged = blocked("/validate/output", r["text"])
            t_tp += flagged and r["label"] == "toxic"
            t_fp += flagged and r["label"] != "toxic"
            t_fn += (not flagged) and r["label"] == "toxic"
        pii_exact = 0
        p_tp = p_fp = p_fn = 0
        for r in pii_rows:
            body = client.post("/validate/output", json={"text": r["text"]}).json()
            got = {x["type"]: x["count"] for x in body["redactions"]}
            pii_exact += got == r["expected"]
            for k in set(got) | set(r["expected"]):
                g, w = got.get(k, 0), r["expected"].get(k, 0)
                p_tp, p_fp, p_fn = p_tp + min(g, w), p_fp + max(0, g - w), p_fn + max(0, w - g)

    lines = [
        "## Guardrails",
        "",
        f"Command: `python benchmarks/bench_guardrails.py{' --quick' if args.quick else ''}`  ",
        "Override: `GUARD_RATE_LIMIT=1000000/minute` for the HTTP rows (they time single calls "
        "from one address, not the limit; the shipped default is 600/minute per end user)  ",
        f"Machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs shared with other work (load average "
        f"{os.getloadavg()[0]:.1f} at the end of the run)  ",
        f"Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        "### Latency per check (ms)",
        "",
        "| check | input | p50 | p95 |",
        "|---|---|---|---|",
        *[f"| {c} | {i} | {p50:.2f} | {p95:.2f} |" for c, i, p50, p95 in lat],
        "",
        "HTTP rows are end-to-end over real uvicorn on 127.0.0.1 (keep-alive client).",
        "profanity-check's time is mostly fixed per-call overhead (a batch of 50 texts costs",
        "about as much as one), so the figures above are per single-text request.",
        "",
        "### Evaluation (labelled set in tests/guardrails/data)",
        "",
        "| set | n | precision | recall | notes |",
        "|---|---|---|---|---|",
        f"| prompt injection (rules) | {len(attacks)} attacks + {len(benign)} benign | "
        f"{inj_p:.3f} | {inj_r:.3f} | obfuscated recall {sum(obf)}/{len(obf)}; "
        f"paraphrases {sum(by_kind.get('paraphrase', []))}/{len(by_kind.get('paraphrase', []))};"
        f" benign blocked {false_blocks}/{len(benign)} |",
        f"| toxicity (profanity-check, 0.5) | {len(toxic_rows)} | "
        f"{t_tp / max(1, t_tp + t_fp):.3f} | {t_tp / max(1, t_tp + t_fn):.3f} | |",
        f"| PII redaction (per value) | {len(pii_rows)} texts | "
        f"{p_tp / max(1, p_tp + p_fp):.3f} | {p_tp / max(1, p_tp + p_fn):.3f} | "
        f"exact per text {pii_exact}/{len(pii_rows)} |",
        "",
        "The injection rules were written alongside this set, so its recall is an upper bound",
        "for unseen attacks; the five paraphrases are attacks the rules do not target.",
        "",
    ]
    write_report(OUT, "\n".join(lines))


if __name__ == "__main__":
    main()
