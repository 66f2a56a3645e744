"""Speculative turns: started at a VAD pause, shown only once the stop confirms them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from services.kit.vad import EnergyDetector
from services.orchestrator.realtime.vad import IN_WINDOW, TurnDetector, VadEvent
from testkit.orchestrator import Fake, all_urls, config_doc, orchestrator, write_config
from testkit.realtime import SPEECH_RATE, TIMEOUT, connect, run, say, silence, until

SILENCE_MS = 800  # the turn's full silence: long, so the pause (200 ms) is far from the stop


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory, fakes: dict[str, Fake]) -> Iterator[str]:
    """An orchestrator on the fakes that starts turns 200 ms into a silence."""
    path = write_config(tmp_path_factory.mktemp("spec") / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, realtime_speculate_ms=200) as base:
        yield base


@pytest.fixture(autouse=True)
def _knobs_restored(fakes: dict[str, Fake]) -> Iterator[None]:
    yield
    for fake in fakes.values():
        fake.knobs.reply = None
        fake.knobs.token_delay_s = 0.0
        fake.knobs.latency_s = 0.0


async def _long_silence(conn: Any) -> None:
    await conn.session.update(
        session={
            "type": "realtime",
            "audio": {
                "input": {
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": SILENCE_MS}
                }
            },
        }
    )
    await until(conn, "session.updated")


async def _polled(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _quiet(conn: Any, seconds: float) -> list[Any]:
    """Every event that arrives within `seconds`."""
    got: list[Any] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                got.append(await conn.recv())
    return got


async def _speak_then_pause(conn: Any, question: np.ndarray, seen: list[Any]) -> None:
    """Open the turn: the question, then a silence past the pause but short of the stop."""
    await until(conn, "session.created")
    await _long_silence(conn)
    await say(conn, np.concatenate([silence(0.3), question, silence(0.45)]))
    await until(conn, "input_audio_buffer.speech_started", seen)


def _calls(fake: Fake, endpoint: str) -> list[dict[str, Any]]:
    return [r for r in fake.knobs.requests if r["endpoint"] == endpoint]


def test_turn_starts_at_the_pause_and_shows_after_the_stop(
    rt: str, fakes: dict[str, Fake], question: np.ndarray
) -> None:
    """STT and the LLM run before speech_stopped; the client sees the usual order, once."""
    primary = fakes["primary"]
    primary.knobs.reply = "It is sunny. Take a hat."

    async def body() -> list[Any]:
        async with connect(rt) as conn:
            seen: list[Any] = []
            await _speak_then_pause(conn, question, seen)
            # Within the silence, before the stop: the turn is already under way ...
            await _polled(lambda: len(_calls(primary, "tts")) >= 1)
            assert len(_calls(primary, "stt")) == 1
            # ... and the client has been told nothing of it.
            early = await _quiet(conn, 0.3)
            assert early == []
            await say(conn, silence(0.6))
            await until(conn, "response.done", seen)
            return seen

    seen = run(body)
    kinds = [e.type for e in seen]
    order = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_audio.delta",
        "response.done",
    ]
    positions = [kinds.index(k) for k in order]
    assert positions == sorted(positions), kinds
    assert kinds.count("response.created") == 1
    assert len(_calls(primary, "stt")) == 1  # the speculative transcript was the turn's
    committed = seen[kinds.index("input_audio_buffer.committed")]
    completed = seen[kinds.index("conversation.item.input_audio_transcription.completed")]
    assert committed.item_id == completed.item_id == seen[0].item_id
    done = seen[-1]
    assert done.response.status == "completed"
    assert done.response.output[0].content[0].transcript == "It is sunny. Take a hat."
    # Measured from speech_stopped: the reply was ready (held) when the stop came.
    assert int(done.response.metadata["speech_stopped_to_first_audio_ms"]) >= 0


def test_speech_resuming_drops_the_started_turn(
    rt: str, fakes: dict[str, Fake], question: np.ndarray
) -> None:
    """A pause mid-sentence: the early turn is cancelled unseen; the whole utterance is answered."""
    primary = fakes["primary"]
    primary.knobs.token_delay_s = 0.2  # the early reply is still being written at the resume

    async def body() -> list[Any]:
        async with connect(rt) as conn:
            seen: list[Any] = []
            await _speak_then_pause(conn, question, seen)
            await _polled(lambda: len(_calls(primary, "llm")) >= 1)
            await say(conn, np.concatenate([question, silence(1.2)]))
            await until(conn, "response.done", seen)
            primary.knobs.token_delay_s = 0.0
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "thanks"}],
                }
            )
            await conn.response.create()
            await until(conn, "response.done", seen)
            return seen

    seen = run(body)
    kinds = [e.type for e in seen]
    assert kinds.count("input_audio_buffer.speech_started") == 1
    assert kinds.count("input_audio_buffer.speech_stopped") == 1
    assert kinds.count("conversation.item.input_audio_transcription.completed") == 1
    assert kinds.count("response.created") == 2  # the voice turn's, then the text turn's
    assert all(e.response.status == "completed" for e in seen if e.type == "response.done")
    stt = _calls(primary, "stt")
    assert len(stt) == 2 and stt[1]["bytes"] > stt[0]["bytes"]  # the whole utterance, again
    assert primary.knobs.streams_aborted >= 1  # the early reply's generation was stopped
    # Memory holds the turn once: the dropped reply left nothing behind.
    last = _calls(primary, "llm")[-1]
    history = [(m["role"], m["content"]) for m in last["messages"][1:]]
    assert [role for role, _ in history] == ["user", "assistant", "user"]
    assert history[0][1] == "what is the weather like"
    assert history[2] == ("user", "thanks")


def test_speech_resuming_while_whisper_runs_leaves_no_text_behind(
    rt: str, fakes: dict[str, Fake], question: np.ndarray
) -> None:
    """Dropped during the early transcription: the user's turn holds its text once."""
    primary = fakes["primary"]
    primary.knobs.latency_s = 0.8  # the early STT call is still running at the resume

    async def body() -> None:
        async with connect(rt) as conn:
            seen: list[Any] = []
            await _speak_then_pause(conn, question, seen)
            # The pause came with the audio just sent: the early STT call has begun (the fake
            # records a call once its latency has passed) and is still running.
            await asyncio.sleep(0.3)
            assert _calls(primary, "stt") == []
            await say(conn, np.concatenate([question, silence(1.2)]))
            await until(conn, "response.done", seen)
            kinds = [e.type for e in seen]
            assert kinds.count("conversation.item.input_audio_transcription.completed") == 1

    run(body)
    assert len(_calls(primary, "stt")) == 2  # the early one, then the whole utterance
    llm = _calls(primary, "llm")
    assert len(llm) == 1  # the dropped turn never reached the LLM
    assert llm[0]["messages"][-1]["content"] == "what is the weather like"


def test_without_speculation_nothing_runs_before_the_stop(
    tmp_path_factory: pytest.TempPathFactory, fakes: dict[str, Fake], question: np.ndarray
) -> None:
    """ORCH_REALTIME_SPECULATE_MS=0: the turn starts only at speech_stopped."""
    primary = fakes["primary"]
    path = write_config(tmp_path_factory.mktemp("nospec") / "p.yaml", config_doc(all_urls(fakes)))

    async def body(base: str) -> None:
        async with connect(base) as conn:
            await until(conn, "session.created")
            await _long_silence(conn)
            await say(conn, np.concatenate([silence(0.3), question, silence(0.45)]))
            await until(conn, "input_audio_buffer.speech_started")
            await asyncio.sleep(1.0)
            assert _calls(primary, "stt") == []
            await say(conn, silence(0.6))
            await until(conn, "response.done")

    with orchestrator(path, realtime_speculate_ms=0) as base:
        run(lambda: body(base))
    assert len(_calls(primary, "stt")) == 1


def _events(det: TurnDetector, audio: np.ndarray) -> list[VadEvent]:
    out: list[VadEvent] = []
    for i in range(0, len(audio), IN_WINDOW * 3):
        out.extend(det.feed(audio[i : i + IN_WINDOW * 3]))
    return out


def _detector(speculate_ms: int) -> TurnDetector:
    return TurnDetector(
        EnergyDetector(),
        threshold=0.5,
        prefix_padding_ms=300,
        silence_duration_ms=SILENCE_MS,
        min_speech_ms=100,
        max_utterance_s=30,
        speculate_ms=speculate_ms,
    )


def test_vad_pause_carries_the_utterance_the_stop_confirms(question: np.ndarray) -> None:
    """`paused` and `stopped` hand on the same samples; speech after a pause says `resumed`."""
    det = _detector(200)
    events = _events(det, np.concatenate([silence(0.5), question, silence(1.0)]))
    assert [e.kind for e in events] == ["started", "paused", "stopped"]
    paused, stopped = events[1], events[2]
    assert paused.audio is not None and stopped.audio is not None
    assert np.array_equal(paused.audio, stopped.audio)
    assert paused.start_sample == stopped.start_sample == events[0].at_ms * SPEECH_RATE // 1000

    det = _detector(200)
    gap = np.concatenate([silence(0.5), question, silence(0.4), question, silence(1.0)])
    assert [e.kind for e in _events(det, gap)] == [
        "started",
        "paused",
        "resumed",
        "paused",
        "stopped",
    ]

    det = _detector(0)
    assert [e.kind for e in _events(det, gap)] == ["started", "stopped"]
