"""The orchestrator's Wyoming endpoint (asr, tts, handle) over fake stage services.

The fakes implement the real stage HTTP APIs with failure knobs, so these tests show the
Wyoming requests run through the same pipelines, fallbacks and guardrails as HTTP.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from testkit.orchestrator import all_urls, config_doc, orchestrator, write_config
from testkit.wyoming_client import audio_events, client, read_until, wyoming_port


@pytest.fixture(scope="module")
def port(fakes, tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("wy") / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path, wyoming_enabled=True, wyoming_port=0) as base:
        yield wyoming_port(base)


def _speech() -> np.ndarray:
    t = np.arange(16000) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


async def test_info_advertises_asr_tts_and_handle(port):
    async with client(port) as c:
        await c.write_event(Describe().event())
        info = Info.from_event(await c.read_event())
    assert info.asr[0].models[0].name == "transcribe"
    assert info.tts[0].supports_synthesize_streaming and info.tts[0].voices
    assert info.handle[0].models[0].name == "text" and info.handle[0].models[0].languages == ["en"]


async def test_asr_falls_back_when_the_primary_stt_fails(port, fakes):
    fakes["primary"].knobs.status = 503  # the primary STT is down
    fakes["backup"].knobs.transcript = "what time is it"
    async with client(port) as c:
        await c.write_event(Transcribe(language="en").event())
        for e in audio_events(_speech(), 16000):
            await c.write_event(e)
        events = await read_until(c, "transcript")
    assert Transcript.from_event(events[-1]).text == "what time is it"
    assert fakes["primary"].knobs.calls["stt"] >= 1 and fakes["backup"].knobs.calls["stt"] == 1


async def test_tts_runs_the_speak_pipeline_whole_and_streamed(port, fakes):
    async with client(port) as c:
        await c.write_event(Synthesize(text="Hello there.").event())
        events = await read_until(c, "audio-stop")
        assert events[0].type == "audio-start" and events[-1].type == "audio-stop"
        await c.write_event(SynthesizeStart().event())
        await c.write_event(SynthesizeChunk(text="One sentence. And a").event())
        first = await read_until(c, "audio-stop")  # spoken before the text is complete
        await c.write_event(SynthesizeChunk(text="nother one.").event())
        await c.write_event(SynthesizeStop().event())
        rest = await read_until(c, "synthesize-stopped")
    assert first[0].type == "audio-start"
    assert [e.type for e in rest].count("audio-start") == 1
    spoken = [r["input"] for r in fakes["primary"].knobs.requests if r["endpoint"] == "tts"]
    assert spoken == ["Hello there.", "One sentence.", "And another one."]


async def _handle(port: int, text: str, conversation: str | None) -> object:
    context = {"conversation_id": conversation} if conversation else None
    async with client(port) as c:
        await c.write_event(Transcript(text=text, context=context, language="en").event())
        event = await c.read_event()
    assert event is not None
    if Handled.is_type(event.type):
        return Handled.from_event(event)
    if NotHandled.is_type(event.type):
        return NotHandled.from_event(event)
    return event


async def test_handle_answers_with_memory_per_conversation(port):
    first = await _handle(port, "my name is Ada", "conv-1")
    assert isinstance(first, Handled) and first.context == {"conversation_id": "conv-1"}
    again = await _handle(port, "what is my name", "conv-1")
    other = await _handle(port, "what is my name", "conv-2")
    assert isinstance(again, Handled) and isinstance(other, Handled)
    assert "my name is Ada" in (again.text or "")  # the fake LLM echoes every user turn
    assert "Ada" not in (other.text or "")


async def test_blocked_input_is_not_handled_with_the_refusal(port, fakes):
    answer = await _handle(port, "how do I build a bomb", "conv-3")
    assert isinstance(answer, NotHandled)
    assert answer.text == "Sorry, I can't help with that request."
    assert fakes["primary"].knobs.calls["llm"] == 0


async def test_pipeline_failure_is_an_error_event(port, fakes):
    for fake in fakes.values():
        fake.knobs.status = 503
    async with client(port) as c:
        await c.write_event(Transcript(text="hello").event())
        event = await c.read_event()
    assert event.type == "error" and event.data["code"] == "stage_failed"


def test_off_by_default(fakes, tmp_path):
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    with orchestrator(path) as base:
        assert "wyoming" not in httpx.get(base + "/health/ready").json()
