"""48 kHz stereo ⇄ 16 kHz mono conversions used between Discord and the pipeline."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from services.discord_bot.audio import (
    FRAME_BYTES,
    StreamResampler,
    Upsampler,
    pcm48_stereo_to_16k_mono,
    wav_to_pcm48_stereo,
)
from services.discord_bot.live import BufferedReply
from services.kit.audio import encode_wav, to_pcm16


def _stereo_pcm(left: np.ndarray, right: np.ndarray) -> bytes:
    inter = np.stack([left, right], axis=1).reshape(-1)
    return (np.clip(inter, -1, 1) * 32767).astype("<i2").tobytes()


def _tone(freq: float, seconds: float, rate: int = 48000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spec))])


def test_stereo_48k_to_mono_16k_keeps_speech_band_and_averages_channels():
    tone = _tone(440, 1.0)
    out = pcm48_stereo_to_16k_mono(_stereo_pcm(tone, tone))
    assert out.dtype == np.float32 and len(out) == 16000
    assert abs(_peak_hz(out, 16000) - 440) < 2
    assert abs(np.max(np.abs(out[1000:-1000])) - 0.5) < 0.02
    # Only one channel carries the tone: the mono mix is the average, half the amplitude.
    half = pcm48_stereo_to_16k_mono(_stereo_pcm(tone, np.zeros_like(tone)))
    assert abs(np.max(np.abs(half[1000:-1000])) - 0.25) < 0.02


def test_tone_above_16k_nyquist_is_filtered_not_aliased():
    hiss = _tone(12000, 1.0)  # would alias to 4 kHz with naive decimation
    out = pcm48_stereo_to_16k_mono(_stereo_pcm(hiss, hiss))
    assert float(np.sqrt(np.mean(out[1000:-1000] ** 2))) < 0.01


def test_stream_resampler_on_20ms_frames_matches_whole_conversion():
    rng = np.random.default_rng(3)
    left = (_tone(300, 2.0) + 0.05 * rng.standard_normal(96000)).astype(np.float32)
    pcm = _stereo_pcm(left, left)
    rs = StreamResampler(block_ms=100)
    pieces = [rs.feed(pcm[i : i + FRAME_BYTES]) for i in range(0, len(pcm), FRAME_BYTES)]
    pieces.append(rs.flush())
    streamed = np.concatenate(pieces)
    whole = pcm48_stereo_to_16k_mono(pcm)
    assert len(streamed) == len(whole) == 32000
    # Block edges differ slightly; the signals must still match closely.
    err = np.sqrt(np.mean((streamed - whole) ** 2)) / np.sqrt(np.mean(whole**2))
    assert err < 0.05


def test_reply_wav_to_discord_pcm_is_48k_stereo():
    mono, rate = _tone(440, 0.5, rate=22050), 22050
    pcm = wav_to_pcm48_stereo(encode_wav(mono, rate))
    frames = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)
    assert abs(len(frames) - 24000) <= 2
    assert np.array_equal(frames[:, 0], frames[:, 1])
    back, back_rate = sf.read(io.BytesIO(encode_wav(frames[:, 0] / 32768.0, 48000)))
    assert back_rate == 48000 and abs(_peak_hz(back, 48000) - 440) < 3


def test_live_audio_both_ways_keeps_pitch_and_has_no_seams():
    # Up: Discord frames → 24 kHz mono for the live session.
    up = StreamResampler(rate=24000)
    pcm = _stereo_pcm(_tone(440, 1.0), _tone(440, 1.0))
    got = np.concatenate(
        [up.feed(pcm[i : i + FRAME_BYTES]) for i in range(0, len(pcm), FRAME_BYTES)]
    )
    assert abs(_peak_hz(got, 24000) - 440) < 3
    # Down: 100 ms reply deltas → 48 kHz stereo, the same as converting the whole reply at once.
    reply = to_pcm16(_tone(300, 1.0, rate=24000))
    step = 4800  # 100 ms of 24 kHz PCM16
    chunked = Upsampler()
    pieces = b"".join(chunked.feed(reply[i : i + step]) for i in range(0, len(reply), step))
    assert pieces == Upsampler().feed(reply)
    stereo = np.frombuffer(pieces, dtype="<i2").reshape(-1, 2)
    assert len(stereo) == 48000 and (stereo[:, 0] == stereo[:, 1]).all()
    assert abs(_peak_hz(stereo[:, 0].astype(np.float32) / 32768, 48000) - 300) < 3


def test_buffered_reply_plays_in_frames_fills_gaps_and_stops_at_once():
    reply = BufferedReply()
    reply.write(b"\x01" * (FRAME_BYTES + 10))
    assert reply.read_frame() == b"\x01" * FRAME_BYTES
    # Less than a frame while more is coming: silence, the partial frame waits.
    assert reply.read_frame() == bytes(FRAME_BYTES) and not reply.done
    reply.finish()
    assert reply.read_frame() == (b"\x01" * 10).ljust(FRAME_BYTES, b"\0")
    assert reply.read_frame() == b"" and reply.done and reply.played_ms == 40
    cut = BufferedReply()
    cut.write(bytes(FRAME_BYTES * 50))
    cut.interrupt()
    cut.write(b"\x02" * FRAME_BYTES)  # a delta already on its way is dropped too
    assert cut.read_frame() == b"" and cut.done and cut.played_ms == 0
