"""Drive the real local mesh with the spoken question set and record every turn.

    python -m scripts.quality.run_eval --label baseline        # starts the mesh itself
    python -m scripts.quality.run_eval --label x --per-cell 4  # a quicker, smaller grid

For every clip: the follow-up's context turn as text (`/mcp/transcript`, same session), the
spoken question through `POST /v1/voice` (denoise → stt → guardrails → llm → guardrails →
tts), the same clip through the STT service directly without denoising (the other half of
the WER-vs-SNR curve), and the reply audio through the STT service again (reply heard
back). Writes eval/results/<label>.json; `scripts.quality.report` turns the results into
docs/quality.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from scripts.quality import make_audio
from scripts.quality.dataset import ROOT, grid, load_questions
from scripts.quality.mesh import API_KEY, local_mesh
from scripts.quality.scoring import answer_correct, cer, declined, degenerate_reasons, wer

RESULTS = ROOT / "eval" / "results"


def _stt(client: httpx.Client, base: str, audio: bytes, prompt: str | None = None) -> str:
    data = {"language": "en", "response_format": "json"}
    if prompt:
        data["prompt"] = prompt
    r = client.post(
        f"{base}/v1/audio/transcriptions",
        files={"file": ("a.wav", audio, "audio/wav")},
        data=data,
    )
    r.raise_for_status()
    text: str = r.json()["text"]
    return text


def run_turn(
    client: httpx.Client,
    urls: dict[str, str],
    item: dict[str, Any],
    audio: bytes,
    heard_back: bool = True,
    api_key: str = API_KEY,
    session: str | None = None,
) -> dict[str, Any]:
    """One spoken question through the mesh, scored.

    `urls` holds the orchestrator's and the STT service's base URLs; `item` a manifest entry
    plus its `question`; `session` a fresh session id (default: one from the clock).
    """
    q = item["question"]
    session = session or f"eval-{item['file']}-{time.monotonic_ns()}"
    orch = {"Authorization": f"Bearer {api_key}"}
    if q.context:
        r = client.post(
            f"{urls['orchestrator']}/mcp/transcript",
            json={"transcript": q.context, "session_id": session},
            headers=orch,
        )
        r.raise_for_status()
    started = time.perf_counter()
    r = client.post(
        f"{urls['orchestrator']}/v1/voice",
        files={"file": ("q.wav", audio, "audio/wav")},
        data={"session_id": session},
        headers=orch,
    )
    latency = time.perf_counter() - started
    rec: dict[str, Any] = {k: item[k] for k in ("file", "id", "voice", "snr", "noise")}
    rec.update(kind=q.kind, question=q.q, latency_s=round(latency, 3), status=r.status_code)
    if r.status_code != 200:
        rec["error"] = r.text[:300]
        return rec
    body = r.json()
    reply = body.get("response") or ""
    rec.update(
        transcript=body.get("transcript") or "",
        reply=reply,
        blocked=bool(body.get("blocked")),
        stages={s["stage"]: round(s["latency_ms"]) for s in body.get("stages", [])},
        stage_status={s["stage"]: s["status"] for s in body.get("stages", [])},
    )
    rec["transcript_raw"] = _stt(client, urls["stt"], audio)
    rec["wer"] = round(wer(q.q, rec["transcript"]), 4)
    rec["wer_raw"] = round(wer(q.q, rec["transcript_raw"]), 4)
    rec["ref_words"] = len(q.q.split())
    if q.decline:
        rec["correct"] = declined(reply, rec["blocked"])
    else:
        rec["correct"] = (not rec["blocked"]) and answer_correct(reply, q.expect)
    rec["degenerate"] = [] if rec["blocked"] else degenerate_reasons(reply)
    if heard_back and body.get("audio") and reply.strip():
        heard = _stt(client, urls["stt"], base64.b64decode(body["audio"]))
        rec["heard"] = heard
        rec["heard_cer"] = round(cer(reply, heard), 4)
    return rec


def machine() -> dict[str, Any]:
    """Where and when the run happened."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "commit": commit,
    }


def _parse_env(pairs: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        svc, _, kv = pair.partition(":")
        key, _, value = kv.partition("=")
        out.setdefault(svc, {})[key] = value
    return out


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Generate the audio if needed, start the mesh, run every clip, return the results."""
    questions = {q.id: q for q in load_questions()}
    manifest = make_audio.generate(args.audio, args.per_cell)
    clips = grid(list(questions.values()), args.per_cell)
    assert len(clips) == len(manifest)
    items = [{**m, "question": c.question} for m, c in zip(manifest, clips, strict=True)]
    before = machine()
    records: list[dict[str, Any]] = []
    started = time.monotonic()
    # Each turn is also appended here as it finishes: a run cut short keeps what it measured.
    partial = ROOT / "artifacts" / "eval" / f"{args.label}.jsonl"
    with (
        local_mesh(
            ROOT / "artifacts" / "eval" / f"logs-{args.label}", _parse_env(args.env)
        ) as mesh,
        httpx.Client(timeout=300) as client,
        partial.open("w") as log,
    ):
        urls = {name: mesh.url(name) for name in ("orchestrator", "stt")}
        try:
            for n, item in enumerate(items, 1):
                audio = (args.audio / item["file"]).read_bytes()
                rec = run_turn(client, urls, item, audio, not args.no_heard_back)
                records.append(rec)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if n % 5 == 0 or n == len(items):
                    elapsed = time.monotonic() - started
                    print(f"{n}/{len(items)} turns, {elapsed:.0f} s", flush=True)
        except (KeyboardInterrupt, SystemExit):
            # Cut short (Ctrl-C, SIGTERM): keep the turns measured, marked incomplete.
            print(f"stopped after {len(records)} of {len(items)} turns", flush=True)
    return {
        "complete": len(records) == len(items),
        "planned": len(items),
        "label": args.label,
        "note": args.note,
        "command": " ".join(["python -m scripts.quality.run_eval", *sys.argv[1:]]),
        "env": args.env,
        "before": before,
        "after": machine(),
        "seconds": round(time.monotonic() - started),
        "records": records,
    }


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # SIGTERM (timeout, CI) must unwind through local_mesh so no service is left running.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--label", required=True, help="name of this run (eval/results/LABEL.json)")
    ap.add_argument("--note", default="", help="what this run changed, for the report")
    ap.add_argument("--per-cell", type=int, default=None, help="questions per voice × SNR cell")
    ap.add_argument("--audio", type=Path, default=make_audio.DEFAULT_OUT)
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        help="SERVICE:KEY=VALUE for one service (e.g. stt:STT_VAD_FILTER=true); repeatable",
    )
    ap.add_argument(
        "--no-heard-back",
        action="store_true",
        help="skip transcribing the reply audio (saves one STT call per turn)",
    )
    ap.add_argument("--no-report", action="store_true", help="do not rewrite docs/quality.md")
    args = ap.parse_args(argv)
    result = evaluate(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.label}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    if not args.no_report:
        from scripts.quality import report

        report.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
