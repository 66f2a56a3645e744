"""Settings of the monitoring dashboard (env prefix DASHBOARD_)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings


class Settings(ServiceSettings):
    """Which services to watch, where Prometheus is, how often to refresh."""

    model_config = SettingsConfigDict(
        env_prefix="DASHBOARD_", extra="ignore", populate_by_name=True
    )

    port: int = Field(8501, validation_alias=AliasChoices("PORT"), description="Listen port.")
    prometheus_url: str = Field(
        "http://prometheus:9090",
        validation_alias=AliasChoices("PROMETHEUS_URL", "DASHBOARD_PROMETHEUS_URL"),
        description="Prometheus server whose HTTP API feeds the charts.",
    )
    services: str = Field(
        "",
        description="Services for the health grid as 'name=url,name=url'; "
        "empty = built from the *_URL variables below.",
    )
    denoise_url: str = Field(
        "http://audio-preprocessor:9200",
        validation_alias=AliasChoices("DENOISE_URL"),
        description="audio-preprocessor base URL (empty = not shown).",
    )
    stt_url: str = Field(
        "http://stt:9000", validation_alias=AliasChoices("STT_URL"), description="stt base URL."
    )
    llm_primary_url: str = Field(
        "http://llm-flan:8100",
        validation_alias=AliasChoices("LLM_PRIMARY_URL"),
        description="llm-flan base URL.",
    )
    tts_primary_url: str = Field(
        "http://tts-bark:7100",
        validation_alias=AliasChoices("TTS_PRIMARY_URL"),
        description="tts-bark base URL.",
    )
    tts_fallback_url: str = Field(
        "http://tts-piper:7000",
        validation_alias=AliasChoices("TTS_FALLBACK_URL"),
        description="tts-piper base URL.",
    )
    guardrails_url: str = Field(
        "http://guardrails:9300",
        validation_alias=AliasChoices("GUARDRAILS_URL"),
        description="guardrails base URL.",
    )
    orchestrator_url: str = Field(
        "http://orchestrator:8200",
        validation_alias=AliasChoices("ORCHESTRATOR_URL"),
        description="orchestrator base URL.",
    )
    testing_ui_url: str = Field(
        "http://testing-ui:8080", description="testing-ui base URL (empty = not shown)."
    )
    refresh_s: float = Field(5.0, gt=0, description="Seconds between automatic refreshes.")
    timeout_s: float = Field(
        3.0, gt=0, description="Timeout of each health probe and Prometheus query."
    )
    rate_window: str = Field(
        "5m",
        pattern=r"^[0-9]+[smhd]$",
        description="PromQL range for rate()/increase() and latency quantiles.",
    )
    chart_minutes: int = Field(30, gt=0, le=1440, description="Time span of the charts.")

    def service_urls(self) -> dict[str, str]:
        """The health grid's services, name → base URL."""
        if self.services.strip():
            return parse_services(self.services)
        pairs = {
            "audio-preprocessor": self.denoise_url,
            "stt": self.stt_url,
            "llm-flan": self.llm_primary_url,
            "tts-bark": self.tts_primary_url,
            "tts-piper": self.tts_fallback_url,
            "guardrails": self.guardrails_url,
            "orchestrator": self.orchestrator_url,
            "testing-ui": self.testing_ui_url,
        }
        return {name: url.rstrip("/") for name, url in pairs.items() if url.strip()}


def parse_services(spec: str) -> dict[str, str]:
    """Parse 'name=url,name=url' (whitespace and trailing commas tolerated)."""
    out: dict[str, str] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, url = part.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ValueError(f"DASHBOARD_SERVICES entry {part!r} is not 'name=url'")
        out[name.strip()] = url.strip().rstrip("/")
    return out
