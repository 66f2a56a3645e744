"""Async client for the orchestrator's /v1/voice and /mcp/transcript with safe retries."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("voice_client.orchestrator")

# Statuses that mean the orchestrator refused the request before running any stage, so
# sending it again cannot create a second conversation turn.
RETRYABLE_STATUSES = frozenset({429, 503})


class OrchestratorError(Exception):
    """The orchestrator answered with an error, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        attempts: int = 1,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code  # the envelope's error.code, e.g. "no_speech"
        self.attempts = attempts
        self.retryable = retryable


class OrchestratorUnavailable(OrchestratorError):
    """The orchestrator stayed unreachable or overloaded through every retry."""


@dataclass(frozen=True)
class StageRecord:
    """One pipeline stage as the orchestrator reports it."""

    stage: str
    provider: str | None
    status: str
    latency_ms: float | None
    attempts: int | None = None
    error: str | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StageRecord:
        """Parse one `stages[]` entry, tolerating missing optional fields."""
        latency = raw.get("latency_ms")
        attempts = raw.get("attempts")
        return cls(
            stage=str(raw.get("stage", "?")),
            provider=None if raw.get("provider") is None else str(raw.get("provider")),
            status=str(raw.get("status", "?")),
            latency_ms=float(latency) if isinstance(latency, int | float) else None,
            attempts=int(attempts) if isinstance(attempts, int) else None,
            error=None if raw.get("error") is None else str(raw.get("error")),
        )


@dataclass(frozen=True)
class TurnResult:
    """What one turn returned: texts, optional reply audio (WAV) and stage timings."""

    session_id: str
    transcript: str | None
    response: str
    pipeline: str | None
    blocked: bool
    audio_wav: bytes | None
    stages: list[StageRecord] = field(default_factory=list)
    attempts: int = 1
    request_id: str = ""


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


def _error_detail(response: httpx.Response) -> tuple[str, str | None]:
    """(message, code) from the error envelope, or what the body has."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase, None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = err.get("code")
        return str(err.get("message", response.reason_phrase)), None if code is None else str(code)
    return response.reason_phrase, None


class OrchestratorClient:
    """Talks to one orchestrator; one Idempotency-Key per turn keeps retries from duplicating it."""

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

    def _headers(self, turn_id: str) -> dict[str, str]:
        headers = {"Idempotency-Key": turn_id, "X-Request-ID": turn_id}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    async def _post(self, path: str, turn_id: str, **kwargs: Any) -> tuple[httpx.Response, int]:
        url = self.base_url + path
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = await self._http.post(url, headers=self._headers(turn_id), **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The request never reached the server, so a retry cannot duplicate the turn.
                reason = f"cannot reach the orchestrator at {self.base_url}: {type(exc).__name__}"
                status: int | None = None
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
                message, code = _error_detail(response)
                status = response.status_code
                if status not in RETRYABLE_STATUSES:
                    raise OrchestratorError(
                        f"orchestrator returned {status}: {message}",
                        status=status,
                        code=code,
                        attempts=attempt,
                    )
                reason = f"orchestrator returned {status}: {message}"
                retry_after = _retry_after(response)
            if attempt >= self.retry.max_attempts:
                raise OrchestratorUnavailable(
                    f"{reason} (gave up after {attempt} attempts)",
                    status=status,
                    attempts=attempt,
                    retryable=True,
                )
            delay = self.retry.delay(attempt, retry_after)
            log.warning(
                "orchestrator call will be retried",
                extra={
                    "path": path,
                    "attempt": attempt,
                    "status": status,
                    "delay_s": round(delay, 3),
                },
            )
            await asyncio.sleep(delay)

    async def voice_turn(
        self,
        wav: bytes,
        *,
        session_id: str,
        pipeline: str | None = None,
        voice: str | None = None,
        turn_id: str | None = None,
    ) -> TurnResult:
        """Send one spoken utterance (WAV bytes) to POST /v1/voice."""
        turn_id = turn_id or uuid.uuid4().hex
        data = {"session_id": session_id}
        if pipeline:
            data["pipeline"] = pipeline
        if voice:
            data["voice"] = voice
        response, attempts = await self._post(
            "/v1/voice", turn_id, data=data, files={"file": ("utterance.wav", wav, "audio/wav")}
        )
        body = self._json(response)
        return self._result(body, session_id, _audio(body), attempts, turn_id)

    async def text_turn(
        self,
        text: str,
        *,
        session_id: str,
        pipeline: str | None = None,
        audio: bool = False,
        turn_id: str | None = None,
    ) -> TurnResult:
        """Send a typed (or already transcribed) question to POST /mcp/transcript.

        With `audio=True` the pipeline's tts stage runs too and the reply comes back as WAV.
        """
        turn_id = turn_id or uuid.uuid4().hex
        payload: dict[str, Any] = {"transcript": text, "session_id": session_id}
        if pipeline:
            payload["pipeline"] = pipeline
        if audio:
            payload["audio"] = True
        response, attempts = await self._post("/mcp/transcript", turn_id, json=payload)
        body = self._json(response)
        return self._result(body, session_id, _audio(body), attempts, turn_id, transcript=text)

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise OrchestratorError(
                f"orchestrator answered {response.status_code} with non-JSON content"
            ) from exc
        if not isinstance(body, dict):
            raise OrchestratorError("orchestrator answered with unexpected JSON")
        return body

    @staticmethod
    def _result(
        body: dict[str, Any],
        session_id: str,
        audio: bytes | None,
        attempts: int,
        turn_id: str,
        transcript: str | None = None,
    ) -> TurnResult:
        stages_raw = body.get("stages") or []
        stages = [StageRecord.from_json(s) for s in stages_raw if isinstance(s, dict)]
        got_transcript = body.get("transcript", transcript)
        return TurnResult(
            session_id=str(body.get("session_id") or session_id),
            transcript=None if got_transcript is None else str(got_transcript),
            response=str(body.get("response") or ""),
            pipeline=None if body.get("pipeline") is None else str(body.get("pipeline")),
            blocked=bool(body.get("blocked", False)),
            audio_wav=audio,
            stages=stages,
            attempts=attempts,
            request_id=turn_id,
        )


def _audio(body: dict[str, Any]) -> bytes | None:
    raw = body.get("audio")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OrchestratorError("orchestrator sent reply audio that is not base64") from exc
