"""App factory: the kit's health/metrics app with the Gradio page mounted at /."""

from __future__ import annotations

import asyncio
import contextlib
import os

from fastapi import FastAPI

from services.kit import ServiceState, create_app
from services.kit.http import make_client
from services.testing_ui.client import OrchestratorClient
from services.testing_ui.settings import Settings

NAME = "testing-ui"


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
    client = OrchestratorClient(
        settings.orchestrator_url, make_client(settings.request_timeout_s), key
    )

    async def startup(state: ServiceState) -> None:
        state.resources["orchestrator"] = client
        state.readiness.details.update(
            orchestrator_url=client.base_url, orchestrator="not probed yet"
        )
        state.resources["watcher"] = asyncio.create_task(
            _watch_orchestrator(state, client, settings.probe_interval_s)
        )
        state.readiness.engine = "gradio"
        state.readiness.model = None
        state.readiness.ready = True

    async def shutdown(state: ServiceState) -> None:
        watcher = state.resources.pop("watcher", None)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await client.http.aclose()

    # Browsers cannot hold the mesh token: the page is protected by Gradio's login instead.
    app = create_app(
        NAME, settings, startup=startup, shutdown=shutdown, title="Testing UI", mesh_auth=False
    )
    blocks = build_blocks(client, settings)
    mounted: FastAPI = gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        ssr_mode=False,
        show_error=False,
        max_file_size=settings.max_upload_bytes,
        footer_links=[],
    )
    return mounted
