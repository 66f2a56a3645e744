"""A minimal kit service the runner tests start as a real process."""

from __future__ import annotations

import asyncio

from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings, ServiceState, create_app
from services.kit.serve import serve


class DemoSettings(ServiceSettings):
    """Settings of the demo service."""

    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore", populate_by_name=True)
    load_seconds: float = 0.5
    peer_url: str = ""


async def _load(state: ServiceState) -> None:
    settings = state.settings
    assert isinstance(settings, DemoSettings)
    await asyncio.sleep(settings.load_seconds)
    state.readiness.ready = True
    state.readiness.engine = "demo"
    state.readiness.model = settings.peer_url


if __name__ == "__main__":
    s = DemoSettings()
    serve(create_app("demo", s, startup=_load), "demo", s)
