"""UI and dashboard test support: Chromium flags, screenshots, polling, a small kit service."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, FastAPI

from services.kit import ServiceSettings, create_app
from testkit.helpers import ROOT

ARTIFACTS = ROOT / "artifacts" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# The orchestrator key the live-mode tests configure: the UI's server holds it, the page never.
LIVE_KEY = "orch-live-key-7f3a"
# Chromium's fake microphone: permission granted, the fake device reading a WAV file
# (`%noloop`: once, then silence) — add `--use-file-for-fake-audio-capture=<wav>%noloop`.
FAKE_MIC_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def live_ws(base: str, **query: str) -> str:
    """The testing UI's live relay URL for an http base."""
    suffix = f"?{urlencode(query)}" if query else ""
    return base.replace("http://", "ws://") + "/live/realtime" + suffix


async def next_event(
    ws: Any, kind: str, seen: list[dict[str, Any]] | None = None, within_s: float = 30.0
) -> dict[str, Any]:
    """Read a websockets connection's JSON events until one of type `kind`."""
    async with asyncio.timeout(within_s):
        while True:
            event: dict[str, Any] = json.loads(await ws.recv())
            if seen is not None:
                seen.append(event)
            if event["type"] == kind:
                return event


def login_cookie(base: str, username: str, password: str) -> str:
    """A Cookie header carrying Gradio's login token for the testing UI at `base`."""
    response = httpx.post(
        base + "/login", data={"username": username, "password": password}, timeout=10
    )
    response.raise_for_status()
    return "; ".join(f"{k}={v}" for k, v in response.cookies.items())


def save_screenshot(page: Any, name: str) -> Path:
    """Screenshot into artifacts/; also into docs/screenshots/ when REFRESH_SCREENSHOTS=1."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    # A test run must not rewrite tracked files: the docs' copies change only on purpose.
    if os.environ.get("REFRESH_SCREENSHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SHOTS / f"{name}.png")
    return path


def build_demo_service() -> FastAPI:
    """A small real kit service with one route, for traffic Prometheus can count."""
    router = APIRouter()

    @router.get("/work")
    async def work() -> dict[str, str]:
        return {"done": "yes"}

    return create_app("demo", ServiceSettings(), routers=[router])


def wait_for_targets(prom_url: str, jobs: set[str], timeout: float = 60.0) -> None:
    """Poll /api/v1/targets until every job's target has been scraped successfully."""
    deadline = time.monotonic() + timeout
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            data = httpx.get(prom_url + "/api/v1/targets", timeout=2).json()["data"]
            health = {t["labels"]["job"]: t["health"] for t in data["activeTargets"]}
            if all(health.get(j) == "up" for j in jobs):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"targets not up in {timeout} s: {health}")


def wait_for(
    predicate: Any, timeout: float = 30.0, interval: float = 0.5, what: str = "condition"
) -> Any:
    """Poll `predicate` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def value(page: Any, elem_id: str) -> str:
    """The text of a Gradio textbox."""
    return str(page.locator(f"#{elem_id} textarea").input_value())


def wait_value(page: Any, elem_id: str, timeout_ms: int = 30_000) -> str:
    """A Gradio textbox's text once it is not empty."""
    page.wait_for_function(
        "id => { const t = document.querySelector(`#${id} textarea`); return t && t.value !== '' }",
        arg=elem_id,
        timeout=timeout_ms,
    )
    return value(page, elem_id)


def tables(page: Any) -> list[list[list[str]]]:
    """Every HTML table on the page as rows of cell texts."""
    out: list[list[list[str]]] = []
    for table in page.locator("table").all():
        rows = table.locator("tr").all()
        out.append([[c.strip() for c in r.locator("th, td").all_inner_texts()] for r in rows])
    return out
