"""Settings of the testing UI (env prefix UI_)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, PositiveFloat, PositiveInt, SecretStr
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings
from services.kit.settings import ListenPort

VOICES = ("alloy", "echo", "fable", "onyx", "nova", "shimmer")


class Settings(ServiceSettings):
    """Where the orchestrator is and how long to wait for it."""

    model_config = SettingsConfigDict(env_prefix="UI_")

    port: ListenPort = 8080
    """Listen port."""
    orchestrator_url: str = Field(
        "http://orchestrator:8200",
        validation_alias=AliasChoices("ORCHESTRATOR_URL", "UI_ORCHESTRATOR_URL"),
    )
    """Base URL of the orchestrator; the UI talks to nothing else."""
    orchestrator_api_key: SecretStr | None = None
    """Bearer key sent to the orchestrator when it requires one; held by the server process, never
    sent to the browser."""
    username: str = Field("tester", min_length=1)
    """Login name for the page when UI_PASSWORD is set."""
    password: SecretStr | None = None
    """When set, the page asks for UI_USERNAME and this password (Gradio's own login) before it
    serves anything but health and metrics; empty: no login (development only)."""
    request_timeout_s: PositiveFloat = 120.0
    """Longest wait for one orchestrator turn (CPU voice turns are slow)."""
    probe_interval_s: PositiveFloat = 15.0
    """How often /health/ready re-checks that the orchestrator answers."""
    max_text_chars: PositiveInt = 4000
    """Longest typed question sent; longer input is refused in the page."""
    max_upload_bytes: PositiveInt = 20_000_000
    """Largest audio file the page accepts for upload."""
    default_voice: str = "alloy"
    """Voice preselected in the page (an OpenAI voice name)."""
    default_pipeline: str = ""
    """Pipeline preselected when the orchestrator does not name an active one."""
    live_max_sessions: PositiveInt = 4
    """Live sessions this UI relays at once; one more gets an `error` event and is closed."""
    live_max_message_bytes: PositiveInt = 262_144
    """Largest WebSocket message relayed either way (a 100 ms audio append is ~6.5 KB)."""
