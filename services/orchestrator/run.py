"""One request through a pipeline: what it asks for, what it gives, and its state in between."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services.kit import ApiError
from services.orchestrator.backends.llm import LlmClient
from services.orchestrator.config import EffectivePipeline, EffectiveStage, ProviderConfig
from services.orchestrator.executor import StageExecutor, StageFailed, StageRecord, StageRejected
from services.orchestrator.history import HistoryStore, Turn
from services.orchestrator.metrics import OrchestratorMetrics
from services.orchestrator.runtime import Runtime
from services.orchestrator.stages import StageClient

log = logging.getLogger("orchestrator.pipeline")
T = TypeVar("T")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:@\-]{1,128}$")


def check_session_id(session_id: str | None) -> str:
    """The caller's session id, or a new one when none was given."""
    if session_id is None or session_id == "":
        return uuid.uuid4().hex
    if not _SESSION_ID.match(session_id):
        raise ApiError(
            400,
            "session_id must be 1-128 characters of letters, digits, _ . : @ -",
            param="session_id",
            code="invalid_session_id",
        )
    return session_id


@dataclass
class RunInput:
    """What a client asked for."""

    session_id: str
    pipeline: str | None = None
    text: str | None = None
    audio: bytes | None = None
    filename: str = "audio.wav"
    want_audio: bool = False
    # A TTS voice chosen by the client; overrides the stage's configured voice.
    voice: str | None = None
    # Stateless chat: the client's own history replaces the session store.
    history: list[Turn] | None = None
    # Every earlier text the client sent with this request (any role, tool results too):
    # checked by the input guard together with `text`, in one call.
    context: tuple[tuple[str, str], ...] = ()  # (role, text)
    # Whose sessions these are (a key id, or "open" when keyless) and who the guardrails'
    # rate limits should count (derived from the key or the client address, never the key).
    scope: str = "open"
    identity: str | None = None

    @property
    def store_key(self) -> str:
        """The history-store key: the session id inside its owner's scope."""
        return f"{self.scope}|{self.session_id}"


@dataclass
class RunResult:
    """What a run produced, with a record per stage."""

    pipeline: str
    session_id: str
    config_version: int
    prompt_version: str
    transcript: str | None = None
    response: str | None = None
    blocked: bool = False
    block_reason: str | None = None
    audio: bytes | None = None
    tts_engine: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    records: list[StageRecord] = field(default_factory=list)
    # Secret put into the system prompt when the output is guarded: a reply that contains it
    # leaked the prompt, and the output guard refuses it (canary_leak). Set by `Run` to the
    # session's own (`StageKit.canary`).
    canary: str = ""

    @property
    def stages(self) -> list[dict[str, Any]]:
        """Stage records as JSON."""
        return [r.as_dict() for r in self.records]


@dataclass(frozen=True)
class Plan:
    """A resolved pipeline on the config snapshot a request keeps to its end."""

    runtime: Runtime
    pipe: EffectivePipeline

    def result(self, session_id: str, transcript: str | None = None) -> RunResult:
        """An empty result of this pipeline and config version."""
        file = self.runtime.loaded.file
        return RunResult(
            self.pipe.name,
            session_id,
            self.runtime.version,
            file.system_prompt.version,
            transcript=transcript,
        )


@dataclass(frozen=True)
class StageKit:
    """What every stage handler shares: the executor, the stage and LLM clients, history, limits."""

    executor: StageExecutor
    client: StageClient
    llm: LlmClient
    store: HistoryStore
    metrics: OrchestratorMetrics
    refusal: str
    max_tool_rounds: int = 3
    # Key of the session canaries (ORCH_CANARY_KEY; random per process when not set).
    canary_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # The denoise stage runs only on audio with at least this estimated SNR (None: always).
    denoise_min_snr_db: float | None = None

    def canary(self, store_key: str) -> str:
        """The prompt canary of one session: an HMAC of its key, unguessable without the key.

        One per session rather than per request: greedy decoding then gives the same answer to
        the same question in the same session (a random canary in the prompt rewords a small
        model's replies from one request to the next).
        """
        digest = hmac.new(self.canary_key, store_key.encode(), hashlib.sha256).hexdigest()
        return "cnry-" + digest[:16]

    def count_tool(self, name: str, ok: bool) -> None:
        """Count one built-in tool call of the LLM stage."""
        self.metrics.tool_calls.labels(name, "ok" if ok else "error").inc()


def stage_options(prov: ProviderConfig, stage: EffectiveStage) -> dict[str, Any]:
    """The provider's options with the stage's on top (a fresh dict: callers may add)."""
    return {**prov.options, **stage.options}


# One provider call of a stage: (provider name, provider, timeout in s) -> its value.
ProviderCall = Callable[[str, ProviderConfig, float], Awaitable[T]]


@dataclass(slots=True)
class Run:
    """A request on its way through the stages: the handlers read and write it in order."""

    kit: StageKit
    plan: Plan
    inp: RunInput
    result: RunResult
    audio: bytes | None = None  # the request's audio, then the denoised audio
    text: str | None = None  # the request's text, then the transcript, then the checked text

    def __post_init__(self) -> None:
        self.result.canary = self.kit.canary(self.inp.store_key)

    @property
    def runtime(self) -> Runtime:
        """The config snapshot of this run."""
        return self.plan.runtime

    @property
    def pipe(self) -> EffectivePipeline:
        """The pipeline this run walks."""
        return self.plan.pipe

    def wav(self) -> bytes:
        """The audio an audio stage works on (they are skipped for text input)."""
        if self.audio is None:
            raise RuntimeError("an audio stage ran without audio")
        return self.audio

    async def execute(self, stage: EffectiveStage, call: ProviderCall[T]) -> T | None:
        """One stage through the executor (fallbacks, breakers, metrics), its record kept.

        An optional stage whose providers all fail transiently is skipped: None.
        """
        executor = self.kit.executor
        try:
            value, record = await executor.run(self.pipe.name, stage, self.runtime.providers, call)
        except StageFailed as exc:
            self.result.records.append(exc.record)
            if not stage.optional:
                raise
            exc.record.status = "skipped"
            log.warning(
                "optional stage skipped", extra={"pipeline": self.pipe.name, "stage": stage.stage}
            )
            return None
        except StageRejected as exc:
            self.result.records.append(exc.record)
            raise
        self.result.records.append(record)
        return value
