"""The layer between routes and engine: bounded slots, streamed text, stops and cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from services.kit import ApiError
from services.kit.concurrency import WorkLimiter
from services.llm.engine import (
    ChatEngine,
    ChatMessage,
    GenerationOutcome,
    GenerationParams,
    PreparedPrompt,
)
from services.llm.metrics import LlmMetrics
from services.llm.stops import StopScanner

log = logging.getLogger("llm.service")


@dataclass
class RunResult:
    """How a streamed generation ended."""

    completion_tokens: int = 0
    finish_reason: str = "stop"
    prompt: PreparedPrompt | None = None


@dataclass(eq=False)
class GenerationRunner:
    """Runs generations one slot at a time (per the limiter) and streams their text.

    All CPU-heavy work (prompt rendering and tokenising, generation, detokenising) runs in
    worker threads; the event loop only moves text, so health checks and other streams are
    served while a large request is being prepared or generated.
    """

    engine: ChatEngine
    limiter: WorkLimiter
    metrics: LlmMetrics
    idle_timeout_s: float
    # Threads still finishing after their client left; kept so they are not collected early.
    _draining: set[asyncio.Future[GenerationOutcome]] = field(
        default_factory=set, init=False, repr=False
    )

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        max_input_tokens: int,
        params: GenerationParams,
        stops: Sequence[str],
        result: RunResult,
    ) -> AsyncGenerator[str, None]:
        """Yield "" once a slot is taken and the prompt built, then text deltas.

        `result.prompt` is set before the first item; the rest of `result` when generation ends.
        The first (empty) item lets a caller surface a 429 (queue full) or a 400 (prompt too
        long: ContextLengthExceeded) before it commits to a response. Closing the iterator
        early (client gone) stops the generation at the next token.
        """
        await self.limiter.acquire()
        # The prompt is built inside the slot: LLM_MAX_CONCURRENCY bounds this CPU work as it
        # bounds generation, and a flood of huge prompts waits in the LLM_MAX_QUEUE queue
        # instead of filling the thread pool that generations also need.
        prepared = asyncio.ensure_future(
            asyncio.to_thread(self._prepare, messages, max_input_tokens)
        )
        try:
            prompt = await asyncio.shield(prepared)
        except BaseException:
            if prepared.done():
                self.limiter.release()
            else:  # caller gone mid-prepare: the slot is free once the thread has finished
                prepared.add_done_callback(self._release_after_prepare)
            raise
        result.prompt = prompt
        model = self.engine.model_id
        self.metrics.prompt_tokens.labels(model).inc(prompt.n_tokens)
        if prompt.dropped_messages:
            self.metrics.dropped_messages.labels(model).inc(prompt.dropped_messages)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        cancel = threading.Event()
        scanner = StopScanner(stops)

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

    def _prepare(self, messages: Sequence[ChatMessage], max_input_tokens: int) -> PreparedPrompt:
        started = time.perf_counter()
        prompt = self.engine.prepare(messages, max_input_tokens)
        self.metrics.prompt_build.labels(self.engine.model_id).observe(
            time.perf_counter() - started
        )
        return prompt

    def _release_after_prepare(self, task: asyncio.Future[PreparedPrompt]) -> None:
        self.limiter.release()
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved

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
