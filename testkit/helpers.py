"""Test helpers shared by every service's tests: real servers, generated speech, WER."""

from __future__ import annotations

import contextlib
import functools
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI, Request

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / ".models"
PIPER_VOICE = MODELS / "piper" / "en_US-joe-medium.onnx"
WHISPER_BASE = MODELS / "whisper-base"
WHISPER_TINY_EN = MODELS / "whisper-tiny.en"
SMOLLM2_GGUF = MODELS / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CT2 = MODELS / "smollm2-ct2"


@contextlib.contextmanager
def run_process(
    cmd: list[str],
    ready_url: str,
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 60.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `cmd` (in the repo root), wait until `ready_url` answers 200, stop it at the end.

    Output goes to `log` (or nowhere); a process that exits or never gets ready raises with
    the log's tail.
    """
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if httpx.get(ready_url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:] if log else ""
                    state = (
                        f"exited with {proc.returncode}"
                        if proc.poll() is not None
                        else (f"not ready in {timeout:g} s")
                    )
                    raise RuntimeError(f"{cmd[0]} {state} ({ready_url}): {tail}")
                time.sleep(0.1)
            yield proc
        finally:
            stop_process(proc, grace=15)


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if the process is still there after `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def run_server(
    app: Any,
    *,
    ready_path: str | None = "/health/ready",
    timeout: float = 120.0,
    port: int | None = None,
    host: str = "127.0.0.1",
) -> Iterator[str]:
    """Serve an ASGI app with a real uvicorn on a free port; yield its base URL."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on"
    )  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    deadline = time.monotonic() + timeout
    path = ready_path or "/health/live"
    last = ""
    while True:
        try:
            r = httpx.get(base + path, timeout=2)
            if r.status_code == 200:
                break
            last = r.text
        except httpx.HTTPError as exc:
            last = repr(exc)
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"server at {base} not ready: {last}")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port, no persistence; yields its URL.

    Needs the `redis-server` binary (`make system-deps`); a missing one fails, it is not skipped.
    """
    import redis

    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    if client.ping():
                        break
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc, grace=10)


@functools.lru_cache(maxsize=1)
def _piper_voice() -> object:
    from piper import PiperVoice

    return PiperVoice.load(str(PIPER_VOICE))


def synth_speech(text: str, rate: int | None = 16000) -> tuple[np.ndarray, int]:
    """Speak `text` with the PyPI-shipped Piper voice; float32 mono at `rate` (or native)."""
    from piper import SynthesisConfig

    from services.kit.audio import resample

    voice = _piper_voice()
    # Piper's defaults sample noise inside the model (noise_scale 0.667, noise_w 0.8): the
    # same sentence came out 1.96-2.15 s long from run to run, and tests that measure cuts
    # or durations passed or failed by chance. Without the noise the speech is identical
    # every time.
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(voice.synthesize(text, quiet))  # type: ignore[attr-defined]
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    native = int(chunks[0].sample_rate)
    if rate and rate != native:
        return resample(audio, native, rate), rate
    return audio, native


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """Encode float mono samples as a PCM16 WAV."""
    from services.kit.audio import encode_wav

    return encode_wav(samples, rate)


def with_pauses(samples: np.ndarray, rate: int, seconds: float = 0.5) -> np.ndarray:
    """Silence before and after the speech, as a microphone records around a question.

    The orchestrator's denoise gate estimates the SNR from the audio without speech: a clip
    cut tight around the words has none, and goes to stt without denoising.
    """
    pad = np.zeros(int(rate * seconds), np.float32)
    out: np.ndarray = np.concatenate([pad, samples.astype(np.float32), pad])
    return out


def add_noise(clean: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """Add seeded white noise at the given SNR."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(clean)).astype(np.float32)
    p_sig = float(np.mean(clean**2)) + 1e-12
    p_noise = p_sig / (10 ** (snr_db / 10))
    noisy: np.ndarray = (clean + noise * np.sqrt(p_noise)).astype(np.float32)
    return noisy


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation, collapse spaces: the WER convention used in tests."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after normalisation."""
    import jiwer

    return float(jiwer.wer(normalize_text(reference), normalize_text(hypothesis)))


def echo_llm_app(history: bool = True) -> FastAPI:
    """An OpenAI-compatible chat server that echoes what it was sent (a stand-in cloud LLM).

    With `history`, it echoes every user turn it received, which shows exactly which history
    the caller sent; without, only the newest one.
    """
    app = FastAPI()

    # Request must be a module-level name: annotations are strings here (PEP 563) and
    # FastAPI resolves them against the module's globals.
    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, object]:
        body = await request.json()
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        said = " | ".join(users) if history else (users[-1] if users else "")
        return {
            "id": "chatcmpl-echo",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "echo"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "You said: " + said},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    return app
