"""Server VAD for a realtime session: 24 kHz PCM in, speech started / stopped events out.

Speech probability comes from a `kit.vad` detector (Silero by default) on 32 ms windows
resampled to 16 kHz. Speech *starts* only once `min_speech_ms` of it has been heard within an
onset (a cough, click or "mm" shorter than that is neither a turn nor a barge-in); it *stops*
after `silence_duration_ms` below the release threshold. The utterance handed on keeps
`prefix_padding_ms` before the onset.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from services.kit.vad import WINDOW, SpeechDetector

IN_RATE = 24_000
IN_WINDOW = WINDOW * 3 // 2  # 768 samples at 24 kHz = 512 at 16 kHz = 32 ms
WINDOW_MS = 32.0
# An onset dies after this much silence without reaching the minimum speech duration.
_ONSET_GAP_WINDOWS = 4


@dataclass(frozen=True)
class VadEvent:
    """`started` (audio position of the utterance start) or `stopped` (with the utterance)."""

    kind: str
    at_ms: int
    audio: np.ndarray | None = None  # 24 kHz float32, on `stopped`
    forced: bool = False  # cut at the maximum utterance length
    start_sample: int = 0  # on `stopped`: index of the utterance's first sample in the input


class TurnDetector:
    """Segments one session's input stream into utterances."""

    def __init__(
        self,
        detector: SpeechDetector,
        *,
        threshold: float,
        prefix_padding_ms: int,
        silence_duration_ms: int,
        min_speech_ms: int,
        max_utterance_s: float,
    ) -> None:
        self.detector = detector
        self.threshold = threshold
        self.release = max(threshold - 0.15, 0.01)
        self.prefix = max(0, round(prefix_padding_ms / WINDOW_MS))
        self.silence_windows = max(1, round(silence_duration_ms / WINDOW_MS))
        self.min_windows = max(1, round(min_speech_ms / WINDOW_MS))
        self.max_windows = max(1, int(max_utterance_s * 1000 / WINDOW_MS))
        self._pending = np.zeros(0, dtype=np.float32)
        self._preroll: deque[np.ndarray] = deque(maxlen=max(1, self.prefix))
        self._onset: list[np.ndarray] = []
        self._onset_speech = 0
        self._onset_gap = 0
        self._speech: list[np.ndarray] = []
        self._silence = 0
        self._windows_seen = 0  # position of the next window, in windows since the start
        self._start_window = 0
        self.active = False

    @property
    def position_ms(self) -> int:
        """Audio fed so far (whole windows), in ms."""
        return int(self._windows_seen * WINDOW_MS)

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        """Add 24 kHz float samples; return the events they caused, in order."""
        from scipy.signal import resample_poly

        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n = len(self._pending) // IN_WINDOW
        if n == 0:
            return []
        block = self._pending[: n * IN_WINDOW]
        self._pending = self._pending[n * IN_WINDOW :]
        at16 = np.asarray(resample_poly(block, 2, 3), dtype=np.float32)[: n * WINDOW]
        probs = self.detector.probabilities(at16.reshape(n, WINDOW))
        events: list[VadEvent] = []
        for i in range(n):
            ev = self._step(block[i * IN_WINDOW : (i + 1) * IN_WINDOW], float(probs[i]))
            self._windows_seen += 1
            if ev is not None:
                events.append(ev)
        return events

    def reset(self) -> None:
        """Drop any open utterance (input buffer cleared or committed by hand)."""
        self._preroll.clear()
        self._onset, self._onset_speech, self._onset_gap = [], 0, 0
        self._speech, self._silence = [], 0
        self.active = False

    def take(self) -> np.ndarray | None:
        """The open utterance (a manual commit during speech), or None; the detector resets."""
        kept = self._speech if self.active else []
        self.reset()
        return np.concatenate(kept) if kept else None

    def _step(self, window: np.ndarray, prob: float) -> VadEvent | None:
        if self.active:
            return self._step_active(window, prob)
        if not self._onset:
            if prob >= self.threshold:
                self._start_window = self._windows_seen - len(self._preroll)
                self._onset = [*self._preroll, window]
                self._onset_speech, self._onset_gap = 1, 0
            else:
                self._preroll.append(window)
                return None
        else:
            self._onset.append(window)
            if prob >= self.threshold:
                self._onset_speech += 1
                self._onset_gap = 0
            elif prob < self.release:
                self._onset_gap += 1
                if self._onset_gap >= _ONSET_GAP_WINDOWS:
                    # Too short to be a turn: a backchannel or a click. Keep the tail as preroll.
                    for w in self._onset[-self._preroll.maxlen :] if self._preroll.maxlen else []:
                        self._preroll.append(w)
                    self._onset, self._onset_speech = [], 0
                    return None
        if self._onset_speech >= self.min_windows:
            self.active = True
            self._speech, self._onset = self._onset, []
            self._silence = 0
            self._preroll.clear()
            return VadEvent("started", int(max(0, self._start_window) * WINDOW_MS))
        return None

    def _step_active(self, window: np.ndarray, prob: float) -> VadEvent | None:
        self._speech.append(window)
        if prob < self.release:
            self._silence += 1
        elif prob >= self.threshold:
            self._silence = 0
        if self._silence >= self.silence_windows:
            return self._close(forced=False)
        if len(self._speech) >= self.max_windows:
            return self._close(forced=True)
        return None

    def _close(self, *, forced: bool) -> VadEvent:
        # Keep ~300 ms of the trailing silence: Whisper clips word endings without it.
        trim = max(0, self._silence - 10)
        kept = self._speech[: len(self._speech) - trim] if trim else self._speech
        audio = np.concatenate(kept)
        self._speech, self._silence = [], 0
        self.active = False
        start = self._start_window * IN_WINDOW
        return VadEvent("stopped", self.position_ms + int(WINDOW_MS), audio, forced, start)
