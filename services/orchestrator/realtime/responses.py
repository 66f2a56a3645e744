"""A response in flight: what was queued, what the client was really sent, and its end events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.orchestrator.realtime.protocol import assistant_item, event, response_object


@dataclass
class Outgoing:
    """One server event waiting for the sender; `build` makes it at send time (None: no event)."""

    build: Callable[[], dict[str, Any] | None]
    response: ActiveResponse | None = None  # set on a response's content deltas (droppable)
    audio_end_ms: float | None = None  # set on audio deltas: the reply's audio sent after it
    heard: str | None = None  # the reply's text covered once this delta is sent


def heard_prefix(before: str, sentence: str, fraction: float) -> str:
    """The text heard after `fraction` of a sentence's audio (words in proportion)."""
    words = sentence.split()
    k = len(words) if fraction >= 1.0 else round(len(words) * max(0.0, fraction))
    return " ".join(p for p in (before, " ".join(words[:k])) if p)


@dataclass
class Segment:
    """A spoken sentence on the reply's audio timeline."""

    text: str
    start_ms: float
    end_ms: float


@dataclass
class ActiveResponse:
    """A response from `response.created` to `response.done`."""

    id: str
    item_id: str
    user_text: str
    modalities: list[str]
    voice: str
    speech_stopped_at: float | None = None  # perf_counter of the speech_stopped that caused it
    task: asyncio.Task[None] | None = None
    cancelled: bool = False
    cancel_reason: str | None = None
    input_blocked: bool = False  # the input guard refused: the turn is not remembered
    content_filtered: bool = False  # the output guard cut the reply
    error: dict[str, Any] | None = None
    queued_text: str = ""  # everything given to the client queue
    queued_ms: float = 0.0
    segments: list[Segment] = field(default_factory=list)
    heard: str = ""  # the reply's text whose audio (or text) reached the client
    sent_ms: float = 0.0
    first_audio_s: float | None = None
    finished: bool = False

    @property
    def audio(self) -> bool:
        """Whether the reply is spoken (else text only)."""
        return self.modalities == ["audio"]

    def mark_sent(self, out: Outgoing) -> float | None:
        """Record a delivered delta; returns speech-stopped → first-audio seconds once."""
        if out.heard is not None:
            self.heard = out.heard
        if out.audio_end_ms is None:
            return None
        self.sent_ms = out.audio_end_ms
        if self.first_audio_s is None and self.speech_stopped_at is not None:
            self.first_audio_s = time.perf_counter() - self.speech_stopped_at
            return self.first_audio_s
        return None

    def truncate(self, audio_end_ms: float) -> None:
        """Keep only the text whose audio ends by `audio_end_ms` (the client's playback)."""
        heard = ""
        for seg in self.segments:
            if audio_end_ms >= seg.end_ms:
                heard = heard_prefix(heard, seg.text, 1.0)
            elif audio_end_ms > seg.start_ms:
                span = max(1.0, seg.end_ms - seg.start_ms)
                heard = heard_prefix(heard, seg.text, (audio_end_ms - seg.start_ms) / span)
                break
            else:
                break
        self.heard = heard
        self.sent_ms = min(self.sent_ms, audio_end_ms)

    def status(self) -> tuple[str, str | None]:
        """(status, reason) for response.done."""
        if self.cancelled:
            return "cancelled", self.cancel_reason
        if self.error is not None:
            return "failed", None
        if self.content_filtered:
            return "incomplete", "content_filter"
        return "completed", None

    def item(self, status: str) -> dict[str, Any]:
        """The assistant item with the text the client really got."""
        return assistant_item(self.item_id, self.heard, status, audio=self.audio)

    def done_events(self) -> list[Callable[[], dict[str, Any]]]:
        """The closing events, built when sent (so they carry what was really delivered)."""
        ids = {"response_id": self.id, "item_id": self.item_id, "output_index": 0}
        part = {**ids, "content_index": 0}

        def item_status() -> str:
            return "completed" if self.status()[0] == "completed" else "incomplete"

        builders: list[Callable[[], dict[str, Any]]] = []
        if self.audio:
            builders.append(lambda: event("response.output_audio.done", **part))
            builders.append(
                lambda: event(
                    "response.output_audio_transcript.done", **part, transcript=self.heard
                )
            )
            kind = "audio"
        else:
            builders.append(lambda: event("response.output_text.done", **part, text=self.heard))
            kind = "text"

        def content_done() -> dict[str, Any]:
            key = "transcript" if kind == "audio" else "text"
            return event("response.content_part.done", **part, part={"type": kind, key: self.heard})

        builders.append(content_done)
        builders.append(
            lambda: event("response.output_item.done", **ids, item=self.item(item_status()))
        )
        builders.append(lambda: event("conversation.item.done", item=self.item(item_status())))
        builders.append(self._response_done)
        return builders

    def _response_done(self) -> dict[str, Any]:
        status, reason = self.status()
        body = response_object(
            self.id,
            status,
            modalities=self.modalities,
            voice=self.voice,
            output=[self.item("completed" if status == "completed" else "incomplete")],
            reason=reason,
            error=self.error,
        )
        if self.first_audio_s is not None:
            body["metadata"] = {
                "speech_stopped_to_first_audio_ms": f"{self.first_audio_s * 1000:.0f}"
            }
        return event("response.done", response=body)
