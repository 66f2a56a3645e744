"""WS /v1/realtime through the real `openai` SDK realtime client, against fake stage services."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.kit.audio import decode_audio
from testkit.helpers import wav_bytes
from testkit.orchestrator import Fake, all_urls, config_doc, orchestrator, write_config
from testkit.realtime import (
    SPEECH_RATE,
    TIMEOUT,
    connect,
    metrics,
    run,
    say,
    silence,
    text_turn_start,
    until,
)


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory, fakes: dict[str, Fake]) -> Iterator[str]:
    """An orchestrator whose providers are the fakes (stt-a/llm-a/tts-a on primary)."""
    path = write_config(tmp_path_factory.mktemp("rt") / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, realtime_max_pending_chunks=4, realtime_max_sessions=4) as base:
        yield base


@pytest.fixture(autouse=True)
def _fixed_reply_cleared(fakes: dict[str, Fake]) -> Iterator[None]:
    """Tests here set a fixed LLM reply; the next one starts from the echoing fake."""
    yield
    for fake in fakes.values():
        fake.knobs.reply = None


async def text_turn(conn: Any, text: str) -> list[Any]:
    """A text turn: item create + response.create; every event up to response.done."""
    await conn.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await conn.response.create()
    seen: list[Any] = []
    await until(conn, "response.done", seen)
    return seen


def audio_bytes(events: list[Any]) -> int:
    """Total decoded PCM bytes of the audio deltas."""
    deltas = [e.delta for e in events if e.type == "response.output_audio.delta"]
    return sum(len(base64.b64decode(d)) for d in deltas)


def test_text_turn_streams_audio_and_remembers(rt: str, fakes: dict[str, Fake]) -> None:
    """A text turn is answered sentence by sentence with PCM16 deltas; the next turn sees it."""
    primary = fakes["primary"].knobs
    primary.reply = "The sky is blue. It is sunny today! Have fun."

    async def body() -> None:
        async with connect(rt) as conn:
            created = await until(conn, "session.created")
            assert created.session.audio.output.format.rate == 24000
            events = await text_turn(conn, "how is the weather")
            types = [e.type for e in events]
            assert types.index("response.created") < types.index("response.output_audio.delta")
            transcript = "".join(
                e.delta for e in events if e.type == "response.output_audio_transcript.delta"
            )
            assert transcript == "The sky is blue. It is sunny today! Have fun."
            done = events[-1]
            assert done.response.status == "completed"
            assert done.response.output[0].content[0].transcript == transcript
            # three sentences, 0.1 s of speech each at 24 kHz PCM16
            assert audio_bytes(events) == 3 * 4800
            primary.reply = None
            await text_turn(conn, "and tomorrow")

    run(body)
    tts_inputs = [r["input"] for r in primary.requests if r["endpoint"] == "tts"]
    assert tts_inputs[:3] == ["The sky is blue.", "It is sunny today!", "Have fun."]
    last_llm = [r for r in primary.requests if r["endpoint"] == "llm"][-1]
    assert last_llm["stream"] is True
    said = [m["content"] for m in last_llm["messages"]]
    assert said[1:] == [
        "how is the weather",
        "The sky is blue. It is sunny today! Have fun.",
        "and tomorrow",
    ]


def test_server_vad_turn(rt: str, fakes: dict[str, Fake], question: np.ndarray) -> None:
    """Speech streamed in is detected (Silero), committed, transcribed and answered."""

    async def body() -> None:
        async with connect(rt) as conn:
            await until(conn, "session.created")
            await say(conn, np.concatenate([silence(0.5), question, silence(1.0)]))
            seen: list[Any] = []
            started = await until(conn, "input_audio_buffer.speech_started", seen)
            stopped = await until(conn, "input_audio_buffer.speech_stopped", seen)
            assert started.item_id == stopped.item_id
            assert 0 < started.audio_start_ms < 700
            speech_ms = len(question) / 24
            assert speech_ms < stopped.audio_end_ms - started.audio_start_ms < speech_ms + 1500
            kind = "conversation.item.input_audio_transcription.completed"
            done_t = await until(conn, kind, seen)
            assert done_t.transcript == "what is the weather like"
            done = await until(conn, "response.done", seen)
            assert done.response.status == "completed"
            assert done.response.metadata["speech_stopped_to_first_audio_ms"].isdigit()

    run(body)
    stt = [r for r in fakes["primary"].knobs.requests if r["endpoint"] == "stt"]
    assert len(stt) == 1
    count = re.search(r"^orchestrator_realtime_first_audio_seconds_count (\S+)", metrics(rt), re.M)
    assert count is not None and float(count.group(1)) >= 1


def test_manual_turn_and_fallbacks(rt: str, fakes: dict[str, Fake], question: np.ndarray) -> None:
    """Without VAD the client commits; a failing STT and LLM primary fall over to the backup."""
    fakes["primary"].knobs.status = 503

    async def body() -> None:
        async with connect(rt) as conn:
            await conn.session.update(
                session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
            )
            updated = await until(conn, "session.updated")
            assert updated.session.audio.input.turn_detection is None
            await say(conn, question)
            await conn.input_audio_buffer.commit()
            await conn.response.create()
            seen: list[Any] = []
            await until(conn, "response.done", seen)
            kinds = [e.type for e in seen]
            assert "input_audio_buffer.speech_started" not in kinds
            assert "conversation.item.input_audio_transcription.completed" in kinds
            assert seen[-1].response.status == "completed"
            transcript = "".join(
                e.delta for e in seen if e.type == "response.output_audio_transcript.delta"
            )
            assert transcript.startswith("[backup] seen:")

    run(body)
    assert fakes["backup"].knobs.calls["stt"] == 1


def test_bad_events_get_error_events(rt: str) -> None:
    """Malformed JSON, unknown types, oversize appends and wrong formats: errors, socket kept."""

    async def body() -> None:
        async with connect(rt) as conn:
            await until(conn, "session.created")
            await conn.send_raw("{not json")
            assert (await until(conn, "error")).error.code == "invalid_json"
            await conn.send_raw(json.dumps({"type": "response.fly", "event_id": "e1"}))
            err = await until(conn, "error")
            assert (err.error.code, err.error.event_id) == ("unknown_event", "e1")
            big = base64.b64encode(b"\0" * (1_048_576 + 2)).decode()
            await conn.input_audio_buffer.append(audio=big)
            assert (await until(conn, "error")).error.code == "audio_too_large"
            await conn.input_audio_buffer.append(audio="%%%")
            assert (await until(conn, "error")).error.code == "invalid_audio"
            await conn.session.update(
                session={
                    "type": "realtime",
                    "audio": {"input": {"format": {"type": "audio/pcmu"}}},
                }
            )
            assert (await until(conn, "error")).error.code == "unsupported_audio_format"
            out_16k = {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}
            await conn.send_raw(
                json.dumps({"type": "session.update", "session": {"audio": out_16k}})
            )
            assert (await until(conn, "error")).error.code == "unsupported_audio_format"
            await conn.input_audio_buffer.commit()
            assert (await until(conn, "error")).error.code == "input_audio_buffer_commit_empty"
            await conn.response.cancel()
            assert (await until(conn, "error")).error.code == "response_cancel_not_active"
            # Still a working session after all that.
            await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})
            assert (await until(conn, "session.updated")).session.instructions == "Be brief."

    run(body)


def test_output_guard_cuts_the_reply(rt: str, fakes: dict[str, Fake]) -> None:
    """A sentence the output guard refuses is replaced by the refusal and the reply ends there."""
    fakes["primary"].knobs.reply = "Hello there. Here is how to build a bomb. It is easy."

    async def body() -> list[Any]:
        async with connect(rt) as conn:
            return await text_turn(conn, "tell me something")

    events = run(body)
    done = events[-1]
    assert done.response.status == "incomplete"
    assert done.response.status_details.reason == "content_filter"
    transcript = "".join(
        e.delta for e in events if e.type == "response.output_audio_transcript.delta"
    )
    assert transcript == "Hello there. Sorry, I can't help with that request."
    tts = [r["input"] for r in fakes["primary"].knobs.requests if r["endpoint"] == "tts"]
    assert "It is easy." not in tts


def test_auth_and_session_cap(tmp_path: Path, fakes: dict[str, Fake]) -> None:
    """Keys are checked as on the HTTP routes; one session over the cap gets an error event."""
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))

    async def body(base: str) -> None:
        with pytest.raises(Exception, match="401"):
            async with connect(base, key="wrong"):
                pass
        async with connect(base, key="good") as first:
            await until(first, "session.created")
            async with connect(base, key="good") as second:
                err = await until(second, "error")
                assert err.error.code == "session_limit_reached"

    with orchestrator(path, api_keys="good", realtime_max_sessions=1) as base:
        asyncio.run(body(base))
        wait_for(lambda: "orchestrator_realtime_sessions_active 0.0" in metrics(base))


async def polled(check: Callable[[], bool], seconds: float = TIMEOUT) -> None:
    """Wait (without blocking the loop) until `check()` holds."""
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 (set by the fake server's thread)
            await asyncio.sleep(0.02)


def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll until `check()` holds (a server-side effect that follows a client action)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_barge_in_cancels_and_memory_keeps_what_was_sent(
    rt: str, fakes: dict[str, Fake], question: np.ndarray
) -> None:
    """Speech during a reply stops it within a chunk; memory holds only the part sent."""
    primary = fakes["primary"].knobs
    primary.reply = "One two three four. Five six seven eight. Nine ten eleven twelve."
    primary.token_delay_s = 0.25  # the model is still writing when the user cuts in
    primary.tts_seconds = 0.5

    async def body() -> None:
        async with connect(rt) as conn:
            await until(conn, "session.created")
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "count for me"}],
                }
            )
            await conn.response.create()
            first = await until(conn, "response.output_audio.delta")
            await say(conn, np.concatenate([question, silence(1.0)]))
            seen: list[Any] = []
            await until(conn, "input_audio_buffer.speech_started", seen)
            after: list[Any] = []
            cancelled = await until(conn, "response.done", after)
            assert cancelled.response.status == "cancelled"
            assert cancelled.response.status_details.reason == "turn_detected"
            stray = [
                e
                for e in after
                if e.type == "response.output_audio.delta" and e.response_id == first.response_id
            ]
            assert len(stray) <= 1  # at most the chunk already on its way
            heard = cancelled.response.output[0].content[0].transcript
            assert heard and "One two three four".startswith(heard.rstrip("."))
            primary.reply = None
            primary.token_delay_s = 0.0
            nxt = await until(conn, "response.done")
            assert nxt.response.status == "completed"

    run(body)
    wait_for(lambda: primary.streams_aborted == 1)
    last = [r for r in primary.requests if r["endpoint"] == "llm"][-1]
    history = [(m["role"], m["content"]) for m in last["messages"][1:]]
    assert history[0] == ("user", "count for me")
    assert history[1][0] == "assistant"
    assert "Five" not in history[1][1]
    assert history[2] == ("user", "what is the weather like")
    cut = re.search(r"^orchestrator_realtime_interruptions_total (\S+)", metrics(rt), re.M)
    assert cut is not None and float(cut.group(1)) >= 1


def test_backchannel_does_not_interrupt(
    rt: str, fakes: dict[str, Fake], question: np.ndarray
) -> None:
    """A sound shorter than the VAD minimum during a reply neither interrupts nor starts a turn."""
    primary = fakes["primary"].knobs
    primary.reply = "One two three. Four five six. Seven eight nine."
    primary.token_delay_s = 0.15
    blip = question[int(0.6 * SPEECH_RATE) : int(0.75 * SPEECH_RATE)]  # 150 ms of speech

    async def body() -> list[Any]:
        async with connect(rt) as conn:
            await until(conn, "session.created")
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "count"}],
                }
            )
            await conn.response.create()
            seen: list[Any] = []
            await until(conn, "response.output_audio.delta", seen)
            await say(conn, np.concatenate([silence(0.3), blip, silence(0.8)]))
            await until(conn, "response.done", seen)
            return seen

    seen = run(body)
    assert seen[-1].response.status == "completed"
    assert not [e for e in seen if e.type == "input_audio_buffer.speech_started"]


def test_truncate_and_cancel_and_disconnect(rt: str, fakes: dict[str, Fake]) -> None:
    """truncate trims memory to the played audio; cancel and disconnect stop the LLM stream."""
    primary = fakes["primary"].knobs
    primary.reply = "Alpha beta gamma delta. Epsilon zeta eta theta."
    primary.tts_seconds = 1.0

    async def body() -> None:
        async with connect(rt) as conn:
            events = await text_turn(conn, "greek letters")
            item_id = events[-1].response.output[0].id
            await conn.conversation.item.truncate(
                item_id=item_id, content_index=0, audio_end_ms=9000
            )
            assert (await until(conn, "error")).error.param == "audio_end_ms"
            await conn.conversation.item.truncate(
                item_id=item_id, content_index=0, audio_end_ms=1500
            )
            assert (await until(conn, "conversation.item.truncated")).audio_end_ms == 1500
            primary.reply = "Long answer " * 40
            primary.token_delay_s = 0.2
            await text_turn_start(conn, "more")
            await until(conn, "response.created")
            await polled(lambda: primary.calls["llm"] == 2)  # the model is generating
            await conn.response.cancel()
            done = await until(conn, "response.done")
            assert done.response.status_details.reason == "client_cancelled"
            await text_turn_start(conn, "again")
            await until(conn, "response.created")
            await polled(lambda: primary.calls["llm"] == 3)
        # leaving the context closes the socket mid-reply

    run(body)
    wait_for(lambda: primary.streams_aborted == 2)
    llm = [r for r in primary.requests if r["endpoint"] == "llm"]
    history = [(m["role"], m["content"]) for m in llm[1]["messages"][1:]]
    assert history[:2] == [
        ("user", "greek letters"),
        ("assistant", "Alpha beta gamma delta. Epsilon zeta"),
    ]
    wait_for(lambda: "orchestrator_realtime_sessions_active 0.0" in metrics(rt))


def test_cli_live_mode(rt: str, tmp_path: Path, question: np.ndarray) -> None:
    """`voice_client --live` streams a WAV at real-time pace, prints timings, saves the reply."""
    from services.voice_client.cli import main

    src = tmp_path / "q.wav"
    src.write_bytes(wav_bytes(question, SPEECH_RATE))
    out = tmp_path / "reply.wav"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = main(["--live", "--file", str(src), "--url", rt, "--out", str(out)])
    text = printed.getvalue()
    assert code == 0, text
    assert "You:       what is the weather like" in text
    assert "status=completed" in text and "first audio" in text
    assert decode_audio(out.read_bytes()).sample_rate == SPEECH_RATE


def test_buffer_cap_and_idle_timeout(tmp_path: Path, fakes: dict[str, Fake]) -> None:
    """Manual turns: a full input buffer refuses appends; an idle session is told and closed."""
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))

    async def body(base: str) -> None:
        async with connect(base) as conn:
            await until(conn, "session.created")
            await conn.session.update(
                session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
            )
            await until(conn, "session.updated")
            await say(conn, silence(0.3))
            err = await until(conn, "error")
            assert err.error.code == "input_audio_buffer_full"
            await conn.input_audio_buffer.clear()
            await until(conn, "input_audio_buffer.cleared")
            err = await until(conn, "error")  # no event for the idle timeout: told, then closed
            assert err.error.code == "idle_timeout"

    with orchestrator(path, realtime_max_buffer_s=0.25, realtime_idle_timeout_s=1.0) as base:
        asyncio.run(body(base))


@pytest.mark.parametrize("llm_client", ["http", "langchain"])
def test_tool_rounds_answer_whole_then_spoken(
    tmp_path: Path, fakes: dict[str, Fake], llm_client: str
) -> None:
    """A provider offered tools answers whole (either client); the reply is still split into
    sentences and spoken, with the tool's result."""
    primary = fakes["primary"].knobs
    primary.tool_calls = (("calculate", json.dumps({"expression": "(17 + 25) * 3"})),)
    doc = config_doc(all_urls(fakes))
    doc["providers"]["llm-a"]["supports_tools"] = True
    llm = next(s for s in doc["pipelines"]["voice"] if s["stage"] == "llm")
    llm["tools"] = ["calculate"]
    path = write_config(tmp_path / "p.yaml", doc)

    async def body(base: str) -> list[Any]:
        async with connect(base) as conn:
            return await text_turn(conn, "what is 17 plus 25, times 3?")

    with orchestrator(path, llm_client=llm_client) as base:
        events = asyncio.run(body(base))
    assert events[-1].response.status == "completed"
    spoken = [e.delta for e in events if e.type == "response.output_audio_transcript.delta"]
    assert "".join(spoken).endswith("tools said: 126") and len(spoken) == 2
    llm_calls = [r for r in primary.requests if r["endpoint"] == "llm"]
    assert len(llm_calls) == 2 and not any(r.get("stream") for r in llm_calls)
