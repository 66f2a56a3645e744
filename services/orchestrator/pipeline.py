"""Runs a pipeline: stages in order on one config snapshot, guarded conversation, records."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from services.kit import ApiError
from services.orchestrator.backends.llm import LlmCall, LlmClient, answer
from services.orchestrator.config import (
    AUDIO_STAGES,
    EffectivePipeline,
    EffectiveStage,
    ProviderConfig,
)
from services.orchestrator.conversation import Answer, build_messages
from services.orchestrator.engine import HistoryStore, Turn
from services.orchestrator.executor import (
    StageExecutor,
    StageFailed,
    StageRecord,
    StageRejected,
)
from services.orchestrator.metrics import OrchestratorMetrics
from services.orchestrator.runtime import ConfigManager, Runtime
from services.orchestrator.stages import StageClient

log = logging.getLogger("orchestrator.pipeline")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:@\-]{1,128}$")
# Provider statuses that mean the caller's input was bad; others are our config's problem.
_CLIENT_STATUSES = frozenset({400, 413, 415, 422})


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


@contextlib.contextmanager
def stage_errors() -> Iterator[None]:
    """Stage failures as the API errors clients see: 4xx, 429, 502 or 504."""
    try:
        yield
    except StageRejected as exc:
        status = exc.status if exc.status in _CLIENT_STATUSES else 502
        raise ApiError(status, str(exc), param=exc.record.stage, code="stage_rejected") from exc
    except StageFailed as exc:
        headers = {}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        if exc.rate_limited:
            # Back-pressure meant for this caller (the guardrails count per end user):
            # a 429 it can honour, not a 502 that reads like a broken mesh.
            headers.setdefault("Retry-After", "5")
            raise ApiError(
                429,
                str(exc),
                param=exc.record.stage,
                code="rate_limited",
                headers=headers,
            ) from exc
        raise ApiError(
            504 if exc.timed_out else 502,
            str(exc),
            param=exc.record.stage,
            code="stage_timeout" if exc.timed_out else "stage_failed",
            headers=headers,
        ) from exc


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
    # Per-request secret put into the system prompt when the output is guarded: a reply that
    # contains it leaked the prompt, and the output guard refuses it (canary_leak).
    canary: str = field(default_factory=lambda: "cnry-" + secrets.token_hex(8))

    @property
    def stages(self) -> list[dict[str, Any]]:
        """Stage records as JSON."""
        return [r.as_dict() for r in self.records]


class Runner:
    """Executes pipelines against the current config snapshot."""

    def __init__(
        self,
        config: ConfigManager,
        executor: StageExecutor,
        stages: StageClient,
        llm: LlmClient,
        store: HistoryStore,
        metrics: OrchestratorMetrics,
        refusal: str,
        max_tool_rounds: int = 3,
    ) -> None:
        self.max_tool_rounds = max_tool_rounds
        self.config = config
        self.executor = executor
        self.stages = stages
        self.llm = llm
        self.store = store
        self.metrics = metrics
        self.refusal = refusal

    def resolve(self, runtime: Runtime, name: str | None) -> EffectivePipeline:
        """The requested (or active) pipeline, or a clear 404/503."""
        pname = name or runtime.loaded.file.active_pipeline
        try:
            pipe = runtime.pipeline(pname)
        except KeyError:
            known = ", ".join(sorted(runtime.loaded.pipelines))
            raise ApiError(
                404,
                f"unknown pipeline '{pname}' (known: {known})",
                param="pipeline",
                code="unknown_pipeline",
            ) from None
        if pipe.unavailable:
            raise ApiError(
                503,
                f"pipeline '{pname}' is unavailable: {pipe.unavailable}",
                param="pipeline",
                code="pipeline_unavailable",
            )
        return pipe

    async def run(self, inp: RunInput, runtime: Runtime | None = None) -> RunResult:
        """Run one request through its pipeline; stage failures become 4xx/502/504."""
        runtime = runtime or self.config.current  # the snapshot this run keeps to the end
        pipe = self.resolve(runtime, inp.pipeline)
        if inp.audio is not None and not pipe.takes_audio:
            raise ApiError(
                400,
                f"pipeline '{pipe.name}' has no stt stage and cannot take audio",
                param="pipeline",
                code="pipeline_takes_text",
            )
        if inp.audio is None and all(s.stage in AUDIO_STAGES for s in pipe.stages):
            raise ApiError(
                400,
                f"pipeline '{pipe.name}' only processes audio; use /v1/voice",
                param="pipeline",
                code="pipeline_takes_audio",
            )
        result = RunResult(
            pipe.name,
            inp.session_id,
            runtime.version,
            runtime.loaded.file.system_prompt.version,
            transcript=inp.text,
        )
        started = time.perf_counter()
        outcome = "error"
        try:
            with stage_errors():
                await self._run_stages(runtime, pipe, inp, result)
            outcome = "blocked" if result.blocked else "ok"
        finally:
            self.metrics.runs.labels(pipe.name, outcome).inc()
            self.metrics.run_latency.labels(pipe.name).observe(time.perf_counter() - started)
        return result

    async def _stage(
        self,
        runtime: Runtime,
        pipe: EffectivePipeline,
        stage: EffectiveStage,
        call: Any,
        result: RunResult,
    ) -> Any:
        """Run one stage; an optional stage that fails transiently is skipped (None)."""
        try:
            value, record = await self.executor.run(pipe.name, stage, runtime.providers, call)
        except StageFailed as exc:
            if not stage.optional:
                result.records.append(exc.record)
                raise
            exc.record.status = "skipped"
            result.records.append(exc.record)
            log.warning(
                "optional stage skipped", extra={"pipeline": pipe.name, "stage": stage.stage}
            )
            return None
        except StageRejected as exc:
            result.records.append(exc.record)
            raise
        result.records.append(record)
        return value

    async def _run_stages(
        self, runtime: Runtime, pipe: EffectivePipeline, inp: RunInput, result: RunResult
    ) -> None:
        audio = inp.audio
        text = inp.text
        for stage in pipe.stages:
            name = stage.stage
            skip = self._skip_reason(stage, inp, result)
            if skip:
                result.records.append(StageRecord(stage=name, status="skipped", note=skip))
            elif name == "denoise":
                assert audio is not None
                audio = await self._denoise(runtime, pipe, stage, audio, result)
            elif name == "stt":
                assert audio is not None
                text = await self._stt(runtime, pipe, stage, audio, inp.filename, result)
            elif name == "guard_input":
                text = await self._guard_input(runtime, pipe, stage, inp, text or "", result)
            elif name == "llm":
                await self._llm(runtime, pipe, stage, inp, text or "", result)
            elif name == "guard_output":
                await self._guard_output(runtime, pipe, stage, inp, result)
            elif name == "tts":
                say = result.response if result.response is not None else (text or "")
                await self._tts(runtime, pipe, stage, say, result, inp.voice)
        if not pipe.has("llm") and result.response is None and pipe.has("guard_input"):
            result.response = text
        stored = pipe.has("llm") and not result.blocked and inp.history is None
        if stored and text and result.response is not None:
            await self.store.append(
                inp.store_key,
                [
                    Turn(role="user", content=text),
                    Turn(role="assistant", content=result.response or ""),
                ],
            )

    async def _denoise(
        self,
        runtime: Runtime,
        pipe: EffectivePipeline,
        stage: EffectiveStage,
        audio: bytes,
        result: RunResult,
    ) -> bytes:
        async def call(_: str, prov: ProviderConfig, timeout_s: float) -> bytes:
            return await self.stages.denoise(prov, audio, timeout_s)

        out: bytes | None = await self._stage(runtime, pipe, stage, call, result)
        return audio if out is None else out  # optional denoise skipped: use the raw audio

    async def _stt(
        self,
        runtime: Runtime,
        pipe: EffectivePipeline,
        stage: EffectiveStage,
        audio: bytes,
        filename: str,
        result: RunResult,
    ) -> str:
        async def call(_: str, prov: ProviderConfig, timeout_s: float) -> str:
            opts = {**prov.options, **stage.options}
            return await self.stages.transcribe(prov, audio, filename, opts, timeout_s)

        text: str | None = await self._stage(runtime, pipe, stage, call, result)
        result.transcript = text
        if not text or not text.strip():
            raise ApiError(
                422, "no speech was recognised in the audio", param="file", code="no_speech"
            )
        return text

    async def _guard_input(
        self,
        runtime: Runtime,
        pipe: EffectivePipeline,
        stage: EffectiveStage,
        inp: RunInput,
        text: str,
        result: RunResult,
    ) -> str:
        verdict = await self._guard(runtime, pipe, stage, "input", text, inp, result)
        if verdict is None:
            return text  # guardrails down and fail-open (or optional): unguarded
        if not verdict["safe"]:
            result.blocked = True
            result.block_reason = str(verdict.get("reason") or "input blocked")
            result.response = self.refusal
            return text
        sanitized = verdict.get("sanitized")
        return sanitized if isinstance(sanitized, str) and sanitized.strip() else text

    async def _guard_output(
        self,
        runtime: Runtime,
        pipe: EffectivePipeline,
        stage: EffectiveStage,
        inp: RunInput,
        result: RunResult,
    ) -> None:
        reply = result.response or ""
        verdict = await self._guard(runtime, pipe, stage, "output", reply, inp, result)
        if verdict is None:
            return
        if not verdict["safe"]:
            result.blocked = True
            result.block_reason = str(verdict.get("reason") or "output blocked")
            result.response = self.refusal
        elif isinstance(verdict.get("filtered"), str):
            result.response = verdict["filtered"]

    async def _tts(
        self,
        runtime: Runtime,
        pipe: EffectivePipeline,
        stage: EffectiveStage,
        say: str,
        result: RunResult,
        voice: str | None = None,
    ) -> None:
        async def call(_: str, prov: ProviderConfig, timeout_s: float) -> tuple[bytes, str | None]:
            opts = {**prov.options, **stage.options}
            if voice:
                opts["voice"] = voice
            return await self.stages.speak(prov, say, opts, timeout_s)

        spoken = await self._stage(runtime, pipe, stage, call, result)
        if spoken is not None:
            result.audio, result.tts_engine = spoken

    @staticmethod
    def _skip_reason(stage: EffectiveStage, inp: RunInput, result: RunResult) -> str | None:
        if stage.stage in AUDIO_STAGES and inp.audio is None:
            return "text input"
        if result.blocked and stage.stage in ("llm", "guard_output"):
            return "input blocked"
        if stage.stage == "tts" and not inp.want_audio:
            return "audio not requested"
        return None

    async def _guard(
        self,
        runtime: Runtime,
        pipe: EffectivePipeline,
        stage: EffectiveStage,
        direction: str,
        text: str,
        inp: RunInput,
        result: RunResult,
    ) -> dict[str, Any] | None:
        history = inp.context if direction == "input" else ()
        # The output check also gets what the user asked (a reply that obeys a quoted "just say
        # X" is refused) and the canary of the system prompt.
        request: dict[str, str] = {}
        if direction == "output":
            request = {"canary": result.canary}
            asked = inp.text if inp.text is not None else result.transcript
            if asked:
                request["input"] = asked

        async def call(_: str, prov: ProviderConfig, timeout_s: float) -> dict[str, Any]:
            return await self.stages.validate(
                prov,
                direction,
                text,
                timeout_s,
                history=history,
                end_user=inp.identity,
                request=request,
            )

        verdict: dict[str, Any] | None = await self._stage(runtime, pipe, stage, call, result)
        return verdict

    async def _llm(
        self,
        runtime: Runtime,
        pipe: EffectivePipeline,
        stage: EffectiveStage,
        inp: RunInput,
        text: str,
        result: RunResult,
    ) -> None:
        history = inp.history if inp.history is not None else await self.store.load(inp.store_key)
        system = runtime.loaded.file.system_prompt.text
        if pipe.has("guard_output"):
            system = f"<!-- {result.canary} -->\n{system}"  # the canary, as Rebuff places it
        messages = build_messages(system, history, text)

        async def call(name: str, prov: ProviderConfig, timeout_s: float) -> Answer:
            request = LlmCall.for_stage(stage, prov, timeout_s)
            return await answer(self.llm, request, messages, self.max_tool_rounds, self._count_tool)

        reply: Answer | None = await self._stage(runtime, pipe, stage, call, result)
        if reply is not None:
            result.response, result.usage = reply.text, reply.usage
            result.records[-1].tools_called = reply.tools_called

    def _count_tool(self, name: str, ok: bool) -> None:
        self.metrics.tool_calls.labels(name, "ok" if ok else "error").inc()
