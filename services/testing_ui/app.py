"""App factory: the kit's health/metrics app with the Gradio page mounted at /."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.routing import Mount

from services.client import OrchestratorClient, RetryPolicy
from services.kit import ServiceState, create_app
from services.kit.http import make_client
from services.testing_ui.live import RELAY_PATH, SCRIPT_PATH, live_router
from services.testing_ui.settings import Settings

NAME = "testing-ui"
log = logging.getLogger("testing_ui")


def login_check(settings: Settings) -> Callable[[str, str], bool] | None:
    """Gradio's auth callable for UI_USERNAME / UI_PASSWORD, or None when no password is set."""
    secret = settings.password.get_secret_value() if settings.password else ""
    if not secret:
        return None
    user, password = settings.username.encode(), secret.encode()

    def check(username: str, given: str) -> bool:
        # Both compared in constant time, always both, so timing tells nothing.
        ok_user = hmac.compare_digest(username.encode(), user)
        ok_password = hmac.compare_digest(given.encode(), password)
        return ok_user and ok_password

    return check


def gradio_user(gradio_app: Any, ws: WebSocket) -> str | None:
    """The user Gradio's login cookie names on this handshake (Gradio's own lookup), or None."""
    cookie = gradio_app.cookie_id
    token = ws.cookies.get(f"access-token-{cookie}") or ws.cookies.get(
        f"access-token-unsecure-{cookie}"
    )
    user = gradio_app.tokens.get(token) if token else None
    return str(user) if user is not None else None


async def _watch_orchestrator(
    state: ServiceState, client: OrchestratorClient, every: float
) -> None:
    # The page serves even when the orchestrator is down, so reachability is a detail of
    # readiness, not a condition: the UI is where a tester sees that the mesh is broken.
    while True:
        state.readiness.details["orchestrator"] = await client.probe()
        await asyncio.sleep(every)


def build_app(settings: Settings | None = None) -> FastAPI:
    """Build the testing UI app."""
    settings = settings or Settings()
    # Gradio reads this at import time; the page must never phone home.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    from services.testing_ui.ui import build_blocks

    key = (
        settings.orchestrator_api_key.get_secret_value() if settings.orchestrator_api_key else None
    )
    http = make_client(settings.request_timeout_s)
    # One attempt: a tester clicking a button wants to see a failure now, not after backoff.
    client = OrchestratorClient(
        settings.orchestrator_url, api_key=key, http=http, retry=RetryPolicy(max_attempts=1)
    )

    auth = login_check(settings)

    watchers: list[asyncio.Task[None]] = []

    async def startup(state: ServiceState) -> None:
        if auth is None:
            log.warning("open: no UI_PASSWORD, the page has no login (development only)")
        state.readiness.details.update(
            orchestrator_url=client.base_url, orchestrator="not probed yet"
        )
        watchers.append(
            asyncio.create_task(_watch_orchestrator(state, client, settings.probe_interval_s))
        )
        state.readiness.engine = "gradio"
        state.readiness.model = None
        state.readiness.ready = True

    async def shutdown(state: ServiceState) -> None:
        while watchers:
            watcher = watchers.pop()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await http.aclose()

    # Browsers cannot hold the mesh token: the page is protected by Gradio's login instead.
    app = create_app(
        NAME, settings, startup=startup, shutdown=shutdown, title="Testing UI", mesh_auth=False
    )
    # The relay checks the same login cookie Gradio sets; Gradio's app exists only once mounted.
    gradio_apps: list[Any] = []

    def logged_in(ws: WebSocket) -> bool:
        return auth is None or bool(gradio_apps and gradio_user(gradio_apps[0], ws))

    router, _ = live_router(settings, logged_in)
    # Included before Gradio is mounted at "/", which would otherwise take these paths.
    app.include_router(router)
    blocks = build_blocks(client, settings, script=SCRIPT_PATH, relay=RELAY_PATH)
    mounted: FastAPI = gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        ssr_mode=False,
        show_error=False,
        max_file_size=settings.max_upload_bytes,
        footer_links=[],
        auth=auth,
    )
    gradio_apps.extend(r.app for r in mounted.routes if isinstance(r, Mount))
    return mounted
