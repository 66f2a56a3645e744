"""One live session on `WS /v1/realtime`: client events, server VAD, streamed replies, barge-in.

Three tasks per session: the receive loop (client events, VAD; never blocked by a reply, so
speech during a reply is seen at once), a job worker (transcriptions and responses, in order)
and the sender (the only writer to the socket). A reply's deltas pass a bounded budget to the
sender, so a client reading slower than audio is made holds generation back instead of
growing memory. On barge-in the response is marked cancelled first — the sender drops its
queued deltas from then on — and then its task is cancelled (LLM stream closed, TTS call
dropped). Memory keeps the reply's text only as far as its audio was sent (or truncated).

Speculative turns: when the VAD says `paused` (a short silence, `ORCH_REALTIME_SPECULATE_MS`)
the turn starts at once — transcription, input guard, LLM, TTS — with everything it would send
held back; `stopped` (the full silence) releases it in order after `speech_stopped` and
`committed`, and speech resuming first drops it without a trace (the client never sees it).
The held turn's code runs under `_SPEC`, so its events are routed by the speculation they
belong to, even after it was dropped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from services.kit import ApiError
from services.kit.audio import to_pcm16
from services.kit.vad import SpeechDetector
from services.orchestrator.history import Turn
from services.orchestrator.metrics import OrchestratorMetrics
from services.orchestrator.pipeline import Runner
from services.orchestrator.realtime.denoise_stream import (
    PendingSpan,
    StreamingDenoiser,
    stream_targets,
)
from services.orchestrator.realtime.protocol import (
    PCM_RATE,
    ClientEventError,
    SessionConfig,
    apply_update,
    decode_append,
    error_event,
    event,
    new_id,
    parse_user_text_item,
    response_object,
    user_item,
)
from services.orchestrator.realtime.responses import (
    ActiveResponse,
    Outgoing,
    Segment,
    heard_prefix,
)
from services.orchestrator.realtime.turn import SentenceSplitter, StreamingTurn
from services.orchestrator.realtime.vad import TurnDetector, VadEvent
from services.orchestrator.run import RunInput
from services.orchestrator.settings import Settings

log = logging.getLogger("orchestrator.realtime")
_MIN_COMMIT_MS = 100  # the API's smallest committable buffer


@dataclass
class Speculation:
    """A turn started at a VAD pause: its events wait in `held` until the stop confirms it."""

    item_id: str
    audio: np.ndarray
    held: list[Outgoing] = field(default_factory=list)
    live: bool = False  # confirmed: events go straight to the sender
    dropped: bool = False  # speech resumed (or the client changed the turn): all discarded
    started: bool = False  # the job began: session state below was taken over
    previous: str | None = None
    pending_before: list[str] = field(default_factory=list)
    stopped_at: float | None = None
    response: ActiveResponse | None = None
    span: PendingSpan | None = None  # its denoised audio, from the session's stream


# The speculation the running code belongs to (set in its job, inherited by the reply's task).
_SPEC: contextvars.ContextVar[Speculation | None] = contextvars.ContextVar(
    "realtime_speculation", default=None
)


def _dropped() -> bool:
    """Whether the running code belongs to a speculative turn that was dropped."""
    spec = _SPEC.get()
    return spec is not None and spec.dropped


@dataclass
class SessionDeps:
    """What a session needs from the app."""

    runner: Runner
    settings: Settings
    metrics: OrchestratorMetrics
    make_detector: Callable[[], SpeechDetector]


class RealtimeSession:
    """The state of one connection."""

    def __init__(
        self, ws: WebSocket, deps: SessionDeps, config: SessionConfig, base: RunInput
    ) -> None:
        self.ws = ws
        self.deps = deps
        self.settings = deps.settings
        self.config = config
        self.base = base  # session id, key scope and end-user identity
        self.out: asyncio.Queue[Outgoing | None] = asyncio.Queue()
        self.budget = asyncio.Semaphore(self.settings.realtime_max_pending_chunks)
        self.jobs: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self.buffer: list[np.ndarray] = []  # manual turns: uncommitted input
        self.buffered = 0
        self.vad: TurnDetector | None = None
        self.vad_item: str | None = None  # the user item id announced at speech_started
        self.pending_user: list[str] = []  # user texts since the last response
        self.last_item: str | None = None
        self.active: ActiveResponse | None = None
        self.response_queued = False
        self.remembered: ActiveResponse | None = None  # last reply, not yet in the store
        self.spec: Speculation | None = None  # a turn started at a pause, not yet confirmed
        self.closed = False
        # Server VAD sessions: the input streamed through the preprocessor while it arrives.
        self.denoiser: StreamingDenoiser | None = None
        self.vad_origin = 0  # the denoiser's position of the current detector's first sample
        self.handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._clear,
            "conversation.item.create": self._item_create,
            "conversation.item.truncate": self._truncate,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }
        self._reset_vad()

    # ---- plumbing -------------------------------------------------------------------------

    def emit(self, payload: dict[str, Any]) -> None:
        """Queue a control event (never blocks: these are few and small)."""
        self.out.put_nowait(Outgoing(lambda: payload))

    def _turn(self, out: Outgoing) -> None:
        """Queue an event of a turn: held while its speculation is unconfirmed."""
        spec = _SPEC.get()
        if spec is None or spec.live:
            self.out.put_nowait(out)
        elif spec.dropped:
            if out.audio_end_ms is not None:
                self.budget.release()  # never to be sent: give its slot back
        else:
            spec.held.append(out)

    def _turn_event(self, payload: dict[str, Any]) -> None:
        self._turn(Outgoing(lambda: payload))

    async def _sender(self) -> None:
        timeout = self.settings.realtime_send_timeout_s
        while (out := await self.out.get()) is not None:
            resp = out.response
            try:
                if resp is not None and resp.cancelled:
                    continue  # a cut reply's content: never sent after the cut
                payload = out.build()
                try:
                    if payload is not None:
                        async with asyncio.timeout(timeout):
                            await self.ws.send_text(json.dumps(payload))
                except TimeoutError:
                    log.warning("realtime client stopped reading; closing the session")
                    self.closed = True
                    with contextlib.suppress(Exception):
                        await self.ws.close(code=1008, reason="client not reading")
                    return
                if resp is not None:
                    first = resp.mark_sent(out)
                    if first is not None:
                        self.deps.metrics.realtime_first_audio.observe(first)
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True
                return
            finally:
                if out.audio_end_ms is not None:
                    self.budget.release()

    async def _worker(self) -> None:
        while True:
            job = await self.jobs.get()
            try:
                await job()
            except Exception:
                # A bug here must not leave the session deaf: say so and keep serving.
                log.exception("realtime job failed")
                self.emit(error_event("internal_error", "the server failed", kind="server_error"))

    async def serve(self) -> None:
        """Run the session until the client leaves, idles out or stops reading."""
        sender = asyncio.create_task(self._sender())
        worker = asyncio.create_task(self._worker())
        self.deps.metrics.realtime_sessions.inc()
        self.emit(event("session.created", session=self.config.as_dict()))
        try:
            await self._sync_denoiser()
            await self._receive_loop()
        finally:
            self.closed = True
            self._drop_spec()  # a turn the client was never shown is not kept either
            if self.denoiser is not None:
                await self.denoiser.close()  # the preprocessor's stream slot is freed
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            if self.active is not None and self.active.task is not None:
                self.active.cancelled = True
                self.active.task.cancel()
                with contextlib.suppress(BaseException):
                    await self.active.task
            self.out.put_nowait(None)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(sender, 2.0)
            sender.cancel()
            await self._remember()
            self.deps.metrics.realtime_sessions.dec()

    async def _receive_loop(self) -> None:
        idle = self.settings.realtime_idle_timeout_s
        while not self.closed:
            try:
                msg = await asyncio.wait_for(self.ws.receive(), idle)
            except TimeoutError:
                if self.active is not None or self.response_queued:
                    continue  # a long reply is not idleness
                self.emit(error_event("idle_timeout", f"no client event for {idle:g} s"))
                await asyncio.sleep(0.05)  # let the sender deliver it
                with contextlib.suppress(Exception):
                    await self.ws.close(code=1000, reason="idle timeout")
                return
            if msg["type"] == "websocket.disconnect":
                return
            text = msg.get("text")
            if text is None:
                self.emit(
                    error_event(
                        "invalid_event", "binary frames are not supported: send JSON events"
                    )
                )
                continue
            await self._dispatch(text)

    async def _dispatch(self, text: str) -> None:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            self.emit(error_event("invalid_json", f"event is not valid JSON: {exc.msg}"))
            return
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self.emit(error_event("invalid_event", "an event is a JSON object with a 'type'"))
            return
        event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
        handler = self.handlers.get(data["type"])
        if handler is None:
            self.emit(
                error_event(
                    "unknown_event",
                    f"unknown or unsupported event type '{data['type'][:64]}'",
                    param="type",
                    event_id=event_id,
                )
            )
            return
        try:
            await handler(data)
        except ClientEventError as exc:
            self.emit(error_event(exc.code, exc.message, param=exc.param, event_id=event_id))
        except Exception:
            log.exception("realtime event failed", extra={"event": data["type"][:64]})
            self.emit(
                error_event(
                    "internal_error", "the server failed", event_id=event_id, kind="server_error"
                )
            )

    # ---- session and input audio ----------------------------------------------------------

    def _reset_vad(self) -> None:
        td = self.config.turn_detection
        if td is None:
            self.vad = None
            return
        self.vad = TurnDetector(
            self.deps.make_detector(),
            threshold=td.threshold,
            prefix_padding_ms=td.prefix_padding_ms,
            silence_duration_ms=td.silence_duration_ms,
            min_speech_ms=self.settings.realtime_min_speech_ms,
            max_utterance_s=self.settings.realtime_max_utterance_s,
            speculate_ms=self.settings.realtime_speculate_ms if td.create_response else 0,
        )

    async def _sync_denoiser(self) -> None:
        """A denoising stream while server VAD is on and the pipeline denoises; none otherwise."""
        if self.vad is None:
            if self.denoiser is not None:
                await self.denoiser.close()
                self.denoiser = None
            return
        if self.denoiser is None and self.settings.realtime_stream_denoise:
            try:
                plan = self.deps.runner.plan(self.config.model)
            except ApiError:
                return  # the turns will say why the pipeline cannot run
            targets = stream_targets(plan, self.settings.default_timeout_s)
            if targets:
                self.denoiser = StreamingDenoiser(
                    self.deps.runner.kit.client,
                    targets,
                    keep_s=self.settings.realtime_denoise_buffer_s,
                    wait_s=self.settings.realtime_denoise_wait_s,
                )
                self.denoiser.start()
        self.vad_origin = self.denoiser.fed if self.denoiser is not None else 0

    async def _session_update(self, data: dict[str, Any]) -> None:
        self._drop_spec()
        before = self.config.turn_detection
        self.config = apply_update(self.config, data.get("session"), self.settings.max_text_chars)
        if self.config.turn_detection != before:
            self._reset_vad()
            await self._sync_denoiser()
            self.buffer, self.buffered = [], 0
        self.emit(event("session.updated", session=self.config.as_dict()))

    async def _append(self, data: dict[str, Any]) -> None:
        samples = decode_append(data.get("audio"), self.settings.realtime_max_append_bytes)
        if len(samples) == 0:
            return
        if self.vad is None:
            cap = int(self.settings.realtime_max_buffer_s * PCM_RATE)
            if self.buffered + len(samples) > cap:
                raise ClientEventError(
                    "input_audio_buffer_full",
                    f"the input buffer holds at most {self.settings.realtime_max_buffer_s:g} s; "
                    "commit or clear it",
                    "audio",
                )
            self.buffer.append(samples)
            self.buffered += len(samples)
            return
        vad = self.vad
        if self.denoiser is not None:
            self.denoiser.feed(samples)  # first: a VAD event never points past the stream
        for ev in await asyncio.to_thread(vad.feed, samples):
            await self._on_vad(ev)

    async def _on_vad(self, ev: VadEvent) -> None:
        td = self.config.turn_detection
        if ev.kind == "paused":
            self._speculate(ev)
            return
        if ev.kind == "resumed":
            self._drop_spec()
            return
        if ev.kind == "started":
            self.vad_item = new_id("item")
            self.emit(
                event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=ev.at_ms,
                    item_id=self.vad_item,
                )
            )
            if td is not None and td.interrupt_response and self.active is not None:
                self.deps.metrics.realtime_interruptions.inc()
                await self._cancel(self.active, "turn_detected")
            return
        item_id = self.vad_item or new_id("item")
        self.vad_item = None
        stopped_at = time.perf_counter()
        self.emit(
            event("input_audio_buffer.speech_stopped", audio_end_ms=ev.at_ms, item_id=item_id)
        )
        assert ev.audio is not None
        spec = self.spec
        if spec is not None and spec.item_id == item_id and not spec.dropped:
            self._confirm(spec, stopped_at)
            return
        self._drop_spec()
        respond = td is not None and td.create_response
        self._commit_audio(item_id, ev.audio, respond, stopped_at, self._span(ev))

    def _span(self, ev: VadEvent) -> PendingSpan | None:
        """Start fetching the utterance's denoised span from the stream (None: no stream)."""
        if self.denoiser is None or ev.audio is None:
            return None
        return self.denoiser.request(self.vad_origin + ev.start_sample, len(ev.audio))

    # ---- speculative turns ----------------------------------------------------------------

    def _speculate(self, ev: VadEvent) -> None:
        """Start the turn at a pause, when nothing else is under way (else wait for the stop)."""
        if self.spec is not None or self.active is not None or self.response_queued:
            return
        if self.vad_item is None or ev.audio is None:
            return
        spec = Speculation(self.vad_item, ev.audio, previous=self.last_item, span=self._span(ev))
        self.spec, self.last_item = spec, spec.item_id

        async def job() -> None:
            # A task of its own, so `_SPEC` set there does not leak into the worker's next jobs.
            await asyncio.create_task(self._speculative_turn(spec))

        self.jobs.put_nowait(job)

    async def _speculative_turn(self, spec: Speculation) -> None:
        if spec.dropped:
            return
        _SPEC.set(spec)
        spec.started = True
        spec.pending_before = list(self.pending_user)
        await self._transcribe(spec.item_id, spec.previous, spec.audio, spec.span)
        if spec.dropped:
            return
        await self._respond({}, spec.stopped_at, auto=True)

    def _confirm(self, spec: Speculation, stopped_at: float) -> None:
        """The stop came with no speech since the pause: release the held turn in order."""
        self.spec = None
        spec.stopped_at = stopped_at
        if spec.response is not None:
            spec.response.speech_stopped_at = stopped_at
        self.emit(
            event(
                "input_audio_buffer.committed", item_id=spec.item_id, previous_item_id=spec.previous
            )
        )
        for out in spec.held:
            self.out.put_nowait(out)
        spec.held.clear()
        spec.live = True

    def _drop_spec(self) -> None:
        """Forget a speculative turn: cancel its work, discard its events, restore the session."""
        spec, self.spec = self.spec, None
        if spec is None or spec.live:
            return
        spec.dropped = True
        for out in spec.held:
            if out.audio_end_ms is not None:
                self.budget.release()
        spec.held.clear()
        resp = spec.response
        if resp is not None:
            resp.cancelled = True
            if resp.task is not None:
                resp.task.cancel()
            if self.remembered is resp:
                self.remembered = None
            if self.active is resp:
                self.active = None
        self.last_item = spec.previous
        if spec.started:
            self.pending_user = spec.pending_before

    def _commit_audio(
        self,
        item_id: str,
        audio: np.ndarray,
        respond: bool,
        stopped_at: float | None,
        span: PendingSpan | None = None,
    ) -> None:
        previous, self.last_item = self.last_item, item_id
        self.emit(event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous))
        self.jobs.put_nowait(lambda: self._transcribe(item_id, previous, audio, span))
        if respond:
            self.response_queued = True
            self.jobs.put_nowait(lambda: self._respond({}, stopped_at, auto=True))

    async def _commit(self, data: dict[str, Any]) -> None:
        self._drop_spec()
        if self.vad is not None:
            audio = self.vad.take()
            if audio is None:
                raise ClientEventError(
                    "input_audio_buffer_commit_empty", "no speech in the buffer to commit"
                )
            td = self.config.turn_detection
            item_id, self.vad_item = self.vad_item or new_id("item"), None
            self._commit_audio(item_id, audio, bool(td and td.create_response), time.perf_counter())
            return
        if self.buffered < PCM_RATE * _MIN_COMMIT_MS // 1000:
            raise ClientEventError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: at least {_MIN_COMMIT_MS} ms of audio is needed",
            )
        audio = np.concatenate(self.buffer)
        self.buffer, self.buffered = [], 0
        self._commit_audio(new_id("item"), audio, False, None)

    async def _clear(self, data: dict[str, Any]) -> None:
        self._drop_spec()
        self.buffer, self.buffered = [], 0
        if self.vad is not None:
            self.vad.reset()
            self.vad_item = None
        self.emit(event("input_audio_buffer.cleared"))

    async def _transcribe(
        self,
        item_id: str,
        previous: str | None,
        audio: np.ndarray,
        span: PendingSpan | None = None,
    ) -> None:
        runner = self.deps.runner
        # The span streamed while the user spoke; None: the denoise stage runs as before.
        streamed = await span.result() if span is not None else None
        denoised, record = streamed if streamed is not None else (None, None)
        try:
            plan = runner.plan(self.config.model)
            text = await StreamingTurn(runner, plan, self.base).transcribe(audio, denoised, record)
        except ApiError as exc:
            self._turn_event(
                event(
                    "conversation.item.input_audio_transcription.failed",
                    item_id=item_id,
                    content_index=0,
                    error={"type": "transcription_error", "code": exc.code, "message": exc.message},
                )
            )
            return
        if _dropped():
            return  # speech resumed while Whisper ran: the session's state is restored already
        text = text.strip()
        item = user_item(item_id, text, audio=True)
        self._turn_event(event("conversation.item.added", item=item, previous_item_id=previous))
        self._turn_event(event("conversation.item.done", item=item, previous_item_id=previous))
        self._turn_event(
            event(
                "conversation.item.input_audio_transcription.completed",
                item_id=item_id,
                content_index=0,
                transcript=text,
                usage={"type": "duration", "seconds": round(len(audio) / PCM_RATE, 3)},
            )
        )
        self.pending_user.append(text)

    # ---- conversation items ---------------------------------------------------------------

    async def _item_create(self, data: dict[str, Any]) -> None:
        item_id, text = parse_user_text_item(data.get("item"), self.settings.max_text_chars)
        self._drop_spec()  # the user's turn now holds this text too: start it again at the stop
        previous, self.last_item = self.last_item, item_id
        full = user_item(item_id, text, audio=False)
        # Ordered after any transcription still running, as the conversation is.
        self.jobs.put_nowait(lambda: self._add_text(full, previous, text))

    async def _add_text(self, item: dict[str, Any], previous: str | None, text: str) -> None:
        self.emit(event("conversation.item.added", item=item, previous_item_id=previous))
        self.emit(event("conversation.item.done", item=item, previous_item_id=previous))
        self.pending_user.append(text)

    async def _truncate(self, data: dict[str, Any]) -> None:
        item_id = data.get("item_id")
        end = data.get("audio_end_ms")
        resp = self.remembered
        if resp is None or resp.item_id != item_id:
            raise ClientEventError(
                "item_not_truncatable",
                "only the latest finished assistant message can be truncated",
                "item_id",
            )
        if isinstance(end, bool) or not isinstance(end, int) or end < 0:
            raise ClientEventError("invalid_value", "audio_end_ms must be an integer ≥ 0")
        if end > resp.sent_ms + 1:
            raise ClientEventError(
                "invalid_value",
                f"audio_end_ms {end} is past the {resp.sent_ms:.0f} ms of audio sent",
                "audio_end_ms",
            )
        resp.truncate(float(end))
        self.emit(
            event(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=0,
                audio_end_ms=end,
            )
        )

    # ---- responses ------------------------------------------------------------------------

    async def _response_create(self, data: dict[str, Any]) -> None:
        self._drop_spec()
        if self.active is not None or self.response_queued:
            raise ClientEventError(
                "conversation_already_has_active_response",
                "a response is already in progress; cancel it or wait for response.done",
            )
        params = data.get("response") or {}
        if not isinstance(params, dict):
            raise ClientEventError("invalid_value", "response must be an object", "response")
        # Validate the overrides now (an error belongs to this event, not to a later job).
        overrides = apply_update(
            self.config,
            {
                k: v
                for k, v in params.items()
                if k in ("instructions", "output_modalities", "max_output_tokens", "tools")
            },
            self.settings.max_text_chars,
        )
        voice = ((params.get("audio") or {}).get("output") or {}).get("voice")
        if voice is not None:
            overrides = apply_update(
                overrides, {"audio": {"output": {"voice": voice}}}, self.settings.max_text_chars
            )
        self.response_queued = True
        self.jobs.put_nowait(lambda: self._respond({"config": overrides}, None, auto=False))

    async def _response_cancel(self, data: dict[str, Any]) -> None:
        if self.active is None or self._unconfirmed(self.active):
            raise ClientEventError("response_cancel_not_active", "no response is in progress")
        await self._cancel(self.active, "client_cancelled")

    def _unconfirmed(self, resp: ActiveResponse) -> bool:
        """A speculative reply the client has not been told of."""
        return self.spec is not None and self.spec.response is resp

    async def _cancel(self, resp: ActiveResponse, reason: str) -> None:
        resp.cancelled = True  # from here the sender drops its deltas
        resp.cancel_reason = reason
        if resp.task is not None:
            resp.task.cancel()

    async def _remember(self) -> None:
        """Write the last exchange to the session history, as far as it was heard."""
        resp, self.remembered = self.remembered, None
        if resp is None or resp.input_blocked or not resp.user_text:
            return
        turns = [Turn(role="user", content=resp.user_text)]
        if resp.heard:
            turns.append(Turn(role="assistant", content=resp.heard))
        await self.deps.runner.kit.store.append(self.base.store_key, turns)

    async def _respond(self, extra: dict[str, Any], stopped_at: float | None, auto: bool) -> None:
        try:
            if not self.pending_user:
                if not auto:  # a VAD turn whose transcription failed has said so already
                    self.emit(error_event("no_user_input", "there is no new user input to answer"))
                return
            cfg: SessionConfig = extra.get("config") or self.config
            user_text = " ".join(self.pending_user)
            self.pending_user = []
            await self._remember()
            if _dropped():
                return  # speech resumed while the last exchange was written
            resp = ActiveResponse(
                new_id("resp"),
                new_id("item"),
                user_text,
                list(cfg.output_modalities),
                cfg.voice,
                speech_stopped_at=stopped_at,
            )
            self.active = resp
            spec = _SPEC.get()
            if spec is not None:
                spec.response = resp
        finally:
            self.response_queued = False
        self._announce(resp)
        resp.task = asyncio.create_task(self._produce(resp, cfg))
        try:
            await resp.task
        except asyncio.CancelledError:
            if not resp.cancelled:
                raise  # the session is closing
        except ApiError as exc:
            resp.error = {"type": "server_error", "code": exc.code, "message": exc.message}
            self._turn_event(
                error_event(exc.code or "stage_failed", exc.message, kind="server_error")
            )
        except Exception:
            log.exception("realtime response failed")
            resp.error = {"type": "server_error", "code": "internal_error", "message": "failed"}
            self._turn_event(
                error_event("internal_error", "the server failed", kind="server_error")
            )
        finally:
            if not _dropped():  # a dropped one was never shown: no trace
                self.active = None
                self.remembered = resp
                for build in resp.done_events():
                    self._turn(Outgoing(build))
                self.deps.metrics.realtime_responses.labels(resp.status()[0]).inc()

    def _announce(self, resp: ActiveResponse) -> None:
        ids = {"response_id": resp.id, "item_id": resp.item_id, "output_index": 0}
        body = response_object(resp.id, "in_progress", modalities=resp.modalities, voice=resp.voice)
        self._turn_event(event("response.created", response=body))
        item = resp.item("in_progress")
        self._turn_event(
            event("response.output_item.added", response_id=resp.id, output_index=0, item=item)
        )
        self._turn_event(
            event("conversation.item.added", item=item, previous_item_id=self.last_item)
        )
        self.last_item = resp.item_id
        kind = "audio" if resp.audio else "text"
        key = "transcript" if resp.audio else "text"
        self._turn_event(
            event(
                "response.content_part.added", **ids, content_index=0, part={"type": kind, key: ""}
            )
        )

    async def _produce(self, resp: ActiveResponse, cfg: SessionConfig) -> None:
        runner = self.deps.runner
        plan = runner.plan(cfg.model)  # the config snapshot this reply keeps to the end
        turn = StreamingTurn(runner, plan, self.base)
        context = (("system", cfg.instructions),) if cfg.custom_instructions else ()
        verdict = await turn.guard_input(resp.user_text, context)
        if verdict.blocked:
            resp.input_blocked = True
            await self._say(resp, turn, verdict.text)
            return
        history = await runner.kit.store.load(self.base.store_key)
        system = cfg.instructions or plan.runtime.loaded.file.system_prompt.text
        sentences: asyncio.Queue[str | None] = asyncio.Queue()

        async def pump() -> None:
            splitter = SentenceSplitter()
            try:
                async for piece in turn.reply(verdict.text, history, system, cfg.max_output_tokens):
                    for sentence in splitter.add(piece):
                        sentences.put_nowait(sentence)
                if rest := splitter.finish():
                    sentences.put_nowait(rest)
            finally:
                sentences.put_nowait(None)

        pumping = asyncio.create_task(pump())
        try:
            while (sentence := await sentences.get()) is not None:
                guarded = await turn.guard_output(sentence)
                if guarded.blocked:
                    # The rest of the reply is dropped: the refusal is spoken in its place.
                    resp.content_filtered = True
                    await self._say(resp, turn, guarded.text)
                    return
                if guarded.text.strip():
                    await self._say(resp, turn, guarded.text)
            await pumping  # a stream that broke mid-reply raises here
        finally:
            pumping.cancel()
            with contextlib.suppress(BaseException):
                await pumping

    async def _say(self, resp: ActiveResponse, turn: StreamingTurn, text: str) -> None:
        before = resp.queued_text
        ids = {"response_id": resp.id, "item_id": resp.item_id, "output_index": 0}
        ids["content_index"] = 0
        resp.queued_text = heard_prefix(before, text, 1.0)
        lead = " " if before else ""
        if not resp.audio:
            payload = event("response.output_text.delta", **ids, delta=lead + text)
            self._turn(Outgoing(lambda: payload, response=resp, heard=resp.queued_text))
            return
        samples = await turn.speak(text, resp.voice)
        payload = event("response.output_audio_transcript.delta", **ids, delta=lead + text)
        self._turn(Outgoing(lambda: payload, response=resp))
        if samples is None:  # an optional tts stage was skipped: the words still count
            self._turn(Outgoing(lambda: None, response=resp, heard=resp.queued_text))
            return
        pcm = to_pcm16(samples)
        step = PCM_RATE * 2 * self.settings.realtime_output_chunk_ms // 1000
        start = resp.queued_ms
        total = len(pcm)
        for offset in range(0, total, step):
            chunk = pcm[offset : offset + step]
            done = min(total, offset + step)
            await self.budget.acquire()
            if resp.cancelled:
                self.budget.release()
                return
            delta = event(
                "response.output_audio.delta", **ids, delta=base64.b64encode(chunk).decode()
            )
            self._turn(
                Outgoing(
                    lambda d=delta: d,  # type: ignore[misc]
                    response=resp,
                    audio_end_ms=start + done / (PCM_RATE * 2) * 1000,
                    heard=heard_prefix(before, text, done / total),
                )
            )
        resp.queued_ms = start + total / (PCM_RATE * 2) * 1000
        resp.segments.append(Segment(text, start, resp.queued_ms))
