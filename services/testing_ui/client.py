"""The only thing the UI talks to: the orchestrator's HTTP API."""

from __future__ import annotations

import base64
import binascii
import mimetypes
from dataclasses import dataclass, field
from typing import Any

import httpx


class OrchestratorError(Exception):
    """A turn failed: the orchestrator refused it, failed, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class TurnResult:
    """One answered turn, as the orchestrator reported it."""

    response: str
    session_id: str | None
    pipeline: str | None
    blocked: bool
    stages: list[dict[str, Any]]
    block_reason: str | None = None
    transcript: str | None = None
    audio_wav: bytes | None = None


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


def error_message(response: httpx.Response) -> str:
    """The human message from an error response (OpenAI envelope, FastAPI detail or raw text)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if body.get("detail"):
            return str(body["detail"])
    return str(body)[:300]


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


def _decode_audio_field(value: Any) -> bytes | None:
    if not value or not isinstance(value, str):
        return None
    if value.startswith("data:"):
        value = value.split(",", 1)[-1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OrchestratorError("the orchestrator sent reply audio that is not base64") from exc


def _turn(body: Any) -> TurnResult:
    if not isinstance(body, dict) or "response" not in body:
        raise OrchestratorError("the orchestrator answered without a 'response' field")
    stages = body.get("stages") or []
    return TurnResult(
        response=str(body.get("response") or ""),
        session_id=body.get("session_id"),
        pipeline=body.get("pipeline"),
        blocked=bool(body.get("blocked", False)),
        block_reason=body.get("block_reason"),
        stages=[s for s in stages if isinstance(s, dict)],
        transcript=body.get("transcript"),
        audio_wav=_decode_audio_field(body.get("audio")),
    )


class OrchestratorClient:
    """Calls the orchestrator and turns every failure into an OrchestratorError."""

    def __init__(self, base_url: str, http: httpx.AsyncClient, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.base_url + path
        try:
            r = await self.http.request(method, url, headers=self._headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise OrchestratorError(
                f"the orchestrator at {self.base_url} did not answer in time"
            ) from exc
        except httpx.HTTPError as exc:
            raise OrchestratorError(
                f"the orchestrator at {self.base_url} is unreachable ({type(exc).__name__})"
            ) from exc
        if r.status_code >= 400:
            raise OrchestratorError(
                f"orchestrator error {r.status_code}: {error_message(r)}", status=r.status_code
            )
        try:
            return r.json()
        except ValueError as exc:
            raise OrchestratorError(
                "the orchestrator answered with something that is not JSON"
            ) from exc

    async def pipelines(self) -> PipelineCatalog:
        """GET /v1/pipelines."""
        return parse_catalog(await self._request("GET", "/v1/pipelines"))

    async def text_turn(self, text: str, session_id: str, pipeline: str | None) -> TurnResult:
        """POST /mcp/transcript: a typed question."""
        # `audio: true` asks the orchestrator to run the pipeline's tts stage for a text turn too.
        payload: dict[str, Any] = {"transcript": text, "session_id": session_id, "audio": True}
        if pipeline:
            payload["pipeline"] = pipeline
        return _turn(await self._request("POST", "/mcp/transcript", json=payload))

    async def voice_turn(
        self, audio: bytes, filename: str, session_id: str, pipeline: str | None, voice: str | None
    ) -> TurnResult:
        """POST /v1/voice: spoken or uploaded audio."""
        data = {"session_id": session_id}
        if pipeline:
            data["pipeline"] = pipeline
        if voice:
            data["voice"] = voice
        media = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        files = {"file": (filename, audio, media)}
        return _turn(await self._request("POST", "/v1/voice", data=data, files=files))

    async def probe(self) -> str:
        """'reachable' when the orchestrator answers its liveness probe, else why not."""
        try:
            r = await self.http.get(self.base_url + "/health/live", timeout=5.0)
        except httpx.HTTPError as exc:
            return f"unreachable ({type(exc).__name__})"
        return "reachable" if r.status_code == 200 else f"unhealthy (HTTP {r.status_code})"
