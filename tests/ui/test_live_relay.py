"""The testing UI's live relay (`WS /live/realtime`) against the real orchestrator on fake stages.

The client here plays the browser: it speaks the Realtime events with no key at all.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.kit.audio import to_pcm16
from services.testing_ui.app import build_app
from services.testing_ui.live import LIVE_JS
from services.testing_ui.settings import Settings
from testkit.helpers import run_server, synth_speech
from testkit.orchestrator import all_urls, config_doc, dead_url, orchestrator, write_config
from testkit.realtime import SPEECH_RATE, metrics, run, silence
from testkit.ui import LIVE_KEY, live_ws, login_cookie, next_event, wait_for

TEXT_ITEM = {
    "type": "conversation.item.create",
    "item": {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "how is the weather"}],
    },
}


def ui_app(orchestrator_url: str, **settings: Any) -> Any:
    """The real testing-UI app, holding the orchestrator's key."""
    defaults: dict[str, Any] = {"orchestrator_api_key": LIVE_KEY, "probe_interval_s": 60}
    defaults.update(settings)
    return build_app(Settings(orchestrator_url=orchestrator_url, **defaults))


@pytest.fixture(scope="module")
def ui(live_orchestrator: str) -> Iterator[str]:
    """The UI relaying to the keyed orchestrator; at most 2 live sessions, 64 KB messages."""
    app = ui_app(live_orchestrator, live_max_sessions=2, live_max_message_bytes=65_536)
    with run_server(app) as url:
        yield url


def appends(audio: np.ndarray, chunk_ms: int = 40) -> list[str]:
    """`input_audio_buffer.append` events of 24 kHz audio, as the page sends them."""
    step = SPEECH_RATE * chunk_ms // 1000
    return [
        json.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(to_pcm16(audio[i : i + step])).decode(),
            }
        )
        for i in range(0, len(audio), step)
    ]


def active_sessions(base: str) -> float:
    """The orchestrator's live sessions gauge."""
    found = re.search(r"^orchestrator_realtime_sessions_active (\S+)", metrics(base), re.M)
    return float(found.group(1)) if found else -1.0


async def wait_sessions(base: str, count: float) -> None:
    """Until the orchestrator reports `count` live sessions."""
    await asyncio.to_thread(
        wait_for, lambda: active_sessions(base) == count, 15, 0.1, f"{count} live sessions"
    )


def test_text_turn_passes_through_and_the_key_stays_on_the_server(
    ui: str, live_orchestrator: str, stage_fakes: dict[str, Any]
) -> None:
    stage_fakes["primary"].knobs.reply = "It is sunny. Take a hat."

    async def body() -> list[str]:
        frames: list[str] = []
        async with connect(live_ws(ui, model="voice")) as ws:
            created = await next_event(ws, "session.created")
            frames.append(json.dumps(created))
            await ws.send(json.dumps(TEXT_ITEM))
            await ws.send(json.dumps({"type": "response.create"}))
            seen: list[dict[str, Any]] = []
            done = await next_event(ws, "response.done", seen)
            frames += [json.dumps(e) for e in seen]
            assert done["response"]["status"] == "completed"
            kind = "response.output_audio_transcript.delta"
            said = [e["delta"] for e in seen if e["type"] == kind]
            assert "".join(said) == "It is sunny. Take a hat." and len(said) == 2
            audio = [e for e in seen if e["type"] == "response.output_audio.delta"]
            assert sum(len(base64.b64decode(e["delta"])) for e in audio) == 2 * 4800
        return frames

    try:
        frames = run(body)
    finally:
        stage_fakes["primary"].knobs.reply = None
    # The orchestrator requires the key: it served the relay, and refuses a keyless client.
    with pytest.raises(InvalidStatus) as refused:
        run(lambda: connect(live_orchestrator.replace("http", "ws") + "/v1/realtime").__aenter__())
    assert refused.value.response.status_code == 401
    # Nothing the browser gets (events, page, script) carries the key.
    page = httpx.get(ui + "/", timeout=10).text + httpx.get(ui + "/config", timeout=10).text
    assert all(LIVE_KEY not in text for text in [*frames, page, LIVE_JS.read_text()])


def test_vad_audio_turn_passes_through(ui: str) -> None:
    question, _ = synth_speech("What is the weather like in Paris today?", SPEECH_RATE)

    async def body() -> None:
        async with connect(live_ws(ui)) as ws:
            await next_event(ws, "session.created")
            for event in appends(np.concatenate([silence(0.5), question, silence(1.2)])):
                await ws.send(event)
            seen: list[dict[str, Any]] = []
            started = await next_event(ws, "input_audio_buffer.speech_started", seen)
            stopped = await next_event(ws, "input_audio_buffer.speech_stopped", seen)
            assert started["item_id"] == stopped["item_id"]
            kind = "conversation.item.input_audio_transcription.completed"
            assert (await next_event(ws, kind, seen))["transcript"] == "what is the weather like"
            done = await next_event(ws, "response.done", seen)
            assert done["response"]["status"] == "completed"
            assert done["response"]["metadata"]["speech_stopped_to_first_audio_ms"].isdigit()
            assert any(e["type"] == "response.output_audio.delta" for e in seen)

    run(body)


def test_login_and_origin_are_enforced(live_orchestrator: str) -> None:
    app = ui_app(live_orchestrator, password="s3cret", username="tester")
    with run_server(app) as base:

        async def body() -> None:
            with pytest.raises(InvalidStatus) as anonymous:
                await connect(live_ws(base))
            assert anonymous.value.response.status_code == 401
            assert b"log in to the testing UI first" in anonymous.value.response.body
            cookie = await asyncio.to_thread(login_cookie, base, "tester", "s3cret")
            headers = {"Cookie": cookie}
            async with connect(live_ws(base), additional_headers=headers) as ws:
                await next_event(ws, "session.created")
            # A page on another site gets the browser's cookie too: refused by its Origin.
            evil = {**headers, "Origin": "http://evil.example"}
            with pytest.raises(InvalidStatus) as cross:
                await connect(live_ws(base), additional_headers=evil)
            assert cross.value.response.status_code == 403
            own = {**headers, "Origin": base}
            async with connect(live_ws(base), additional_headers=own) as ws:
                await next_event(ws, "session.created")

        run(body)


def test_session_cap_and_message_cap(ui: str, live_orchestrator: str) -> None:
    async def body() -> None:
        async with connect(live_ws(ui)) as one, connect(live_ws(ui)) as two:
            await next_event(one, "session.created")
            await next_event(two, "session.created")
            async with connect(live_ws(ui)) as three:
                error = await next_event(three, "error")
                assert error["error"]["code"] == "live_session_limit_reached"
                with pytest.raises(ConnectionClosed):
                    await three.recv()
                assert three.close_code == 1013
            # An oversize message is dropped with an error; the session goes on.
            await one.send(appends(silence(2.0), chunk_ms=2000)[0])
            error = await next_event(one, "error")
            assert error["error"]["code"] == "message_too_large"
            await one.send(json.dumps(TEXT_ITEM))
            await next_event(one, "conversation.item.added")
        # Both relays closed: the slots are free again (once the server has finished closing).
        async with asyncio.timeout(10):
            while True:
                async with connect(live_ws(ui)) as again:
                    if json.loads(await again.recv())["type"] == "session.created":
                        break
                await asyncio.sleep(0.1)

    run(body)


def test_bad_pipeline_name_and_binary_frames_are_refused(ui: str) -> None:
    async def body() -> None:
        async with connect(live_ws(ui, model="voice?x=1&y")) as ws:
            error = await next_event(ws, "error")
            assert error["error"]["code"] == "invalid_value"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1008
        async with connect(live_ws(ui)) as ws:
            await next_event(ws, "session.created")
            await ws.send(b"\x00\x01")
            error = await next_event(ws, "error")
            assert error["error"]["code"] == "invalid_event"
            await ws.send(json.dumps(TEXT_ITEM))
            await next_event(ws, "conversation.item.added")

    run(body)


def test_oversize_message_from_the_orchestrator_closes_the_session(live_orchestrator: str) -> None:
    async def body(base: str) -> None:
        async with connect(live_ws(base)) as ws:
            # session.created (the whole session's settings) is ~750 bytes.
            error = await next_event(ws, "error")
            assert error["error"]["code"] == "message_too_large"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1009

    with run_server(ui_app(live_orchestrator, live_max_message_bytes=512)) as base:
        run(lambda: body(base))


def test_closing_one_side_closes_the_other(
    ui: str, live_orchestrator: str, stage_fakes: dict[str, Any], tmp_path: Any
) -> None:
    async def browser_leaves() -> None:
        await wait_sessions(live_orchestrator, 0)
        async with connect(live_ws(ui)) as ws:
            await next_event(ws, "session.created")
            await wait_sessions(live_orchestrator, 1)
        await wait_sessions(live_orchestrator, 0)

    run(browser_leaves)

    # The orchestrator ends a session (idle timeout): the browser's socket closes with its code.
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(stage_fakes)))
    with (
        orchestrator(path, realtime_idle_timeout_s=1.0) as idle,
        run_server(ui_app(idle)) as base,
    ):

        async def orchestrator_leaves() -> None:
            async with connect(live_ws(base)) as ws:
                error = await next_event(ws, "error")
                assert error["error"]["code"] == "idle_timeout"
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert ws.close_code is not None and ws.close_code != 1011

        run(orchestrator_leaves)


def test_orchestrator_refusals_reach_the_page(live_orchestrator: str) -> None:
    async def refused(base: str) -> tuple[dict[str, Any], int | None]:
        async with connect(live_ws(base)) as ws:
            error = await next_event(ws, "error")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return error, ws.close_code

    with run_server(ui_app(live_orchestrator, orchestrator_api_key="wrong")) as base:
        error, code = run(lambda: refused(base))
    assert error["error"]["code"] == "orchestrator_refused" and code == 1011
    assert "HTTP 401" in error["error"]["message"]
    with run_server(ui_app(dead_url())) as base:
        error, code = run(lambda: refused(base))
    assert error["error"]["code"] == "orchestrator_unreachable" and code == 1011
