"""The kit's limit helpers through a real server (upload size, text length) and the work queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, File, Form, UploadFile

from services.kit import ServiceSettings, create_app
from services.kit.concurrency import WorkLimiter
from services.kit.limits import check_text_length, read_upload
from testkit.helpers import run_server


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    """A kit app whose routes take an upload (limit 10 bytes) and a text (limit 5 chars)."""
    router = APIRouter()

    @router.post("/upload")
    async def upload(file: Annotated[UploadFile, File()]) -> dict[str, int]:
        return {"n": len(await read_upload(file, 10))}

    @router.post("/voice")
    async def voice(file: Annotated[UploadFile, File()]) -> dict[str, int]:
        data = await read_upload(
            file, 10, code="audio_too_large", message="audio is larger than {limit} bytes"
        )
        return {"n": len(data)}

    @router.post("/text")
    async def text(text: Annotated[str, Form()]) -> dict[str, str]:
        return {"text": check_text_length(text, 5, "input", code="input_too_long")}

    @router.post("/history")
    async def history(text: Annotated[str, Form()]) -> dict[str, str]:
        return {"text": check_text_length(text, 5, "history.3", name="history[3]")}

    with run_server(create_app("limits", ServiceSettings(), routers=[router])) as url:
        yield url


def _error(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    err: dict[str, object] = r.json()["error"]
    return err


def test_an_upload_at_the_limit_passes_and_one_byte_more_is_a_413(base: str) -> None:
    assert httpx.post(base + "/upload", files={"file": ("a", b"x" * 10)}).json() == {"n": 10}
    err = _error(httpx.post(base + "/upload", files={"file": ("a", b"x" * 11)}), 413)
    assert err == {
        "message": "audio file exceeds the limit of 10 bytes",
        "type": "request_too_large",
        "param": "file",
        "code": "file_too_large",
    }
    err = _error(httpx.post(base + "/voice", files={"file": ("a", b"x" * 5000)}), 413)
    assert err["code"] == "audio_too_large"
    assert err["message"] == "audio is larger than 10 bytes"


def test_text_over_the_limit_is_a_400_naming_the_field(base: str) -> None:
    assert httpx.post(base + "/text", data={"text": "hello"}).json() == {"text": "hello"}
    err = _error(httpx.post(base + "/text", data={"text": "hello!"}), 400)
    assert err == {
        "message": "input is 6 characters; the limit is 5",
        "type": "invalid_request_error",
        "param": "input",
        "code": "input_too_long",
    }
    err = _error(httpx.post(base + "/history", data={"text": "abcdefg"}), 400)
    assert err["message"] == "history[3] is 7 characters; the limit is 5"
    assert err["param"] == "history.3" and err["code"] == "text_too_long"


async def test_run_and_acquire_share_one_queue() -> None:
    limiter = WorkLimiter(max_concurrent=1, max_queue=0, name="demo")
    await limiter.acquire()
    with pytest.raises(Exception, match="demo queue is full"):
        await limiter.run(lambda: None)
    limiter.release()
    assert await limiter.run(lambda: 7) == 7
    assert limiter.running == 0 and limiter.waiting == 0
