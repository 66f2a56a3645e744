"""The runner: a request walks its pipeline's stages in order, one handler per stage kind.

`Runner.plan` resolves the pipeline once per request on the current config snapshot;
`Runner.run` looks each stage up in the table (`handlers.HANDLERS`) and hands it the `Run`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from services.kit import ApiError
from services.orchestrator.config import AUDIO_STAGES
from services.orchestrator.executor import StageFailed, StageRecord, StageRejected
from services.orchestrator.handlers import HANDLERS
from services.orchestrator.history import Turn
from services.orchestrator.run import Plan, Run, RunInput, RunResult, StageKit
from services.orchestrator.runtime import ConfigManager

# Provider statuses that mean the caller's input was bad; others are our config's problem.
_CLIENT_STATUSES = frozenset({400, 413, 415, 422})


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


class Runner:
    """Runs requests through the pipelines of the current config snapshot."""

    def __init__(self, config: ConfigManager, kit: StageKit) -> None:
        self.config = config
        self.kit = kit

    def plan(self, name: str | None, *, otherwise: str | None = None) -> Plan:
        """The named (or active) pipeline on the current config, or a clear 404/503.

        `otherwise`: the pipeline to use when `name` is none of the config's (OpenAI clients
        send model names of their own); without it an unknown name is a 404.
        """
        runtime = self.config.current  # the snapshot the request keeps to its end
        pipelines = runtime.loaded.pipelines
        if otherwise is not None and name not in pipelines:
            name = otherwise
        pname = name or runtime.loaded.file.active_pipeline
        pipe = pipelines.get(pname)
        if pipe is None:
            raise ApiError(
                404,
                f"unknown pipeline '{pname}' (known: {', '.join(sorted(pipelines))})",
                param="pipeline",
                code="unknown_pipeline",
            )
        if pipe.unavailable:
            raise ApiError(
                503,
                f"pipeline '{pname}' is unavailable: {pipe.unavailable}",
                param="pipeline",
                code="pipeline_unavailable",
            )
        return Plan(runtime, pipe)

    async def run(self, inp: RunInput, plan: Plan | None = None) -> RunResult:
        """Run one request (on `plan` when the caller resolved it); failures become 4xx/5xx."""
        plan = plan or self.plan(inp.pipeline)
        pipe = plan.pipe
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
        result = plan.result(inp.session_id, transcript=inp.text)
        run = Run(self.kit, plan, inp, result, audio=inp.audio, text=inp.text)
        started = time.perf_counter()
        outcome = "error"
        try:
            with stage_errors():
                for stage in pipe.stages:
                    handler = HANDLERS[stage.stage]
                    if note := handler.skip(run):
                        result.records.append(StageRecord(stage.stage, status="skipped", note=note))
                    else:
                        await handler.handle(run, stage)
                await self._finish(run)
            outcome = "blocked" if result.blocked else "ok"
        finally:
            self.kit.metrics.runs.labels(pipe.name, outcome).inc()
            self.kit.metrics.run_latency.labels(pipe.name).observe(time.perf_counter() - started)
        return result

    async def _finish(self, run: Run) -> None:
        """A guard-only pipeline answers with the checked text; a conversation is remembered."""
        pipe, result, text = run.pipe, run.result, run.text
        if not pipe.has("llm") and result.response is None and pipe.has("guard_input"):
            result.response = text
        stored = pipe.has("llm") and not result.blocked and run.inp.history is None
        if stored and text and result.response is not None:
            turns = [
                Turn(role="user", content=text),
                Turn(role="assistant", content=result.response),
            ]
            await self.kit.store.append(run.inp.store_key, turns)
