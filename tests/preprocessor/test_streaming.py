"""HTTP streaming and WebSocket output match whole-file output; state is per connection."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
import soundfile as sf
from websockets.sync.client import connect

from services.kit.audio import from_pcm16, to_pcm16
from services.preprocessor.app import build_app
from services.preprocessor.engine import FixedLatencyStream, denoise_clip
from services.preprocessor.settings import Settings
from testkit.audio_quality import Speech
from testkit.helpers import wav_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def whole_file(dfn_url: str, speech: Speech) -> np.ndarray:
    """The /denoise answer for the noisy clip, as PCM16-quantised floats."""
    r = httpx.post(
        dfn_url + "/denoise",
        content=wav_bytes(speech.noisy, speech.rate),
        headers={"content-type": "audio/wav"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    out, _ = sf.read(io.BytesIO(r.content), dtype="int16")
    return np.asarray(out, dtype=np.float32) / 32768.0


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert len(a) == len(b)
    # Same engine, same frames: equal up to one PCM16 step.
    assert float(np.max(np.abs(a - b))) <= 1.5 / 32768


def test_http_streaming_same_length_and_matches(
    dfn_url: str, speech: Speech, whole_file: np.ndarray
) -> None:
    body = to_pcm16(speech.noisy)
    r = httpx.post(
        dfn_url + "/denoise/streaming",
        params={"sample_rate": speech.rate},
        content=body,
        headers={"content-type": "application/octet-stream"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-denoise-engine"] == "deepfilternet"
    assert len(r.content) == len(body)
    _close(from_pcm16(r.content), whole_file)


def _ws_run(ws: object, pcm: bytes, block_bytes: int) -> tuple[np.ndarray, int]:
    hello = json.loads(ws.recv())  # type: ignore[attr-defined]
    assert hello["type"] == "ready" and hello["engine"] == "deepfilternet"
    out = bytearray()
    for i in range(0, len(pcm), block_bytes):
        block = pcm[i : i + block_bytes]
        ws.send(block)  # type: ignore[attr-defined]
        reply = ws.recv()  # type: ignore[attr-defined]
        assert isinstance(reply, bytes) and len(reply) == len(block)
        out += reply
    ws.send("flush")  # type: ignore[attr-defined]
    tail = ws.recv()  # type: ignore[attr-defined]
    assert isinstance(tail, bytes)
    done = json.loads(ws.recv())  # type: ignore[attr-defined]
    assert done == {"type": "flushed", "samples": len(pcm) // 2}
    return from_pcm16(bytes(out) + tail), int(hello["latency_samples"])


def test_websocket_blocks_match_whole_file(
    dfn_url: str, speech: Speech, whole_file: np.ndarray
) -> None:
    ws_url = dfn_url.replace("http://", "ws://") + f"/denoise/ws?sample_rate={speech.rate}"
    with connect(ws_url) as ws:
        # 20 ms blocks, as a microphone client sends them.
        stream, latency = _ws_run(ws, to_pcm16(speech.noisy), 640)
        assert latency > 0
        assert float(np.max(np.abs(stream[:latency]))) == 0.0  # the announced delay is silence
        _close(stream[latency:], whole_file)
        # After a flush the same connection starts a fresh utterance with fresh state.
        again, _ = _ws_run_after_flush(ws, to_pcm16(speech.noisy), 3200)
        _close(again[latency:], whole_file)


def _ws_run_after_flush(ws: object, pcm: bytes, block_bytes: int) -> tuple[np.ndarray, int]:
    out = bytearray()
    for i in range(0, len(pcm), block_bytes):
        ws.send(pcm[i : i + block_bytes])  # type: ignore[attr-defined]
        out += ws.recv()  # type: ignore[attr-defined]
    ws.send(json.dumps({"type": "flush"}))  # type: ignore[attr-defined]
    tail = ws.recv()  # type: ignore[attr-defined]
    json.loads(ws.recv())  # type: ignore[attr-defined]
    return from_pcm16(bytes(out) + tail), 0


def test_two_connections_keep_separate_state(
    dfn_url: str, speech: Speech, whole_file: np.ndarray
) -> None:
    ws_url = dfn_url.replace("http://", "ws://") + f"/denoise/ws?sample_rate={speech.rate}"
    other = to_pcm16(speech.clean[::-1].copy())
    pcm = to_pcm16(speech.noisy)
    with connect(ws_url) as a, connect(ws_url) as b:
        latency = json.loads(a.recv())["latency_samples"]
        json.loads(b.recv())
        got = bytearray()
        step = 1600
        # Interleave a different signal on b: a shared state would change a's output.
        for i in range(0, len(pcm), step):
            a.send(pcm[i : i + step])
            b.send(other[i : i + step] or b"\x00\x00")
            got += a.recv()
            b.recv()
        a.send("flush")
        got += a.recv()
    _close(from_pcm16(bytes(got))[latency:], whole_file)


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_fixed_latency_stream_equals_clip_at_any_rate(rate: int, speech: Speech) -> None:
    from services.kit.audio import resample
    from services.preprocessor.backends.rnnoise import RNNoiseEngine

    engine = RNNoiseEngine()
    clip = resample(speech.noisy[: speech.rate * 2], speech.rate, rate)
    whole = denoise_clip(engine, clip, rate)
    for block in (97, 441, 4096):
        stream = FixedLatencyStream(engine, rate, 0.0)
        outs = [stream.process(clip[i : i + block]) for i in range(0, len(clip), block)]
        assert [len(o) for o in outs] == [
            len(clip[i : i + block]) for i in range(0, len(clip), block)
        ]
        got = np.concatenate([*outs, stream.flush()])
        stream.close()
        assert stream.underflows == 0
        np.testing.assert_array_equal(got[stream.latency :], whole)


def test_websocket_refuses_unsupported_rate(dfn_url: str) -> None:
    ws_url = dfn_url.replace("http://", "ws://") + "/denoise/ws?sample_rate=1000"
    with connect(ws_url) as ws:
        err = json.loads(ws.recv())["error"]
        assert err["code"] == "unsupported_sample_rate" and "1000 Hz" in err["message"]
        with pytest.raises(Exception, match="1008"):
            ws.recv()


def test_websocket_bad_frames_close_with_reason(dfn_url: str) -> None:
    ws_url = dfn_url.replace("http://", "ws://") + "/denoise/ws"
    with connect(ws_url) as ws:
        json.loads(ws.recv())
        ws.send(b"\x01\x02\x03")
        assert json.loads(ws.recv())["error"]["code"] == "invalid_pcm"
        with pytest.raises(Exception, match="1007"):
            ws.recv()
    with connect(ws_url) as ws:
        json.loads(ws.recv())
        ws.send("hello")
        assert json.loads(ws.recv())["error"]["code"] == "invalid_message"


def test_passthrough_ws_and_stream_limit() -> None:
    from starlette.testclient import TestClient

    with TestClient(build_app(Settings(enabled=False, max_streams=1))) as client:
        while client.get("/health/ready").status_code != 200:
            pass
        with client.websocket_connect("/denoise/ws?sample_rate=16000") as ws:
            hello = ws.receive_json()
            assert hello["engine"] == "passthrough" and hello["latency_samples"] == 0
            block = to_pcm16(np.linspace(-0.5, 0.5, 320, dtype=np.float32))
            ws.send_bytes(block)
            assert ws.receive_bytes() == block
            # A second stream beyond DENOISE_MAX_STREAMS is refused with a reason.
            with client.websocket_connect("/denoise/ws") as second:
                assert second.receive_json()["error"]["code"] == "too_many_streams"
