"""Rate limits shared by two real server processes through a real redis-server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import ROOT, free_port, redis_server

pytestmark = [
    pytest.mark.slow,
]


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {timeout}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """Redis for the module's shared-limit test."""
    with redis_server() as url:
        yield url


@pytest.fixture(scope="module")
def two_servers(redis_url: str) -> Iterator[list[str]]:
    """Two `python -m services.guardrails` processes sharing one Redis for their limits."""
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for _ in range(2):
            port = free_port()
            env = {
                **os.environ,
                "PORT": str(port),
                "HOST": "127.0.0.1",
                "LOG_JSON": "false",
                "REDIS_URL": redis_url,
                "GUARD_RATE_LIMIT": "5/minute",
                "GUARD_TOXICITY_BACKEND": "none",
                "GUARD_ESCALATION_DB": ":memory:",
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "services.guardrails"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            _wait(url + "/health/ready", proc)
        yield urls
    finally:
        for proc in procs:
            _stop(proc)


def test_limit_is_shared_across_processes(two_servers: list[str]) -> None:
    a, b = two_servers
    assert httpx.get(a + "/health/ready").json()["rate_limit_storage"] == "redis"
    codes = []
    for i in range(5):
        url = a if i % 2 == 0 else b
        codes.append(httpx.post(url + "/validate/input", json={"text": "hello"}).status_code)
    assert codes == [200] * 5
    # Each process alone has seen at most 3 requests: only shared counts refuse these.
    for url in (a, b):
        r = httpx.post(url + "/validate/input", json={"text": "hello"})
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1


def test_redis_outage_is_503_not_500() -> None:
    from services.guardrails.app import build_app
    from tests.guardrails.conftest import make_settings
    from tests.helpers import run_server

    with redis_server() as redis_url:
        settings = make_settings(
            redis_url=redis_url, rate_limit="50/minute", toxicity_backend="none"
        )
        with run_server(build_app(settings), timeout=30) as url:
            assert httpx.post(url + "/validate/input", json={"text": "hi"}).status_code == 200
            import redis

            with contextlib.suppress(redis.exceptions.ConnectionError):
                redis.Redis.from_url(redis_url).shutdown(nosave=True)  # the outage
            r = httpx.post(url + "/validate/input", json={"text": "hi"})
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "rate_limit_storage_unavailable"
