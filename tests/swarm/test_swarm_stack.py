"""Acceptance test of the Swarm stack: replicas share the load, and no request is lost when a
replica dies, when the service is updated, or when an update fails and rolls back.

Traffic: spoken questions to the orchestrator's published port on 127.0.0.1 (the `transcribe`
pipeline; denoise switched off for the test), and inside, between the stack's own containers on
its overlay network. stt runs with `endpoint_mode: dnsrr`: the orchestrator resolves `stt` to
both replicas and spreads its calls itself. Each replica's own /metrics is read inside its
container (`docker exec`), so a count cannot come from its sibling.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from testkit.docker import SwarmStack
from testkit.helpers import synth_speech, wav_bytes

pytestmark = [pytest.mark.swarm, pytest.mark.slow]

ORCH = "http://127.0.0.1:8220"
QUESTION = "What is the capital of France?"
_SERVED = re.compile(
    r'^http_requests_total\{[^}]*route="/v1/audio/transcriptions"[^}]*status="200"[^}]*\} (\S+)$',
    re.M,
)


def served(stack: SwarmStack, container: str) -> int:
    """Transcriptions this replica answered with 200, from its own /metrics."""
    probe = (
        "import urllib.request as u;"
        "print(u.urlopen('http://127.0.0.1:9000/metrics', timeout=10).read().decode())"
    )
    text = stack.docker("exec", container, "python", "-c", probe)
    return int(sum(float(v) for v in _SERVED.findall(text)))


class Load:
    """Clients sending spoken questions without pause; every reply is kept."""

    def __init__(self, stack: SwarmStack, workers: int = 2) -> None:
        clean, rate = synth_speech(QUESTION)
        self.audio = wav_bytes(clean, rate)
        self.headers = {"Authorization": f"Bearer {stack.api_key}"}
        self.workers = workers
        self.results: list[tuple[int, str]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def _worker(self, n: int) -> None:
        with httpx.Client(base_url=ORCH, timeout=120, headers=self.headers) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                try:
                    r = client.post(
                        "/v1/voice",
                        files={"file": ("q.wav", self.audio, "audio/wav")},
                        data={"session_id": f"load-{n}-{i}", "pipeline": "transcribe"},
                    )
                    result = (
                        r.status_code,
                        r.json().get("transcript", "") if r.is_success else r.text,
                    )
                except httpx.HTTPError as exc:  # a lost request: no answer at all
                    result = (0, repr(exc))
                with self.lock:
                    self.results.append(result)
                if result[0] != 200:
                    time.sleep(0.5)  # a failed turn is already counted; do not spin on errors

    @contextmanager
    def running(self) -> Iterator[Load]:
        """Run the clients for the duration of the block; wait for their last replies."""
        threads = [threading.Thread(target=self._worker, args=(n,)) for n in range(self.workers)]
        for t in threads:
            t.start()
        try:
            yield self
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=180)

    def count(self) -> int:
        """Replies so far."""
        with self.lock:
            return len(self.results)

    def wait_for(self, n: int, timeout: float = 300) -> None:
        """Until n more replies arrived."""
        target = self.count() + n
        deadline = time.monotonic() + timeout
        while self.count() < target:
            assert time.monotonic() < deadline, f"load stalled at {self.count()} replies"
            time.sleep(0.5)

    def assert_none_lost(self) -> None:
        """Every request got a 200 with a transcript."""
        bad = [r for r in self.results if r[0] != 200 or "capital" not in r[1].lower()]
        assert self.results and not bad, (len(self.results), bad[:5])


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(2)
    raise AssertionError(f"{what} not within {timeout} s")


def _update_state(stack: SwarmStack) -> str:
    return stack.docker(
        "service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
        stack.service("stt"),
    ).strip()  # fmt: skip


def test_both_stt_replicas_serve_under_load(swarm_stack: SwarmStack):
    replicas = swarm_stack.healthy("stt")
    assert len(replicas) == 2, replicas
    before = {c: served(swarm_stack, c) for c in replicas}
    load = Load(swarm_stack)
    with load.running():
        load.wait_for(16)
    load.assert_none_lost()
    gained = {c: served(swarm_stack, c) - before[c] for c in replicas}
    # Least outstanding over two replicas: neither idles while the other queues.
    assert min(gained.values()) >= 3, gained


def test_killed_replica_loses_no_request_and_its_replacement_serves(swarm_stack: SwarmStack):
    victim, survivor = swarm_stack.healthy("stt")[:2]
    load = Load(swarm_stack)
    with load.running():
        load.wait_for(3)
        killed = time.monotonic()
        swarm_stack.docker("kill", victim)  # SIGKILL with requests in flight
        load.wait_for(6)
        # Swarm starts a new task; it joins once healthy and the orchestrator re-resolves.
        _wait(
            lambda: len([c for c in swarm_stack.healthy("stt") if c != victim]) == 2,
            300,
            "a healthy replacement replica",
        )
        swarm_stack.timings["kill_to_replacement_healthy_s"] = round(time.monotonic() - killed, 1)
        (new,) = [c for c in swarm_stack.healthy("stt") if c not in (victim, survivor)]
        start = served(swarm_stack, new)  # its self-check is not a transcription request
        _wait(lambda: served(swarm_stack, new) > start, 120, "traffic on the new replica")
        swarm_stack.timings["kill_to_replacement_serving_s"] = round(time.monotonic() - killed, 1)
    load.assert_none_lost()


def test_rolling_update_under_load_loses_no_request(swarm_stack: SwarmStack):
    old = set(swarm_stack.healthy("stt"))
    load = Load(swarm_stack)
    with load.running():
        load.wait_for(3)
        started = time.monotonic()
        # An env change is a new task spec: every replica is replaced, one at a time,
        # the new one healthy before the old one stops (order: start-first).
        swarm_stack.docker(
            "service", "update", "--detach", "--env-add", "LOG_LEVEL=INFO",
            swarm_stack.service("stt"),
        )  # fmt: skip
        _wait(lambda: _update_state(swarm_stack) == "completed", 600, "update completed")
        swarm_stack.timings["rolling_update_s"] = round(time.monotonic() - started, 1)
        load.wait_for(3)
    load.assert_none_lost()
    new = set(swarm_stack.healthy("stt"))
    assert len(new) == 2 and not (new & old), (old, new)


def test_failed_update_rolls_back_by_itself_without_losing_a_request(swarm_stack: SwarmStack):
    service = swarm_stack.service("stt")
    good_model = _env(swarm_stack, "STT_MODEL")
    load = Load(swarm_stack)
    with load.running():
        load.wait_for(3)
        started = time.monotonic()
        # A model path that does not exist: the new task stays live but never ready, its
        # healthcheck fails, swarm fails the update and rolls back (failure_action).
        swarm_stack.docker(
            "service", "update", "--detach", "--env-add", "STT_MODEL=/models/missing",
            "--health-start-period", "5s", "--health-interval", "3s", "--health-retries", "2",
            service,
        )  # fmt: skip
        _wait(lambda: _update_state(swarm_stack) == "rollback_completed", 600, "automatic rollback")
        swarm_stack.timings["failed_update_to_rolled_back_s"] = round(time.monotonic() - started, 1)
        load.wait_for(3)
    load.assert_none_lost()
    assert _env(swarm_stack, "STT_MODEL") == good_model
    _wait(lambda: len(swarm_stack.healthy("stt")) == 2, 300, "two healthy replicas again")


def _env(stack: SwarmStack, name: str) -> str:
    envs = stack.docker(
        "service", "inspect", "-f", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
        stack.service("stt"),
    )  # fmt: skip
    values = [e.split("=", 1)[1] for e in json.loads(envs) if e.startswith(f"{name}=")]
    assert values, name
    return str(values[-1])
