"""Streaming utterance segmentation: speech starts above a VAD threshold, ends after silence."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from services.discord_bot.vad import WINDOW, SpeechDetector

RATE = 16_000
_WINDOW_MS = WINDOW * 1000 / RATE  # 32 ms


@dataclass(frozen=True)
class Segment:
    """One finished utterance: 16 kHz mono samples and when its end was detected."""

    samples: np.ndarray
    speech_ms: float
    ended_at: float  # time.perf_counter() when the segmenter closed it
    forced: bool = False  # cut at max length rather than ended by silence

    @property
    def duration_s(self) -> float:
        """Length in seconds (padding included)."""
        return len(self.samples) / RATE


class UtteranceSegmenter:
    """Cut one speaker's continuous 16 kHz stream into utterances.

    Hysteresis as in Silero's own segmentation: speech starts at `threshold`, a window counts as
    silence below `threshold - 0.15`; `silence_ms` of silence ends the utterance.
    """

    def __init__(
        self,
        detector: SpeechDetector,
        *,
        threshold: float = 0.5,
        silence_ms: int = 800,
        min_speech_ms: int = 300,
        max_utterance_s: float = 20.0,
        pad_ms: int = 200,
    ) -> None:
        self.detector = detector
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01)
        self.silence_windows = max(1, round(silence_ms / _WINDOW_MS))
        self.min_speech_windows = round(min_speech_ms / _WINDOW_MS)
        self.max_windows = int(max_utterance_s * 1000 / _WINDOW_MS)
        self.pad_windows = round(pad_ms / _WINDOW_MS)
        self._pending = np.zeros(0, dtype=np.float32)
        self._preroll: deque[np.ndarray] = deque(maxlen=max(1, self.pad_windows))
        self._speech: list[np.ndarray] = []
        self._speech_windows = 0
        self._silence_run = 0
        self._active = False

    @property
    def in_speech(self) -> bool:
        """True while an utterance is open."""
        return self._active

    def feed(self, samples: np.ndarray) -> list[Segment]:
        """Add 16 kHz mono samples; return the utterances they completed."""
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n = len(self._pending) // WINDOW
        if n == 0:
            return []
        windows = self._pending[: n * WINDOW].reshape(n, WINDOW)
        self._pending = self._pending[n * WINDOW :]
        probs = self.detector.probabilities(windows)
        done: list[Segment] = []
        for window, prob in zip(windows, probs, strict=True):
            seg = self._step(window, float(prob))
            if seg is not None:
                done.append(seg)
        return done

    def flush(self) -> list[Segment]:
        """End the stream (speaker left): close an open utterance if it has enough speech."""
        self._pending = np.zeros(0, dtype=np.float32)
        if not self._active:
            return []
        seg = self._close(forced=False)
        return [seg] if seg is not None else []

    def _step(self, window: np.ndarray, prob: float) -> Segment | None:
        if not self._active:
            if prob >= self.threshold:
                self._active = True
                self._speech = [*self._preroll, window]
                self._preroll.clear()
                self._speech_windows = 1
                self._silence_run = 0
            else:
                self._preroll.append(window)
            return None
        self._speech.append(window)
        if prob < self.neg_threshold:
            self._silence_run += 1
        elif prob >= self.threshold:
            self._speech_windows += 1 + self._silence_run if self._silence_run < 3 else 1
            self._silence_run = 0
        if self._silence_run >= self.silence_windows:
            return self._close(forced=False)
        if len(self._speech) >= self.max_windows:
            return self._close(forced=True)
        return None

    def _close(self, *, forced: bool) -> Segment | None:
        # Keep `pad_ms` of the trailing silence so word endings are not clipped.
        trim = max(0, self._silence_run - self.pad_windows)
        kept = self._speech[: len(self._speech) - trim] if trim else self._speech
        speech_windows = self._speech_windows
        self._active = False
        self._speech = []
        self._speech_windows = 0
        self._silence_run = 0
        if speech_windows < self.min_speech_windows or not kept:
            return None
        return Segment(
            samples=np.concatenate(kept),
            speech_ms=speech_windows * _WINDOW_MS,
            ended_at=time.perf_counter(),
            forced=forced,
        )
