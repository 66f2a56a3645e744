"""Base settings every service's own settings class extends, and the field kinds they share.

A field's docstring is its description (`use_attribute_docstrings`). Every class sets
`populate_by_name`, so a field with an unprefixed alias (`PORT`, `WYOMING_PORT`) is also read
from the service's own `<PREFIX><NAME>` (`STT_PORT`, `STT_WYOMING_PORT`), the alias first.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Field kinds with an unprefixed alias: a service writes `port: ListenPort = 9000` and a docstring
# (no description here: an Annotated description would win over the service's docstring). Plain
# bounds use pydantic's own types (PositiveInt, NonNegativeInt, PositiveFloat, NonNegativeFloat).
ListenPort = Annotated[int, Field(validation_alias=AliasChoices("PORT"))]
BodyLimit = Annotated[int, Field(validation_alias=AliasChoices("MAX_BODY_BYTES"))]
WyomingPort = Annotated[int, Field(ge=0, validation_alias=AliasChoices("WYOMING_PORT"))]


class ServiceSettings(BaseSettings):
    """Settings shared by every service; subclasses set their own `env_prefix`."""

    model_config = SettingsConfigDict(
        extra="ignore", env_file=None, populate_by_name=True, use_attribute_docstrings=True
    )

    host: str = Field("0.0.0.0", validation_alias=AliasChoices("HOST"))
    """Bind address."""
    port: ListenPort = 8000
    """Listen port."""
    log_level: str = Field("INFO", validation_alias=AliasChoices("LOG_LEVEL"))
    """Root log level."""
    log_json: bool = Field(True, validation_alias=AliasChoices("LOG_JSON"))
    """Emit JSON log lines."""
    max_body_bytes: BodyLimit = 26_214_400
    """Largest request body accepted (413 beyond); services may set lower."""
    mesh_token: SecretStr = Field(SecretStr(""), validation_alias=AliasChoices("MESH_TOKEN"))
    """Mesh-internal bearer token: when set, a stage service refuses every route but /health/* and
    /metrics without 'Authorization: Bearer <MESH_TOKEN>' (401); callers (orchestrator,
    tts-bark's Piper fallback) send it. Empty: open (development)."""
    admin_api_keys: SecretStr = Field(
        SecretStr(""), validation_alias=AliasChoices("ADMIN_API_KEYS")
    )
    """Comma-separated admin keys for routes that expose stored data or change configuration
    (orchestrator /admin/*, guardrails /escalations). Empty: refused (403)."""


class WyomingSettings(BaseModel):
    """The Wyoming endpoint (Home Assistant) served beside the HTTP API.

    Mixed into a service's Settings, which sets its own port (`wyoming_port: WyomingPort =
    10300`). A plain model, not BaseSettings: it must not bring BaseSettings' own config
    (extra="forbid") along. Code that starts the endpoint can take a `WyomingSettings`.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    wyoming_enabled: bool = True
    """Serve the Wyoming protocol (Home Assistant) beside the HTTP API."""
    wyoming_host: str = "0.0.0.0"
    """Bind address of the Wyoming endpoint."""
    wyoming_port: WyomingPort = 0
    """Wyoming TCP port; 0 = any free port."""
    wyoming_allow: str = "private"
    """Comma-separated client networks (CIDR, or `private`: loopback and the private ranges of a
    home LAN or the compose network); empty = everyone. Wyoming carries no key, so by default
    only private-network addresses are served."""
