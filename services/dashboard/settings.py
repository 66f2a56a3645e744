"""Settings of the monitoring dashboard (env prefix DASHBOARD_)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, PositiveFloat
from pydantic_settings import SettingsConfigDict

from services.kit import ServiceSettings
from services.kit.settings import ListenPort


class Settings(ServiceSettings):
    """Which services to watch, where Prometheus is, how often to refresh."""

    model_config = SettingsConfigDict(env_prefix="DASHBOARD_")

    port: ListenPort = 8501
    """Listen port."""
    prometheus_url: str = Field(
        "http://prometheus:9090",
        validation_alias=AliasChoices("PROMETHEUS_URL", "DASHBOARD_PROMETHEUS_URL"),
    )
    """Prometheus server whose HTTP API feeds the charts."""
    services: str = ""
    """Services for the health grid as 'name=url,name=url'; empty = built from the *_URL variables
    below."""
    denoise_url: str = Field(
        "http://audio-preprocessor:9200", validation_alias=AliasChoices("DENOISE_URL")
    )
    """audio-preprocessor base URL (empty = not shown)."""
    stt_url: str = Field("http://stt:9000", validation_alias=AliasChoices("STT_URL"))
    """stt base URL."""
    llm_primary_url: str = Field(
        "http://llm-flan:8100", validation_alias=AliasChoices("LLM_PRIMARY_URL")
    )
    """llm-flan base URL."""
    tts_primary_url: str = Field(
        "http://tts-bark:7100", validation_alias=AliasChoices("TTS_PRIMARY_URL")
    )
    """tts-bark base URL."""
    tts_fallback_url: str = Field(
        "http://tts-piper:7000", validation_alias=AliasChoices("TTS_FALLBACK_URL")
    )
    """tts-piper base URL."""
    guardrails_url: str = Field(
        "http://guardrails:9300", validation_alias=AliasChoices("GUARDRAILS_URL")
    )
    """guardrails base URL."""
    orchestrator_url: str = Field(
        "http://orchestrator:8200", validation_alias=AliasChoices("ORCHESTRATOR_URL")
    )
    """orchestrator base URL."""
    testing_ui_url: str = "http://testing-ui:8080"
    """testing-ui base URL (empty = not shown)."""
    refresh_s: PositiveFloat = 5.0
    """Seconds between automatic refreshes."""
    timeout_s: PositiveFloat = 3.0
    """Timeout of each health probe and Prometheus query."""
    rate_window: str = Field("5m", pattern=r"^[0-9]+[smhd]$")
    """PromQL range for rate()/increase() and latency quantiles."""
    chart_minutes: int = Field(30, gt=0, le=1440)
    """Time span of the charts."""

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
