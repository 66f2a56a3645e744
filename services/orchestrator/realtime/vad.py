"""Server VAD for a realtime session: 24 kHz PCM in, speech started / stopped events out.

Speech probability comes from a `kit.vad` detector (Silero by default) on 32 ms windows
resampled to 16 kHz. Speech *starts* only once `min_speech_ms` of it has been heard within an
onset (a cough, click or "mm" shorter than that is neither a turn nor a barge-in); it *stops*
after `silence_duration_ms` below the release threshold. The utterance handed on keeps
`prefix_padding_ms` before the onset.

With `speculate_ms` (less than the silence duration) the detector also says `paused` after
that much silence, with the utterance as it would be handed on; `resumed` if speech comes back
before `stopped`. A session can start the turn at `paused` and keep its output until
`stopped` confirms it: the utterance `stopped` carries is then exactly the one `paused` did.
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
    """`started`, `paused`, `resumed` or `stopped`; `paused` and `stopped` carry the utterance."""

    kind: str
    at_ms: int
    audio: np.ndarray | None = None  # 24 kHz float32, on `paused` and `stopped`
    forced: bool = False  # cut at the maximum utterance length
    start_sample: int = 0  # where the utterance starts in the session's input stream


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
        speculate_ms: int = 0,
    ) -> None:
        self.detector = detector
        self.threshold = threshold
        self.release = max(threshold - 0.15, 0.01)
        self.prefix = max(0, round(prefix_padding_ms / WINDOW_MS))
        self.silence_windows = max(1, round(silence_duration_ms / WINDOW_MS))
        self.min_windows = max(1, round(min_speech_ms / WINDOW_MS))
        self.max_windows = max(1, int(max_utterance_s * 1000 / WINDOW_MS))
        # 0: never pause. A pause as long as the silence itself would be the stop.
        pause = round(speculate_ms / WINDOW_MS) if speculate_ms > 0 else 0
        self.pause_windows = pause if 0 < pause < self.silence_windows else 0
        self._paused_at = 0  # speech windows kept when `paused` was said; 0: not paused
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
        self._paused_at = 0
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
            if self._paused_at:
                self._paused_at = 0
                return VadEvent("resumed", self.position_ms + int(WINDOW_MS))
        if self._silence >= self.silence_windows:
            return self._close(forced=False)
        if len(self._speech) >= self.max_windows:
            return self._close(forced=True)
        if self.pause_windows and self._silence == self.pause_windows and not self._paused_at:
            self._paused_at = len(self._speech)
            audio = np.concatenate(self._speech)
            return VadEvent("paused", self.position_ms + int(WINDOW_MS), audio, False, self._start)
        return None

    @property
    def _start(self) -> int:
        return max(0, self._start_window) * IN_WINDOW

    def _close(self, *, forced: bool) -> VadEvent:
        if self._paused_at:
            # The utterance `paused` announced, unchanged: a turn started then stays valid.
            kept = self._speech[: self._paused_at]
        else:
            # Keep ~300 ms of the trailing silence: Whisper clips word endings without it.
            trim = max(0, self._silence - 10)
            kept = self._speech[: len(self._speech) - trim] if trim else self._speech
        audio = np.concatenate(kept)
        start = self._start
        self._speech, self._silence, self._paused_at = [], 0, 0
        self.active = False
        return VadEvent("stopped", self.position_ms + int(WINDOW_MS), audio, forced, start)
