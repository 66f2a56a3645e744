"""Bridges a blocking engine to asyncio: bounded slots, streamed text, stops and cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from services.kit import ApiError
from services.kit.concurrency import WorkLimiter
from services.llm.engine import ChatEngine, GenerationOutcome, GenerationParams, PreparedPrompt
from services.llm.metrics import LlmMetrics
from services.llm.stops import StopScanner

log = logging.getLogger("llm.generation")


@dataclass
class RunResult:
    """How a streamed generation ended."""

    completion_tokens: int = 0
    finish_reason: str = "stop"


class GenerationRunner:
    """Runs generations one slot at a time (per the limiter) and streams their text."""

    def __init__(
        self, engine: ChatEngine, limiter: WorkLimiter, metrics: LlmMetrics, idle_timeout_s: float
    ) -> None:
        self.engine = engine
        self.limiter = limiter
        self.metrics = metrics
        self.idle_timeout_s = idle_timeout_s
        # Threads still finishing after their client left; kept so they are not collected early.
        self._draining: set[asyncio.Future[GenerationOutcome]] = set()

    async def stream(
        self,
        prompt: PreparedPrompt,
        params: GenerationParams,
        stops: Sequence[str],
        result: RunResult,
    ) -> AsyncGenerator[str, None]:
        """Yield "" once a slot is taken, then text deltas; fill `result` when generation ends.

        The first (empty) item lets a caller surface a 429 before it commits to a response.
        Closing the iterator early (client gone) stops the generation at the next token.
        """
        await self.limiter.acquire()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        cancel = threading.Event()
        scanner = StopScanner(stops)
        model = self.engine.model_id

        def on_text(text: str) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, text)
            except RuntimeError:  # the event loop is gone (shutdown): nobody is listening
                cancel.set()

        def work() -> GenerationOutcome:
            try:
                return self.engine.generate(prompt, params, on_text, cancel.is_set)
            finally:
                with contextlib.suppress(RuntimeError):  # loop gone: nobody is listening
                    loop.call_soon_threadsafe(queue.put_nowait, None)

        task: asyncio.Future[GenerationOutcome] = asyncio.ensure_future(asyncio.to_thread(work))
        completed = False
        try:
            yield ""
            while True:
                try:
                    piece = await asyncio.wait_for(queue.get(), self.idle_timeout_s)
                except TimeoutError as exc:
                    raise ApiError(504, "generation stalled", code="generation_timeout") from exc
                if piece is None:
                    break
                out = scanner.feed(piece)
                if scanner.stopped:
                    cancel.set()  # stop string seen: no need to generate further
                if out:
                    yield out
                if scanner.stopped:
                    break
            outcome = await task
            tail = scanner.flush()
            if tail:
                yield tail
            completed = True
            self._record(outcome, scanner.stopped, result, params)
        finally:
            if not completed:
                cancel.set()
                failed = task.done() and not task.cancelled() and task.exception() is not None
                if not failed:  # an engine error is counted as "error" by _finish
                    self.metrics.finished.labels(model, "cancelled").inc()
            if task.done():
                self._finish(task)
            else:
                # The slot is only free once the thread has really stopped generating.
                self._draining.add(task)
                task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Future[GenerationOutcome]) -> None:
        self._draining.discard(task)
        self.limiter.release()
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.metrics.finished.labels(self.engine.model_id, "error").inc()
            log.error("generation failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return
        # Counted here, once per generation, so tokens made before a cancel are counted too.
        self.metrics.tokens_generated.labels(self.engine.model_id).inc(
            task.result().completion_tokens
        )

    def _record(
        self, outcome: GenerationOutcome, stopped: bool, result: RunResult, params: GenerationParams
    ) -> None:
        model = self.engine.model_id
        result.completion_tokens = outcome.completion_tokens
        if stopped or outcome.hit_eos:
            result.finish_reason = "stop"
        elif outcome.completion_tokens >= params.max_new_tokens:
            result.finish_reason = "length"
        else:
            result.finish_reason = "stop"
        if outcome.first_token_s is not None:
            self.metrics.ttft.labels(model).observe(outcome.first_token_s)
        self.metrics.generation.labels(model).observe(outcome.seconds)
        self.metrics.finished.labels(model, result.finish_reason).inc()
