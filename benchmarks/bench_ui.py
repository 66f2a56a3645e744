"""Testing UI and dashboard benchmark: what the UI adds to a turn, what a dashboard refresh costs.

Run: python benchmarks/bench_ui.py [--quick]
Writes docs/bench/ui.md.

- UI overhead: the same text turn (reply with ~1 s of real Piper audio) sent straight to the
  fake orchestrator, and through the testing UI's Gradio API (gradio_client, the path the
  browser uses minus rendering); the difference is what the UI costs per turn.
- Dashboard refresh: the health grid over 8 services, and every Prometheus panel
  (snapshot + the two range queries) against a real Prometheus scraping the fake orchestrator.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
OUT = ROOT / "docs" / "bench" / "ui.md"

from benchmarks.common import header, write_report  # noqa: E402


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _time(fn: Callable[[], object], n: int, warmup: int = 2) -> tuple[float, float]:
    """p50 and p95 in milliseconds of `fn` over n calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return _pct(samples, 0.5), _pct(samples, 0.95)


def _prometheus(target: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    from testkit.helpers import free_port

    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n  - job_name: orchestrator\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}"


def _handler_timing(orch: str, text: str, n: int) -> tuple[float, float]:
    """The UI's own work per turn (client call, stage table, WAV decode) without Gradio."""
    import asyncio

    from services.client import OrchestratorClient, PipelineCatalog
    from services.kit.http import make_client
    from services.testing_ui.settings import Settings
    from services.testing_ui.ui import Page

    async def run() -> tuple[float, float]:
        http = make_client(10)
        page = Page(OrchestratorClient(orch, http=http), Settings())
        samples = []
        for i in range(n + 2):
            t0 = time.perf_counter()
            out = await page.ask_text(text, "voice", PipelineCatalog(), "bench")
            if i >= 2:
                samples.append((time.perf_counter() - t0) * 1000)
            assert out[3] is not None, "no reply audio"
        await http.aclose()
        return _pct(samples, 0.5), _pct(samples, 0.95)

    return asyncio.run(run())


def main() -> None:
    """Measure, print and write the markdown section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (< 60 s)")
    args = parser.parse_args()
    n = 15 if args.quick else 100

    import httpx
    from gradio_client import Client

    from services.dashboard.data import (
        PrometheusClient,
        PrometheusUnavailable,
        check_health,
        request_rate_query,
        snapshot,
        stage_p95_query,
        timeseries,
    )
    from services.testing_ui.app import build_app
    from services.testing_ui.settings import Settings
    from testkit.fakes.ui_orchestrator import build_fake_orchestrator
    from testkit.helpers import run_server

    rows: list[tuple[str, str, float, float]] = []
    ui_settings = Settings(orchestrator_url="", log_json=False)
    with run_server(build_fake_orchestrator()) as orch:
        ui_settings.orchestrator_url = orch
        with run_server(build_app(ui_settings)) as ui:
            question = "What is the capital of France?"
            payload: dict[str, object] = {
                "transcript": question,
                "session_id": "bench",
                "audio": True,
            }
            with httpx.Client() as http:
                direct = _time(
                    lambda: http.post(orch + "/mcp/transcript", json=payload).raise_for_status(), n
                )
            # The browser fetches the reply WAV itself when the player loads: do not count a
            # client-side download here.
            client = Client(ui + "/", verbose=False, download_files=False)
            via_ui = _time(lambda: client.predict(question, "voice", api_name="/ask_text"), n)
            rows.append(("text turn straight to the (fake) orchestrator", "HTTP", *direct))
            rows.append(("same turn through the testing UI", "Gradio API", *via_ui))
            rows.insert(
                1,
                (
                    "same turn through the UI's handler, in process",
                    "Page.ask_text",
                    *_handler_timing(orch, question, n),
                ),
            )
            overhead = (via_ui[0] - direct[0], via_ui[1] - direct[1])

            services = {f"svc{i}": (orch if i % 2 else ui) for i in range(8)}
            rows.append(
                (
                    "dashboard health grid, 8 services",
                    "live+ready probes",
                    *_time(lambda: check_health(services, 3.0), n),
                )
            )

            prom_rows: list[tuple[str, str, float, float]] = []
            if shutil.which("prometheus"):
                tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
                proc, prom_url = _prometheus(orch.removeprefix("http://"), tmp)
                try:
                    prom = PrometheusClient(prom_url, 5.0)
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        try:
                            if prom.targets() and prom.targets()[0]["health"] == "up":
                                break
                        except PrometheusUnavailable:  # still starting
                            pass
                        time.sleep(0.3)
                    time.sleep(3)  # a few scrapes so rate() has data

                    def refresh() -> None:
                        snapshot(prom, "1m")
                        timeseries(prom, request_rate_query("1m"), "service", 30)
                        timeseries(prom, stage_p95_query("1m"), "stage", 30)

                    prom_rows.append(
                        (
                            "dashboard Prometheus panels (14 API calls)",
                            "real Prometheus",
                            *_time(refresh, n),
                        )
                    )
                    prom.close()
                finally:
                    proc.terminate()
                    proc.wait(timeout=15)
                    shutil.rmtree(tmp, ignore_errors=True)
            rows.extend(prom_rows)

    cmd = "python benchmarks/bench_ui.py" + (" --quick" if args.quick else "")
    lines = [
        *header(
            "Testing UI and monitoring dashboard",
            f"`{cmd}` ({n} timed runs per row, after 2 warm-up runs)",
        ),
        "",
        "| what | path | p50 ms | p95 ms |",
        "|---|---|---:|---:|",
        *[f"| {w} | {p} | {a:.1f} | {b:.1f} |" for w, p, a, b in rows],
        "",
        f"UI overhead per turn (through the UI − straight): p50 {overhead[0]:.1f} ms, "
        f"p95 {overhead[1]:.1f} ms. The UI's own handler is the in-process row; the rest is "
        "Gradio: its queue, the SSE round trip of gradio_client, and writing the reply WAV to "
        "its file cache. The browser's rendering is not included.",
    ]
    if not rows[-1][0].startswith("dashboard Prometheus"):
        lines.append("\nPrometheus is not installed here: the panel row was not measured.")
    write_report(OUT, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
