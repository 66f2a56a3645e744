"""Checks the LLM tests run against either engine's server, over its public HTTP API."""

from __future__ import annotations

import time

import httpx

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "What is the capital of France?"}]


def metric(base: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples whose labels include `labels`."""
    total = 0.0
    for line in httpx.get(base + "/metrics").text.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def check_disconnect_stops_generation(base: str) -> None:
    """A client leaving mid-stream cancels the generation and frees the slot."""
    before_cancel = metric(base, "llm_generations_total", outcome="cancelled")
    before_tokens = metric(base, "llm_tokens_generated_total")
    with httpx.stream(
        "POST", base + CHAT, json={"messages": USER, "max_tokens": 2000, "stream": True}
    ) as r:
        seen = 0
        for line in r.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                seen += 1
            if seen >= 5:
                break
    # Closing the connection must end the generation long before its 2000 tokens.
    deadline = time.monotonic() + 20
    while metric(base, "llm_generations_total", outcome="cancelled") <= before_cancel:
        assert time.monotonic() < deadline, "generation was not cancelled"
        time.sleep(0.05)
    deadline = time.monotonic() + 20
    while (made := metric(base, "llm_tokens_generated_total") - before_tokens) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert 5 <= made < 2000
    # The slot is free again.
    r = httpx.post(base + CHAT, json={"messages": USER, "max_tokens": 1}, timeout=10)
    assert r.status_code == 200


def wait_startup_failed(base: str, timeout_s: float = 30.0) -> httpx.Response:
    """The `/health/ready` answer once it reports a failed startup (fails after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while "startup failed" not in (ready := httpx.get(base + "/health/ready")).text:
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.05)
    return ready
