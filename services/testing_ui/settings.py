"""Settings of the testing UI (env prefix UI_)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings

VOICES = ("alloy", "echo", "fable", "onyx", "nova", "shimmer")


class Settings(ServiceSettings):
    """Where the orchestrator is and how long to wait for it."""

    model_config = SettingsConfigDict(env_prefix="UI_", extra="ignore", populate_by_name=True)

    port: int = Field(8080, validation_alias=AliasChoices("PORT"), description="Listen port.")
    orchestrator_url: str = Field(
        "http://orchestrator:8200",
        validation_alias=AliasChoices("ORCHESTRATOR_URL", "UI_ORCHESTRATOR_URL"),
        description="Base URL of the orchestrator; the UI talks to nothing else.",
    )
    orchestrator_api_key: SecretStr | None = Field(
        None,
        description="Bearer key sent to the orchestrator when it requires one; held by the "
        "server process, never sent to the browser.",
    )
    username: str = Field(
        "tester", min_length=1, description="Login name for the page when UI_PASSWORD is set."
    )
    password: SecretStr | None = Field(
        None,
        description="When set, the page asks for UI_USERNAME and this password (Gradio's own "
        "login) before it serves anything but health and metrics; empty: no login "
        "(development only).",
    )
    request_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Longest wait for one orchestrator turn (CPU voice turns are slow).",
    )
    probe_interval_s: float = Field(
        15.0, gt=0, description="How often /health/ready re-checks that the orchestrator answers."
    )
    max_text_chars: int = Field(
        4000, gt=0, description="Longest typed question sent; longer input is refused in the page."
    )
    max_upload_bytes: int = Field(
        20_000_000, gt=0, description="Largest audio file the page accepts for upload."
    )
    default_voice: str = Field(
        "alloy", description="Voice preselected in the page (an OpenAI voice name)."
    )
    default_pipeline: str = Field(
        "", description="Pipeline preselected when the orchestrator does not name an active one."
    )
