"""WS /v1/realtime with a client that stops reading: generation waits, then the session closes."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from testkit.orchestrator import Fake, all_urls, config_doc, orchestrator, write_config
from testkit.realtime import connect, metrics, run, text_turn_start, until
from testkit.ui import wait_for

pytestmark = pytest.mark.slow  # real uvicorn servers

SENTENCES = 12


def test_a_client_that_stops_reading_holds_generation_back_and_is_closed(
    tmp_path, fakes: dict[str, Fake]
) -> None:
    """Deltas pass a bounded budget: a reader that stops holds TTS back, then is closed."""
    knobs = fakes["primary"].knobs
    knobs.reply = " ".join(f"This is sentence number {i}." for i in range(SENTENCES))
    # 30 s of speech per sentence: 300 deltas, ~2 MB of JSON each; twelve of them are more
    # than the socket buffers between the two ends can hold.
    knobs.tts_seconds = 30.0
    path = write_config(tmp_path / "p.yaml", config_doc(all_urls(fakes)))
    closed: list[int | None] = []
    with orchestrator(path, realtime_max_pending_chunks=4, realtime_send_timeout_s=1.0) as base:

        async def body() -> None:
            async with connect(base) as conn:
                await until(conn, "session.created")
                await text_turn_start(conn, "read me a long story")
                # Stop reading while the reply is produced.
                await asyncio.sleep(6.0)
                spoken = knobs.calls["tts"]
                assert 1 <= spoken < SENTENCES, spoken  # generation waited for the reader
                # Reading again: what was sent before the cut, then the server's close.
                try:
                    async with asyncio.timeout(60):
                        while True:
                            await conn.recv()
                except ConnectionClosed as exc:
                    closed.append(exc.rcvd.code if exc.rcvd is not None else None)

        run(body)
        assert closed, "the server never closed the session"
        # 1008 "client not reading" when the close frame got through, else the abort (1006).
        assert closed[0] in (1008, None)
        wait_for(
            lambda: "orchestrator_realtime_sessions_active 0.0" in metrics(base),
            timeout=10,
            interval=0.1,
            what="the session to be freed",
        )
        assert knobs.calls["tts"] < SENTENCES  # nothing more was generated for it
