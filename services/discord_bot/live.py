"""Live mode: each speaker talks to the orchestrator over one realtime session.

The speaker's Discord audio goes up as 24 kHz PCM16 while they talk (the orchestrator's VAD
finds the end of the turn), the reply is played as its audio deltas arrive, and speech
during a reply stops it at once (server VAD barge-in; the conversation memory is trimmed to
what was played). Discord-free: the adapter gives a `LiveOutput`, tests give a fake.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from services.client.live import RATE as LIVE_RATE
from services.client.live import LiveSession, reply_text
from services.discord_bot.audio import FRAME_BYTES, StreamResampler, Upsampler
from services.discord_bot.handler import PlaybackUnavailable, clip_message
from services.discord_bot.metrics import BotMetrics
from services.discord_bot.sessions import SessionIds
from services.kit.audio import to_pcm16

if TYPE_CHECKING:
    from openai.types.realtime import RealtimeServerEvent

log = logging.getLogger("discord_bot.live")

FRAME_MS = 20  # one Discord frame (FRAME_BYTES of 48 kHz stereo PCM16)
# A gap in a speaker's packets longer than this is silence to pad (shorter ones are jitter).
_GAP_S = 0.1
# Audio kept while no session takes it (opening, or waiting to retry): the newest 10 s, well
# under the server's 1 MiB per append.
_MAX_PENDING_BYTES = 10 * LIVE_RATE * 2

# Opens a live session for a conversation id (production: services.client.live.live_session).
SessionOpener = Callable[[str], AbstractAsyncContextManager[LiveSession]]


class BufferedReply:
    """Reply audio between the session (writes, event loop) and the player (reads, its thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._finished = False
        self._stopped = False
        self._frames = 0

    def write(self, pcm48_stereo: bytes) -> None:
        """Queue audio behind what is queued."""
        with self._lock:
            if not self._stopped:
                self._buf += pcm48_stereo

    def finish(self) -> None:
        """No more audio is coming: play out what is queued, then end."""
        with self._lock:
            self._finished = True

    def interrupt(self) -> None:
        """Stop now and drop what is queued."""
        with self._lock:
            self._stopped = True
            self._buf.clear()

    def read_frame(self) -> bytes:
        """The next 20 ms frame; silence while the reply is still arriving, b"" at the end."""
        with self._lock:
            if self._stopped:
                return b""
            if len(self._buf) >= FRAME_BYTES or (self._finished and self._buf):
                frame = bytes(self._buf[:FRAME_BYTES]).ljust(FRAME_BYTES, b"\0")
                del self._buf[:FRAME_BYTES]
                self._frames += 1
                return frame
            if self._finished:
                return b""
            return bytes(FRAME_BYTES)  # underrun: the next sentence is still being spoken

    @property
    def played_ms(self) -> int:
        """Reply audio handed to the player so far."""
        return self._frames * FRAME_MS

    @property
    def done(self) -> bool:
        """True once interrupted, or finished and played out."""
        with self._lock:
            return self._stopped or (self._finished and not self._buf)


class LiveOutput(Protocol):
    """Where live replies go: streamed into the voice channel, text as the fallback."""

    def start_reply(self, reply: BufferedReply) -> None:
        """Start playing `reply` as it fills, or raise PlaybackUnavailable."""
        ...

    async def send_text(self, text: str) -> None:
        """Post a message in the text channel tied to the voice session."""
        ...


@dataclass
class _Response:
    """One reply being received."""

    reply: BufferedReply | None = None
    item_id: str | None = None
    playable: bool = True
    upsampler: Upsampler = field(default_factory=Upsampler)


@dataclass(frozen=True)
class LiveConfig:
    """What every speaker's session shares, built once from settings."""

    opener: SessionOpener
    metrics: BotMetrics | None = None
    always_post_text: bool = False
    chunk_ms: int = 40
    silence_pad_s: float = 2.0  # silence sent after a speaker goes quiet
    reconnect_s: float = 1.0  # least time between a failed session and the next try
    on_outcome: Callable[[str], None] | None = None


class LiveSpeaker:
    """One speaker's live session: audio up at real-time pace, reply down, barge-in.

    `feed` may be called from the voice library's receive thread. The session opens on the
    speaker's first audio and again on new audio after it ended (failures are told once and
    retried no sooner than `reconnect_s` later). Discord sends nothing while a user is quiet,
    so up to `silence_pad_s` of silence is sent after their audio: the server's VAD needs it
    to hear the end of the turn.
    """

    def __init__(
        self,
        config: LiveConfig,
        session_id: str,
        user_name: str,
        output: LiveOutput,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.config, self.session_id, self.user_name = config, session_id, user_name
        self.output, self.loop = output, loop
        self._lock = threading.Lock()
        self._resampler = StreamResampler(rate=LIVE_RATE)
        self._pending = bytearray()
        self._last_audio = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failed_at: float | None = None
        self._closed = False
        self._playing: _Response | None = None

    def feed(self, pcm48_stereo: bytes) -> None:
        """Add one chunk of the speaker's audio (any thread)."""
        if self._closed:
            return
        with self._lock:
            self._pending += to_pcm16(self._resampler.feed(pcm48_stereo))
            del self._pending[:-_MAX_PENDING_BYTES]
            self._last_audio = time.monotonic()
        self.loop.call_soon_threadsafe(self._audio_arrived)

    def _audio_arrived(self) -> None:
        self._wake.set()
        if self._closed or (self._task is not None and not self._task.done()):
            return
        if (
            self._failed_at is not None
            and time.monotonic() - self._failed_at < self.config.reconnect_s
        ):
            return
        self._task = self.loop.create_task(self._run(), name=f"live-{self.session_id[-8:]}")

    async def close(self) -> None:
        """End the session and stop any reply playing."""
        self._closed = True
        self._stop_playing()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        try:
            async with self.config.opener(self.session_id) as session:
                # Either side failing (or the server closing the socket) ends the session.
                tasks = {
                    asyncio.create_task(self._send(session)),
                    asyncio.create_task(self._receive(session)),
                }
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                for task in done:
                    task.result()  # re-raise what ended it
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the SDK and websockets raise many types; all end the session
            self._failed_at = time.monotonic()
            log.warning("live session failed", extra={"error": type(exc).__name__})
            self._record("error")
            await self._tell(f"Sorry {self.user_name}, I could not reach the assistant: {exc}")
        finally:
            self._stop_playing()

    def _take(self) -> bytes:
        with self._lock:
            data = bytes(self._pending)
            self._pending.clear()
            return data

    async def _send(self, session: LiveSession) -> None:
        chunk_s, pad_s = self.config.chunk_ms / 1000, self.config.silence_pad_s
        silence = bytes(2 * int(LIVE_RATE * chunk_s))
        padded_s = pad_s  # silence owed after the audio last sent: none yet
        while True:
            data = self._take()
            if data:
                await session.append(data)
                padded_s = 0.0
            elif time.monotonic() - self._last_audio < _GAP_S:
                pass  # packet jitter, not a pause
            elif padded_s < pad_s:
                # Counted from what was sent, not received: audio that waited for the session
                # to open still gets its silence after it.
                await session.append(silence)
                padded_s += chunk_s
            else:
                # Padded enough: wait for the speaker's next audio instead of streaming zeros.
                self._wake.clear()
                with self._lock:
                    waiting = not self._pending
                if waiting:
                    await self._wake.wait()
                continue
            await asyncio.sleep(chunk_s)

    async def _receive(self, session: LiveSession) -> None:
        current = _Response()
        transcript: str | None = None
        stopped_at: float | None = None
        error: str | None = None
        async for ev in session.events():
            if ev.type == "input_audio_buffer.speech_started":
                await self._barge_in(session)
            elif ev.type == "input_audio_buffer.speech_stopped":
                stopped_at = time.perf_counter()
            elif ev.type == "conversation.item.input_audio_transcription.completed":
                transcript = ev.transcript
            elif ev.type == "conversation.item.input_audio_transcription.failed":
                self._record("empty")  # the VAD heard a cough; Whisper found no words
            elif ev.type == "response.output_item.added":
                current.item_id = ev.item.id
            elif ev.type == "response.output_audio.delta":
                if current.reply is None and current.playable:
                    current = self._start(current, stopped_at)
                if current.reply is not None:
                    current.reply.write(current.upsampler.feed(base64.b64decode(ev.delta)))
            elif ev.type == "error":
                error = ev.error.message
                log.info("live session error event", extra={"code": ev.error.code})
            elif ev.type == "response.done":
                await self._done(ev, current, transcript, error)
                current, transcript, error = _Response(), None, None

    def _start(self, current: _Response, stopped_at: float | None) -> _Response:
        reply = BufferedReply()
        try:
            self.output.start_reply(reply)
        except PlaybackUnavailable as exc:
            log.info("playback impossible, posting text", extra={"reason": str(exc)})
            return _Response(item_id=current.item_id, playable=False)
        if self.config.metrics is not None and stopped_at is not None:
            self.config.metrics.turn_latency.observe(time.perf_counter() - stopped_at)
        started = _Response(reply, current.item_id)
        self._playing = started
        return started

    async def _barge_in(self, session: LiveSession) -> None:
        playing = self._playing
        if playing is None or playing.reply is None or playing.reply.done:
            return
        playing.reply.interrupt()
        self._playing = None
        if playing.item_id is not None:
            # Memory keeps what the user heard, not everything the server had sent.
            await session.truncate(playing.item_id, playing.reply.played_ms)

    async def _done(
        self,
        ev: RealtimeServerEvent,
        current: _Response,
        transcript: str | None,
        error: str | None,
    ) -> None:
        if ev.type != "response.done":
            return
        status = ev.response.status or ""
        if current.reply is not None:
            current.reply.finish()
        if status == "failed":
            self._record("error")
            await self._tell(f"Sorry {self.user_name}, I could not answer: {error or 'failed'}")
            return
        if status == "cancelled":
            self._record("interrupted")
            return
        self._record("played" if current.reply is not None else "posted")
        if current.reply is None or self.config.always_post_text:
            text = f"**{self.user_name}:** {transcript or ''}\n**Assistant:** {reply_text(ev)}"
            await self._tell(text)

    def _stop_playing(self) -> None:
        if self._playing is not None and self._playing.reply is not None:
            self._playing.reply.interrupt()
        self._playing = None

    def _record(self, outcome: str) -> None:
        if self.config.metrics is not None:
            self.config.metrics.utterances.labels(outcome).inc()
        if self.config.on_outcome is not None:
            self.config.on_outcome(outcome)

    async def _tell(self, text: str) -> None:
        try:
            await self.output.send_text(clip_message(text))
        except Exception as exc:  # a failed post must not end the user's session
            log.warning("could not post a message", extra={"error": type(exc).__name__})


class LiveReceiver:
    """A guild's speakers, each with their own live session (the same calls as VoiceReceiver)."""

    def __init__(
        self,
        guild_id: int,
        config: LiveConfig,
        sessions: SessionIds,
        output: LiveOutput,
        *,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.guild_id, self.sessions, self.loop = guild_id, sessions, loop
        self._new_speaker = functools.partial(LiveSpeaker, config, output=output, loop=loop)
        self._speakers: dict[int, LiveSpeaker] = {}
        self._lock = threading.Lock()  # feed() and user_left() may run on different threads

    def speaker(self, user_id: int, user_name: str) -> LiveSpeaker:
        """The user's live speaker, made on first use (any thread)."""
        with self._lock:
            found = self._speakers.get(user_id)
            if found is None:
                session_id = self.sessions.of(self.guild_id, user_id)
                found = self._new_speaker(session_id, user_name)
                self._speakers[user_id] = found
            return found

    def feed(self, user_id: int, user_name: str, pcm48_stereo: bytes) -> None:
        """Add one chunk of a user's audio (any thread)."""
        self.speaker(user_id, user_name).feed(pcm48_stereo)

    def user_left(self, user_id: int) -> None:
        """The user left the channel: end their session (any thread)."""
        with self._lock:
            speaker = self._speakers.pop(user_id, None)
        if speaker is not None:
            asyncio.run_coroutine_threadsafe(speaker.close(), self.loop)

    async def close(self) -> None:
        """End every session."""
        with self._lock:
            speakers = list(self._speakers.values())
            self._speakers.clear()
        await asyncio.gather(*(s.close() for s in speakers), return_exceptions=True)
