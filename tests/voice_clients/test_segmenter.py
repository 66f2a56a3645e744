"""Silero-based utterance segmentation on real generated speech with pauses."""

from __future__ import annotations

import numpy as np
import pytest

from services.discord_bot.audio import FRAME_BYTES, StreamResampler
from services.discord_bot.segmenter import UtteranceSegmenter
from services.discord_bot.vad import SileroDetector
from testkit.helpers import add_noise, synth_speech

SENTENCES = [
    "Hello there, how are you doing today?",
    "What is the weather like in Paris this week?",
    "Please tell me a short joke about computers.",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    return [synth_speech(s)[0] for s in SENTENCES]


def _with_pauses(parts: list[np.ndarray], pause_s: float, rate: int = 16000) -> np.ndarray:
    gap = np.zeros(int(pause_s * rate), dtype=np.float32)
    out = [gap]
    for p in parts:
        out += [p, gap]
    return np.concatenate(out)


def _segment(audio: np.ndarray, chunk: int = 320, **kw) -> list:
    seg = UtteranceSegmenter(SileroDetector(), **kw)
    found = []
    for i in range(0, len(audio), chunk):
        found += seg.feed(audio[i : i + chunk])
    return found + seg.flush()


def test_sentences_with_one_second_pauses_in_noise_give_one_utterance_each(speech):
    audio = add_noise(_with_pauses(speech, 1.0), snr_db=15, seed=7)
    found = _segment(audio, silence_ms=600)
    assert len(found) == 3
    for seg, clean in zip(found, speech, strict=True):
        # Each cut covers its sentence (plus a little padding) and not the neighbours.
        assert 0.8 * len(clean) / 16000 <= seg.duration_s <= len(clean) / 16000 + 0.9
        assert not seg.forced


def test_silence_longer_than_the_pauses_merges_them(speech):
    audio = add_noise(_with_pauses(speech[:2], 1.0), snr_db=20, seed=1)
    assert len(_segment(audio, silence_ms=1500)) == 1


def test_noise_alone_is_not_speech():
    noise = (0.05 * np.random.default_rng(2).standard_normal(16000 * 4)).astype(np.float32)
    assert _segment(noise) == []


def test_long_speech_is_cut_at_max_length(speech):
    audio = np.concatenate(speech)  # no pauses: ~8 s of continuous speech
    found = _segment(audio, silence_ms=2000, max_utterance_s=2.0)
    assert len(found) >= 3 and found[0].forced and found[0].duration_s <= 2.05


def test_discord_frames_through_resampler_and_segmenter(speech):
    # The bot's real path: 48 kHz stereo 20 ms frames → 16 kHz mono → VAD.
    from services.kit.audio import resample

    audio16 = _with_pauses(speech[:2], 1.2)
    a48 = resample(audio16, 16000, 48000)
    pcm = (np.repeat(np.clip(a48, -1, 1), 2) * 32767).astype("<i2").tobytes()
    rs = StreamResampler()
    seg = UtteranceSegmenter(SileroDetector(), silence_ms=700)
    found = []
    for i in range(0, len(pcm), FRAME_BYTES):
        found += seg.feed(rs.feed(pcm[i : i + FRAME_BYTES]))
    found += seg.feed(rs.flush()) + seg.flush()
    assert len(found) == 2


def test_fixture_speech_is_the_same_every_time():
    # The cut-length test above failed by chance while Piper sampled noise per call.
    first, again = synth_speech(SENTENCES[0])[0], synth_speech(SENTENCES[0])[0]
    assert np.array_equal(first, again)
