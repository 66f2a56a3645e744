"""The kit's mesh token: every stage route but health and metrics needs it when it is set."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets
from fastapi import APIRouter, Request, WebSocket

from services.kit import ServiceSettings, create_app
from testkit.helpers import run_server


def _app(mesh_token: str, mesh_auth: bool = True):
    router = APIRouter()

    @router.post("/work")
    async def work(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @router.websocket("/stream")
    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("hello")
        await ws.close()

    settings = ServiceSettings(log_json=False, mesh_token=mesh_token, admin_api_keys="adm")
    return create_app("demo", settings, routers=[router], mesh_auth=mesh_auth)


def test_routes_need_the_token_health_and_metrics_do_not() -> None:
    with run_server(_app("tok")) as base:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic tok"}):
            r = httpx.post(base + "/work", content=b"x" * 10, headers=headers)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
            assert r.json()["error"]["code"] == "invalid_mesh_token"
        ok = httpx.post(base + "/work", content=b"x" * 10, headers={"Authorization": "Bearer tok"})
        assert ok.json() == {"bytes": 10}
        # An admin key is let in too (an operator calling a stage directly).
        assert httpx.post(base + "/work", headers={"Authorization": "Bearer adm"}).is_success
        for path in ("/health/live", "/health/ready", "/health", "/metrics"):
            assert httpx.get(base + path).status_code == 200, path
        metrics = httpx.get(base + "/metrics").text
        assert 'route="unauthenticated"' in metrics  # refusals are counted, on one label


def test_websocket_needs_the_token() -> None:
    with run_server(_app("tok")) as base:
        url = base.replace("http", "ws") + "/stream"

        async def talk(headers: dict[str, str]) -> str:
            async with websockets.connect(url, additional_headers=headers) as ws:
                return str(await ws.recv())

        with pytest.raises(websockets.InvalidStatus) as refused:
            asyncio.run(talk({}))
        assert refused.value.response.status_code == 403
        assert asyncio.run(talk({"Authorization": "Bearer tok"})) == "hello"


def test_no_token_is_open_and_apps_may_opt_out() -> None:
    with run_server(_app("")) as base:
        assert httpx.post(base + "/work").is_success
    with run_server(_app("tok", mesh_auth=False)) as base:  # orchestrator, testing UI
        assert httpx.post(base + "/work").is_success
