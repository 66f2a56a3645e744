"""Per-user voice streams of one guild → utterances → one worker per user."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from services.discord_bot.audio import StreamResampler
from services.discord_bot.handler import TurnOutcome, Utterance, UtteranceHandler, VoiceOutput
from services.discord_bot.metrics import BotMetrics
from services.discord_bot.segmenter import UtteranceSegmenter

log = logging.getLogger("discord_bot.receiver")

SegmenterFactory = Callable[[], UtteranceSegmenter]


@dataclass
class _Speaker:
    name: str
    resampler: StreamResampler
    segmenter: UtteranceSegmenter
    queue: asyncio.Queue[Utterance] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None


class VoiceReceiver:
    """Feeds each speaker's 48 kHz stereo PCM through VAD and sends finished utterances on.

    `feed` may be called from the voice library's receive thread: VAD runs there, off the
    event loop, and only finished utterances cross into the loop. Each user has one worker,
    so a user's turns reach the orchestrator in order while users do not wait on each other.
    """

    def __init__(
        self,
        guild_id: int,
        handler: UtteranceHandler,
        output: VoiceOutput,
        segmenter_factory: SegmenterFactory,
        *,
        loop: asyncio.AbstractEventLoop,
        max_pending: int = 3,
        metrics: BotMetrics | None = None,
        on_outcome: Callable[[Utterance, TurnOutcome], None] | None = None,
    ) -> None:
        self.guild_id = guild_id
        self.handler = handler
        self.output = output
        self.segmenter_factory = segmenter_factory
        self.loop = loop
        self.max_pending = max_pending
        self.metrics = metrics
        self.on_outcome = on_outcome
        self._speakers: dict[int, _Speaker] = {}
        self._lock = threading.Lock()  # feed() and user_left() may run on different threads
        self._closed = False

    def feed(self, user_id: int, user_name: str, pcm48_stereo: bytes) -> None:
        """Add one chunk of a user's audio (any thread)."""
        if self._closed:
            return
        with self._lock:
            speaker = self._speakers.get(user_id)
            if speaker is None:
                speaker = _Speaker(user_name, StreamResampler(), self.segmenter_factory())
                self._speakers[user_id] = speaker
            segments = speaker.segmenter.feed(speaker.resampler.feed(pcm48_stereo))
        for seg in segments:
            utt = Utterance(self.guild_id, user_id, user_name, seg)
            self.loop.call_soon_threadsafe(self._enqueue, utt)

    def user_left(self, user_id: int) -> None:
        """The user stopped transmitting for good (left the channel): close their utterance."""
        with self._lock:
            speaker = self._speakers.get(user_id)
            if speaker is None:
                return
            segments = speaker.segmenter.feed(speaker.resampler.flush())
            segments += speaker.segmenter.flush()
        for seg in segments:
            self.loop.call_soon_threadsafe(
                self._enqueue, Utterance(self.guild_id, user_id, speaker.name, seg)
            )

    def _enqueue(self, utt: Utterance) -> None:
        speaker = self._speakers.get(utt.user_id)
        if speaker is None or self._closed:
            return
        while speaker.queue.qsize() >= self.max_pending:
            # The user keeps talking faster than turns finish: drop the oldest, keep the newest.
            speaker.queue.get_nowait()
            speaker.queue.task_done()
            if self.metrics is not None:
                self.metrics.utterances.labels("dropped").inc()
        speaker.queue.put_nowait(utt)
        if speaker.worker is None or speaker.worker.done():
            speaker.worker = self.loop.create_task(self._work(speaker))

    async def _work(self, speaker: _Speaker) -> None:
        while True:
            utt = await speaker.queue.get()
            try:
                outcome = await self.handler.handle(utt, self.output)
                if self.on_outcome is not None:
                    self.on_outcome(utt, outcome)
            except Exception:  # one bad turn must not silence this user for the session
                log.exception("utterance handling failed")
            finally:
                speaker.queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued utterance has been handled."""
        for speaker in list(self._speakers.values()):
            await speaker.queue.join()

    async def close(self) -> None:
        """Stop all workers (pending utterances are abandoned)."""
        self._closed = True
        for speaker in self._speakers.values():
            if speaker.worker is not None:
                speaker.worker.cancel()
        workers = [s.worker for s in self._speakers.values() if s.worker is not None]
        await asyncio.gather(*workers, return_exceptions=True)
        self._speakers.clear()
