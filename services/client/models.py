"""What the orchestrator answers, parsed into typed records (optional fields may be missing)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from services.client.errors import OrchestratorError


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class StageRecord:
    """One pipeline stage as the orchestrator reports it in `stages[]`."""

    stage: str
    provider: str | None
    status: str
    latency_ms: float | None
    attempts: int | None = None
    error: str | None = None
    tried: tuple[str, ...] = ()  # providers tried in order (only when not first-time ok)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StageRecord:
        """Parse one `stages[]` entry."""
        latency = raw.get("latency_ms")
        attempts = raw.get("attempts")
        tried = raw.get("tried")
        return cls(
            stage=str(raw.get("stage", "?")),
            provider=_opt_str(raw.get("provider")),
            status=str(raw.get("status", "?")),
            latency_ms=float(latency) if isinstance(latency, int | float) else None,
            attempts=int(attempts) if isinstance(attempts, int) else None,
            error=_opt_str(raw.get("error")),
            tried=tuple(
                str(t["provider"])
                for t in (tried if isinstance(tried, list) else [])
                if isinstance(t, dict) and t.get("provider")
            ),
        )


@dataclass(frozen=True)
class TurnResult:
    """One answered turn: texts, optional reply audio (WAV) and the stage records."""

    session_id: str
    transcript: str | None
    response: str
    pipeline: str | None
    blocked: bool
    audio_wav: bytes | None
    stages: list[StageRecord] = field(default_factory=list)
    block_reason: str | None = None
    attempts: int = 1
    request_id: str = ""

    @classmethod
    def from_json(
        cls,
        body: dict[str, Any],
        *,
        session_id: str,
        attempts: int = 1,
        request_id: str = "",
        transcript: str | None = None,
    ) -> TurnResult:
        """Parse a /v1/voice or /mcp/transcript answer (`transcript` if the body has none)."""
        if "response" not in body:
            raise OrchestratorError("the orchestrator answered without a 'response' field")
        stages = body.get("stages") or []
        got_transcript = body.get("transcript", transcript)
        return cls(
            session_id=str(body.get("session_id") or session_id),
            transcript=_opt_str(got_transcript),
            response=str(body.get("response") or ""),
            pipeline=_opt_str(body.get("pipeline")),
            blocked=bool(body.get("blocked", False)),
            block_reason=_opt_str(body.get("block_reason")),
            audio_wav=decode_audio_field(body.get("audio")),
            stages=[StageRecord.from_json(s) for s in stages if isinstance(s, dict)],
            attempts=attempts,
            request_id=request_id,
        )


def decode_audio_field(value: object) -> bytes | None:
    """The reply audio of a turn (base64, optionally as a data: URL), or None when absent."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("data:"):
        value = value.split(",", 1)[-1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OrchestratorError("the orchestrator sent reply audio that is not base64") from exc


@dataclass
class PipelineCatalog:
    """Pipelines the orchestrator offers and each stage's providers in order of preference."""

    active: str | None = None
    names: list[str] = field(default_factory=list)
    providers: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def first_provider(self, pipeline: str | None, stage: str) -> str | None:
        """The preferred provider of a stage, if the catalog knows it."""
        names = self.providers.get(pipeline or self.active or "", {}).get(stage)
        return names[0] if names else None


def _stage_list(raw: Any) -> dict[str, list[str]]:
    # A stage may be {"stage": s, "providers": [...]} or a bare stage name.
    out: dict[str, list[str]] = {}
    if isinstance(raw, dict):
        raw = raw.get("stages", [])
    if not isinstance(raw, list):
        return out
    for item in raw:
        if isinstance(item, str):
            out[item] = []
        elif isinstance(item, dict) and item.get("stage"):
            provs = item.get("providers") or []
            out[str(item["stage"])] = [
                str(p.get("name") if isinstance(p, dict) else p) for p in provs if p
            ]
    return out


def parse_catalog(body: Any) -> PipelineCatalog:
    """Read /v1/pipelines tolerantly: a list of {name, stages}, a name→stages map, or names."""
    cat = PipelineCatalog()
    if not isinstance(body, dict):
        return cat
    active = body.get("active") or body.get("active_pipeline")
    cat.active = str(active) if active else None
    pipes = body.get("pipelines", [])
    if isinstance(pipes, dict):
        for name, stages in pipes.items():
            cat.names.append(str(name))
            cat.providers[str(name)] = _stage_list(stages)
    elif isinstance(pipes, list):
        for item in pipes:
            if isinstance(item, str):
                cat.names.append(item)
            elif isinstance(item, dict) and item.get("name"):
                name = str(item["name"])
                cat.names.append(name)
                cat.providers[name] = _stage_list(item.get("stages", []))
    if cat.active and cat.active not in cat.names:
        cat.names.insert(0, cat.active)
    return cat
