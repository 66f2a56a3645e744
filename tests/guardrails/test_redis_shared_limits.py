"""Rate limits shared by two real server processes through a real redis-server."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import httpx
import pytest

from testkit.helpers import free_port, redis_server, run_process

pytestmark = [
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """Redis for the module's shared-limit test."""
    with redis_server() as url:
        yield url


@pytest.fixture(scope="module")
def two_servers(redis_url: str) -> Iterator[list[str]]:
    """Two `python -m services.guardrails` processes sharing one Redis for their limits."""
    with contextlib.ExitStack() as stack:
        urls = []
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
            url = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, "-m", "services.guardrails"]
            stack.enter_context(run_process(cmd, url + "/health/ready", env=env))
            urls.append(url)
        yield urls


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
    from testkit.guardrails import make_settings
    from testkit.helpers import run_server

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
