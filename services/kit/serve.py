"""Run a service app under uvicorn with the kit's logging."""

from __future__ import annotations

from fastapi import FastAPI

from services.kit.logs import configure_logging
from services.kit.settings import ServiceSettings


def serve(app: FastAPI, name: str, settings: ServiceSettings) -> None:
    """Serve `app` on the settings' host and port until stopped."""
    import uvicorn

    configure_logging(name, settings.log_level, settings.log_json)
    app.state.service.freeze_heap_when_started = True
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
