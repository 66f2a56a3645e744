"""A live voice session over the real local mesh, through the `openai` SDK's realtime client."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
import pytest

from scripts.run_local import Mesh
from testkit.e2e import API_KEY, QUESTION, cer, stt_text
from testkit.helpers import synth_speech, wav_bytes, wer
from testkit.realtime import SPEECH_RATE, connect, say, silence

pytestmark = pytest.mark.slow

STORY = "Tell me a long story about a brave knight and a dragon."
TIMEOUT = 180.0


async def _until(conn: Any, kind: str, seen: list[Any]) -> Any:
    async with asyncio.timeout(TIMEOUT):
        while True:
            ev = await conn.recv()
            seen.append(ev)
            if ev.type == kind:
                return ev


def _audio(events: list[Any], response_id: str) -> np.ndarray:
    pcm = b"".join(
        base64.b64decode(e.delta)
        for e in events
        if e.type == "response.output_audio.delta" and e.response_id == response_id
    )
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def test_spoken_question_real_time(mesh: Mesh) -> None:
    """Speech at real-time pace → transcript, and a spoken reply that says what its text says."""
    question, _ = synth_speech(QUESTION, SPEECH_RATE)

    async def body() -> list[Any]:
        async with connect(mesh.url("orchestrator"), key=API_KEY) as conn:
            seen: list[Any] = []
            await _until(conn, "session.created", seen)
            await say(conn, np.concatenate([silence(0.4), question, silence(1.2)]), pace=1.0)
            await _until(conn, "response.done", seen)
            return seen

    seen = asyncio.run(body())
    kinds = [e.type for e in seen]
    heard_q = next(
        e for e in seen if e.type == "conversation.item.input_audio_transcription.completed"
    )
    assert wer(QUESTION, heard_q.transcript) <= 0.2, heard_q.transcript
    assert kinds.index("input_audio_buffer.speech_stopped") < kinds.index(
        "response.output_audio.delta"
    )
    done = seen[-1]
    assert done.response.status == "completed", done.response
    text = done.response.output[0].content[0].transcript
    assert "paris" in text.lower(), text
    reply = _audio(seen, done.response.id)
    assert len(reply) / SPEECH_RATE > 0.5
    spoken = stt_text(mesh, wav_bytes(reply, SPEECH_RATE))
    assert cer(text, spoken) <= 0.15, (text, spoken)


def test_barge_in_on_the_real_mesh(mesh: Mesh) -> None:
    """A second utterance during the reply cancels it; the next reply answers the new question."""
    story, _ = synth_speech(STORY, SPEECH_RATE)
    question, _ = synth_speech(QUESTION, SPEECH_RATE)

    async def body() -> list[Any]:
        async with connect(mesh.url("orchestrator"), key=API_KEY) as conn:
            seen: list[Any] = []
            await _until(conn, "session.created", seen)
            await say(conn, np.concatenate([story, silence(1.2)]), pace=1.0)
            await _until(conn, "response.output_audio.delta", seen)
            # At once: the server sends audio faster than real time, so the reply must still be
            # in the making when the VAD hears the user (~0.3 s of speech).
            await say(conn, np.concatenate([question, silence(1.2)]))
            await _until(conn, "response.done", seen)  # the story, cut
            await _until(conn, "response.done", seen)  # the answer
            return seen

    seen = asyncio.run(body())
    dones = [e for e in seen if e.type == "response.done"]
    assert dones[0].response.status == "cancelled", dones[0].response
    assert dones[0].response.status_details.reason == "turn_detected"
    assert dones[1].response.status == "completed"
    assert "paris" in dones[1].response.output[0].content[0].transcript.lower()
    first_audio = next(i for i, e in enumerate(seen) if e.type == "response.output_audio.delta")
    cut_at = next(
        i
        for i, e in enumerate(seen)
        if i > first_audio and e.type == "input_audio_buffer.speech_started"
    )
    late = [
        e
        for e in seen[cut_at:]
        if e.type == "response.output_audio.delta" and e.response_id == dones[0].response.id
    ]
    assert len(late) <= 1, len(late)
    # The cut reply's item holds only what was sent: fewer words than its transcript deltas
    # announced only when the cut fell inside a sentence, never more.
    cut_text = dones[0].response.output[0].content[0].transcript
    announced = "".join(
        e.delta
        for e in seen
        if e.type == "response.output_audio_transcript.delta"
        and e.response_id == dones[0].response.id
    )
    assert " ".join(announced.split()).startswith(" ".join(cut_text.split())), (announced, cut_text)
    assert len(_audio(seen, dones[0].response.id)) > 0
