"""Base settings every service's own settings class extends."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings shared by every service; subclasses set their own `env_prefix`."""

    model_config = SettingsConfigDict(extra="ignore", env_file=None, populate_by_name=True)

    host: str = Field("0.0.0.0", validation_alias=AliasChoices("HOST"), description="Bind address.")
    port: int = Field(8000, validation_alias=AliasChoices("PORT"), description="Listen port.")
    log_level: str = Field(
        "INFO", validation_alias=AliasChoices("LOG_LEVEL"), description="Root log level."
    )
    log_json: bool = Field(
        True, validation_alias=AliasChoices("LOG_JSON"), description="Emit JSON log lines."
    )
    max_body_bytes: int = Field(
        26_214_400,
        validation_alias=AliasChoices("MAX_BODY_BYTES"),
        description="Largest request body accepted (413 beyond); services may set lower.",
    )
    mesh_token: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("MESH_TOKEN"),
        description="Mesh-internal bearer token: when set, a stage service refuses every "
        "route but /health/* and /metrics without 'Authorization: Bearer <MESH_TOKEN>' (401); "
        "callers (orchestrator, tts-bark's Piper fallback) send it. Empty: open (development).",
    )
    admin_api_keys: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("ADMIN_API_KEYS"),
        description="Comma-separated admin keys for routes that expose stored data or change "
        "configuration (orchestrator /admin/*, guardrails /escalations). Empty: refused (403).",
    )
