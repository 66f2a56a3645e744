"""Async HTTP client for the orchestrator: voice and text turns, pipelines, liveness."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from services.client.errors import OrchestratorError, OrchestratorUnavailable, parse_error_text
from services.client.models import PipelineCatalog, TurnResult, parse_catalog

log = logging.getLogger("client.orchestrator")

# Statuses that mean the orchestrator refused the request before running any stage, so
# sending it again cannot create a second conversation turn.
RETRYABLE_STATUSES = frozenset({429, 503})
REQUEST_ID_HEADER = "X-Request-ID"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for requests the orchestrator did not process."""

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt `attempt + 1`; honours Retry-After up to the cap."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay_s)
        backoff = min(self.base_delay_s * (2 ** (attempt - 1)), self.max_delay_s)
        # Full jitter so many clients retrying at once do not hit the server in lockstep.
        return random.uniform(backoff / 2, backoff)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise OrchestratorError(
            f"the orchestrator answered {response.status_code} with content that is not JSON"
        ) from exc
    if not isinstance(body, dict):
        raise OrchestratorError("the orchestrator answered with unexpected JSON")
    return body


class OrchestratorClient:
    """Talks to one orchestrator; retries only what the orchestrator cannot have processed.

    Every attempt of one request carries the same X-Request-ID, so the orchestrator's logs tie
    the attempts together. The orchestrator does not de-duplicate requests: safety against a
    duplicate turn comes from retrying only connect failures, 429 and 503 (refused before any
    stage ran), never a read timeout or another error.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.retry = retry or RetryPolicy()
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> OrchestratorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _headers(self, request_id: str) -> dict[str, str]:
        headers = {REQUEST_ID_HEADER: request_id}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    async def _send(
        self, method: str, path: str, request_id: str, **kwargs: Any
    ) -> tuple[httpx.Response, int]:
        """Send with retries; returns the successful response and the attempts it took."""
        url = self.base_url + path
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            status: int | None = None
            try:
                response = await self._http.request(
                    method, url, headers=self._headers(request_id), **kwargs
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The request never reached the server, so a retry cannot duplicate the turn.
                reason = f"cannot reach the orchestrator at {self.base_url}: {type(exc).__name__}"
            except httpx.TimeoutException as exc:
                # Sent but unanswered: the turn may have run, so retrying could duplicate it.
                raise OrchestratorError(
                    f"the orchestrator at {self.base_url} did not answer in time "
                    f"({type(exc).__name__}); not retried to avoid a duplicate turn",
                    attempts=attempt,
                ) from exc
            except httpx.HTTPError as exc:
                raise OrchestratorError(
                    f"request to the orchestrator failed: {type(exc).__name__}: {exc}",
                    attempts=attempt,
                ) from exc
            else:
                if response.status_code < 400:
                    return response, attempt
                status = response.status_code
                detail = parse_error_text(response.text, response.reason_phrase)
                reason = f"orchestrator error {status}: {detail.message}"
                if status not in RETRYABLE_STATUSES:
                    raise OrchestratorError(
                        reason, status=status, code=detail.code, attempts=attempt
                    )
                retry_after = _retry_after(response)
            if attempt >= self.retry.max_attempts:
                tries = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
                raise OrchestratorUnavailable(
                    reason + tries, status=status, attempts=attempt, retryable=True
                )
            delay = self.retry.delay(attempt, retry_after)
            log.warning(
                "orchestrator call will be retried",
                extra={"path": path, "attempt": attempt, "status": status, "delay_s": delay},
            )
            await asyncio.sleep(delay)

    async def voice_turn(
        self,
        audio: bytes,
        *,
        session_id: str,
        pipeline: str | None = None,
        voice: str | None = None,
        filename: str = "utterance.wav",
        media_type: str = "audio/wav",
        request_id: str | None = None,
    ) -> TurnResult:
        """Send one spoken utterance (an audio file's bytes) to POST /v1/voice."""
        request_id = request_id or uuid.uuid4().hex
        data = {"session_id": session_id}
        if pipeline:
            data["pipeline"] = pipeline
        if voice:
            data["voice"] = voice
        files = {"file": (filename, audio, media_type)}
        response, attempts = await self._send(
            "POST", "/v1/voice", request_id, data=data, files=files
        )
        return TurnResult.from_json(
            _json_object(response),
            session_id=session_id,
            attempts=attempts,
            request_id=request_id,
        )

    async def text_turn(
        self,
        text: str,
        *,
        session_id: str,
        pipeline: str | None = None,
        audio: bool = False,
        request_id: str | None = None,
    ) -> TurnResult:
        """Send a typed (or already transcribed) question to POST /mcp/transcript.

        With `audio=True` the pipeline's tts stage runs too and the reply comes back as WAV.
        """
        request_id = request_id or uuid.uuid4().hex
        payload: dict[str, Any] = {"transcript": text, "session_id": session_id}
        if pipeline:
            payload["pipeline"] = pipeline
        if audio:
            payload["audio"] = True
        response, attempts = await self._send("POST", "/mcp/transcript", request_id, json=payload)
        return TurnResult.from_json(
            _json_object(response),
            session_id=session_id,
            attempts=attempts,
            request_id=request_id,
            transcript=text,
        )

    async def pipelines(self) -> PipelineCatalog:
        """GET /v1/pipelines: the pipelines and each stage's providers in order."""
        response, _ = await self._send("GET", "/v1/pipelines", uuid.uuid4().hex)
        return parse_catalog(_json_object(response))

    async def probe(self, timeout_s: float = 5.0) -> str:
        """'reachable' when the orchestrator answers its liveness probe, else why not."""
        try:
            r = await self._http.get(self.base_url + "/health/live", timeout=timeout_s)
        except httpx.HTTPError as exc:
            return f"unreachable ({type(exc).__name__})"
        return "reachable" if r.status_code == 200 else f"unhealthy (HTTP {r.status_code})"
