"""Session history in a real redis-server: shared by two orchestrators, isolated, expiring."""

from __future__ import annotations

import time

import httpx
import pytest

from testkit.helpers import free_port, redis_server
from testkit.orchestrator import all_urls, config_doc, orchestrator, write_config

pytestmark = [
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


def _ask(base: str, text: str, sid: str) -> str:
    r = httpx.post(
        base + "/mcp/transcript",
        json={"transcript": text, "pipeline": "text", "session_id": sid},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["response"])


def test_two_replicas_share_sessions_without_mixing_them(fakes, tmp_path, redis_url):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with (
        orchestrator(path, redis_url=redis_url, session_ttl_s=60) as one,
        orchestrator(path, redis_url=redis_url, session_ttl_s=60) as two,
    ):
        assert httpx.get(one + "/health/ready").json()["history"] == "redis"
        _ask(one, "i like tea", "r-a")
        _ask(two, "i like coffee", "r-b")
        assert _ask(two, "what do i like", "r-a") == ("[primary] seen: i like tea | what do i like")
        assert _ask(one, "what do i like", "r-b") == (
            "[primary] seen: i like coffee | what do i like"
        )
    import redis

    client = redis.Redis.from_url(redis_url)
    assert 0 < client.ttl("orch:session:open|r-a") <= 60
    assert client.llen("orch:session:open|r-a") == 4
    client.close()


def test_unreachable_redis_keeps_the_service_not_ready(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    from services.orchestrator.app import build_app
    from services.orchestrator.settings import Settings
    from testkit.helpers import run_server

    settings = Settings(
        pipelines_path=str(path), reload_poll_s=0, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    with run_server(build_app(settings), ready_path="/health/live") as base:
        for _ in range(100):
            r = httpx.get(base + "/health/ready")
            if "startup failed" in r.text:
                break
            time.sleep(0.05)
        assert r.status_code == 503 and "ConnectionError" in r.json()["reason"]
