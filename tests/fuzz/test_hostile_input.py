"""Hand-written hostile requests for every service over real HTTP.

Oversize bodies (declared and chunked), wrong content types, truncated and lying WAV
headers, non-UTF-8 and lone-surrogate JSON, 10,000-deep nesting, null bytes, absurd
numbers. Each must end in a 4xx with the error envelope (never a 5xx, a hang or a dropped
connection), and the service must still be healthy afterwards.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from testkit.fuzz import MAX_BODY, assert_healthy, serve
from testkit.helpers import wav_bytes

pytestmark = pytest.mark.slow

RATE = 16000
ENVELOPE_KEYS = {"message", "type", "param", "code"}
# A hostile request must be answered quickly: these engines are tiny, so slowness is a hang.
TIMEOUT = 60.0

Kwargs = Callable[[], dict[str, Any]]


def _tone(seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


WAV = wav_bytes(_tone(), RATE)


def _wav_header(
    rate: int = RATE, channels: int = 1, bits: int = 16, fmt: int = 1, data_len: int = 32000
) -> bytes:
    """A RIFF/WAVE header that may lie about its format; `data_len` bytes of zeros follow."""
    block = max(channels * bits // 8, 0)
    fmt_chunk = struct.pack(
        "<HHIIHH", fmt, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits
    )
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk
    body += b"data" + struct.pack("<I", data_len) + b"\0" * min(data_len, 32000)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _chunks_of(body: bytes, size: int = 16384) -> Iterator[bytes]:
    """Send `body` with chunked transfer encoding (no Content-Length)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


@dataclass(frozen=True)
class Hostile:
    """One hostile request and what must come back."""

    service: str
    name: str
    path: str
    kwargs: Kwargs
    expect: tuple[int, ...] = ()  # exact statuses allowed; empty = any 4xx
    ok_allowed: bool = False  # a 2xx is acceptable too (input that is odd, not invalid)
    method: str = "POST"

    @property
    def id(self) -> str:
        """Test id."""
        return f"{self.service}:{self.path}:{self.name}"


def _json_raw(raw: bytes) -> Kwargs:
    return lambda: {"content": raw, "headers": {"content-type": "application/json"}}


def _json(doc: Any) -> Kwargs:
    # allow_nan: NaN and Infinity literals are what a sloppy client sends.
    return _json_raw(json.dumps(doc, allow_nan=True).encode())


def _file(data: bytes, ctype: str = "audio/wav", **fields: str) -> Kwargs:
    return lambda: {"files": {"file": ("a.wav", data, ctype)}, "data": fields}


# Services, their JSON endpoints (with a valid body and the main text field) and their audio ones.
JSON_ENDPOINTS: dict[str, list[tuple[str, dict[str, Any], str]]] = {
    "llm": [("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "")],
    "tts_piper": [
        ("/v1/audio/speech", {"input": "hi there", "response_format": "wav"}, "input"),
        ("/synthesize", {"text": "hi there"}, "text"),
    ],
    "tts_bark": [
        ("/v1/audio/speech", {"input": "hello world", "response_format": "wav"}, "input"),
        ("/synthesize", {"text": "hello world"}, "text"),
    ],
    "guardrails": [
        ("/validate/input", {"text": "hi"}, "text"),
        ("/validate/output", {"text": "hi"}, "text"),
        ("/escalate", {"reason": "help", "context": {"a": 1}}, "reason"),
    ],
    "orchestrator": [
        ("/mcp/transcript", {"transcript": "hi", "session_id": "fuzz-1"}, "transcript"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, ""),
    ],
}
AUDIO_ENDPOINTS: dict[str, list[str]] = {
    "stt": ["/v1/audio/transcriptions", "/transcribe"],
    "preprocessor": ["/denoise"],
    "orchestrator": ["/v1/voice"],
}
SERVICES_ALL = ("stt", "llm", "tts_piper", "tts_bark", "guardrails", "preprocessor", "orchestrator")


def _with_text(body: dict[str, Any], field: str, text: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(body))
    if field:
        doc[field] = text
    else:
        doc["messages"][0]["content"] = text
    return doc


def _raw_with(body: dict[str, Any], field: str, raw: bytes) -> bytes:
    """The body as JSON bytes with the text field replaced by `raw`, verbatim."""
    marker = "@@FUZZ@@"
    return json.dumps(_with_text(body, field, marker)).encode().replace(f'"{marker}"'.encode(), raw)


def _multipart(data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one `file` part, and its content type."""
    boundary = "fuzzboundary7MA4YWxkTrZu0gW"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def _oversize(multipart: bool, chunked: bool) -> Kwargs:
    """A body 50 kB over the limit: a multipart upload for file endpoints, else raw bytes."""
    big = MAX_BODY + 50_000

    def build() -> dict[str, Any]:
        body, ctype = _multipart(b"a" * big) if multipart else (b"a" * big, "application/json")
        content: Any = _chunks_of(body) if chunked else body
        return {"content": content, "headers": {"content-type": ctype}}

    return build


def _generic(service: str, path: str, multipart: bool = False, ok: bool = False) -> list[Hostile]:
    """Cases every POST endpoint must survive, whatever it takes (`ok`: raw bytes are valid)."""
    return [
        Hostile(service, "oversize-content-length", path, _oversize(multipart, False), (413,)),
        Hostile(service, "oversize-chunked", path, _oversize(multipart, True), (413,)),
        Hostile(
            service,
            "oversize-lying-content-length",
            path,
            lambda: {"raw_head": [("content-length", str(10**12))], "raw_body": b"{}"},
            (413,),
        ),
        Hostile(service, "empty-body", path, lambda: {"content": b""}),
        Hostile(
            service,
            "text-plain",
            path,
            lambda: {"content": b"hello", "headers": {"content-type": "text/plain"}},
            ok_allowed=ok,
        ),
        Hostile(service, "deep-nesting", path, _json_raw(_nested(10_000)), ok_allowed=ok),
        Hostile(service, "deep-nesting-100k", path, _json_raw(_nested(100_000)), ok_allowed=ok),
        Hostile(
            service, "non-utf8-json", path, _json_raw(b'{"text": "\xff\xfe\xc3("}'), ok_allowed=ok
        ),
        Hostile(service, "invalid-json", path, _json_raw(b'{"text": '), ok_allowed=ok),
        Hostile(service, "json-null", path, _json_raw(b"null"), ok_allowed=ok),
        Hostile(service, "json-huge-number", path, _json_raw(b"1e999999"), ok_allowed=ok),
        Hostile(service, "json-huge-int", path, _json_raw(b"9" * 5000), ok_allowed=ok),
        Hostile(service, "get-on-post", path, lambda: {}, (405,), method="GET"),
    ]


def _json_cases(service: str, path: str, body: dict[str, Any], field: str) -> list[Hostile]:
    def text(name: str, value: Any, **kw: Any) -> Hostile:
        return Hostile(service, name, path, _json(_with_text(body, field, value)), **kw)

    cases = [
        Hostile(
            service,
            "multipart-to-json",
            path,
            lambda: {"files": {"file": ("a.json", json.dumps(body).encode(), "application/json")}},
        ),
        text("null-bytes", "hello\x00world\x00", ok_allowed=True),
        text("only-null-bytes", "\x00\x00\x00", ok_allowed=True),
        text("control-chars", "".join(chr(c) for c in range(32)) + "hi", ok_allowed=True),
        text("bidi-and-zero-width", "hi\u202e\u200b\ufeff\u2066there", ok_allowed=True),
        Hostile(
            service, "nested-in-field", path, _json_raw(_raw_with(body, field, _nested(10_000)))
        ),
        text("text-is-number", 1e308),
        text("text-is-object", {"a": {"b": [1, 2]}}),
        text("long-text", "word " * 50_000),
        Hostile(
            service,
            "lone-surrogate",
            path,
            _json_raw(_raw_with(body, field, b'"\\ud800hi"')),
            ok_allowed=True,
        ),
        Hostile(
            service,
            "non-utf8-in-valid-shape",
            path,
            _json_raw(_raw_with(body, field, b'"\xff"')),
        ),
    ]
    return cases


def _audio_cases(service: str, path: str) -> list[Hostile]:
    # The orchestrator does not decode audio (its fake stt accepts any bytes): there only
    # "no 5xx, no hang" is asserted for audio content; stt and the preprocessor decode it.
    fake = service == "orchestrator"
    truncated_status = () if fake else (400,)

    def audio(
        name: str, data: bytes, expect: tuple[int, ...] = (), lenient: bool = False
    ) -> Hostile:
        return Hostile(service, name, path, _file(data), expect, ok_allowed=fake or lenient)

    return [
        Hostile(service, "json-to-multipart", path, _json({"file": "a.wav"})),
        Hostile(service, "empty-file", path, _file(b"")),
        audio("truncated-wav", WAV[: len(WAV) // 2], truncated_status),
        audio("header-only-wav", WAV[:44]),
        audio("not-audio", b"definitely not audio " * 50),
        audio("wav-rate-zero", _wav_header(rate=0)),
        audio("wav-rate-huge", _wav_header(rate=4_000_000_000)),
        audio("wav-zero-channels", _wav_header(channels=0)),
        audio("wav-many-channels", _wav_header(channels=65535)),
        # libsndfile reads these leniently (7-bit as 8-bit; a 0x7FFFFFFF data size is the
        # streaming-WAV "unknown length" convention); NaN float samples read as silence.
        # Accepted today; see docs/services/robustness.md.
        audio("wav-bits-7", _wav_header(bits=7), lenient=True),
        audio("wav-bits-zero", _wav_header(bits=0)),
        audio("wav-format-unknown", _wav_header(fmt=0x1234)),
        audio("wav-float-nan", _float_wav(np.nan), lenient=True),
        # Half a second of +Inf makes whisper decode a run of "!" to its length limit (~20 s
        # of CPU even for whisper-tiny): a cheap denial of service, so stt must refuse it.
        # One stt route carries the case; the second would only double the cost while failing.
        *(
            [audio("wav-float-inf", _float_wav(np.inf), lenient=service != "stt")]
            if path != "/transcribe"
            else []
        ),
        audio("wav-data-len-lies", _wav_header(data_len=0x7FFFFFFF), lenient=True),
        Hostile(
            service,
            "file-is-text-field",
            path,
            lambda: {"data": {"file": "a.wav"}, "files": {"other": ("x", b"x", "text/plain")}},
        ),
        Hostile(
            service,
            "multipart-garbage-boundary",
            path,
            lambda: {
                "content": b"--xyz\r\nnot a part\r\n",
                "headers": {"content-type": "multipart/form-data; boundary=abc"},
            },
        ),
        Hostile(
            service,
            "multipart-no-boundary",
            path,
            lambda: {"content": b"abc", "headers": {"content-type": "multipart/form-data"}},
        ),
    ]


def _float_wav(value: float) -> bytes:
    samples = np.full(RATE // 2, value, dtype=np.float32)
    header = _wav_header(fmt=3, bits=32, data_len=0)[:-8]  # drop the empty data chunk
    data = samples.tobytes()
    out = header + b"data" + struct.pack("<I", len(data)) + data
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]


def _pcm_with_rate(rate: str) -> Kwargs:
    return lambda: {"content": b"\0\0" * 1600, "params": {"sample_rate": rate}}


def _query(name: str, value: str) -> Kwargs:
    return lambda: {"params": {name: value}}


def _specific() -> list[Hostile]:
    """Absurd numbers and service-specific fields."""
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    speech = {"input": "hi there", "response_format": "wav"}
    cases: list[Hostile] = []
    for svc in ("llm", "orchestrator"):
        for field, value in [
            ("max_tokens", 1e30),
            ("max_tokens", 10**40),
            ("max_tokens", -1),
            ("max_completion_tokens", float("inf")),
            ("temperature", float("nan")),
            ("temperature", float("inf")),
            ("temperature", -1e308),
            ("top_p", float("nan")),
            ("seed", 10**40),
            ("n", 10**9),
            ("stop", ["x" * 100_000]),
            ("stop", [""] * 1000),
            ("messages", [{"role": "user", "content": "hi"}] * 20_000),
        ]:
            # The orchestrator's facade ignores sampling fields (the pipeline's options rule);
            # the LLM clamps seeds and drops empty stop strings.
            ok = svc == "orchestrator" or field in ("seed", "stop")
            cases.append(
                Hostile(
                    svc,
                    f"{field}={str(value)[:20]}",
                    "/v1/chat/completions",
                    _json({**chat, field: value}),
                    ok_allowed=ok,
                )
            )
    for svc in ("tts_piper", "tts_bark"):
        for field, value in [
            ("speed", float("nan")),
            ("speed", float("inf")),
            ("speed", 1e308),
            ("speed", -0.0),
            ("response_format", "exe"),
            ("voice", "../../../etc/passwd"),
            ("voice", "\x00"),
            ("voice", "x" * 100_000),
        ]:
            ok = field == "voice"  # an unknown voice may fall back to the default
            cases.append(
                Hostile(
                    svc,
                    f"{field}={str(value)[:20]!r}",
                    "/v1/audio/speech",
                    _json({**speech, field: value}),
                    ok_allowed=ok,
                )
            )
    for field, value in [("temperature", "nan"), ("temperature", "inf"), ("language", "\x00")]:
        cases.append(
            Hostile(
                "stt",
                f"{field}={value!r}",
                "/v1/audio/transcriptions",
                _file(WAV, **{field: value}),
            )
        )
    for value in ["0", "-1", "nan", "1e30", "99999999999999999999999", "8000.5"]:
        cases.append(
            Hostile(
                "preprocessor",
                f"sample_rate={value}",
                "/denoise/streaming",
                _pcm_with_rate(value),
            )
        )
    for param, value in [("offset", 10**30), ("offset", -1), ("limit", 10**30), ("limit", -1)]:
        # An empty page is a fine answer to a huge offset; a 500 is not.
        cases.append(
            Hostile(
                "guardrails",
                f"{param}={value}",
                "/escalations",
                _query(param, str(value)),
                ok_allowed=True,
                method="GET",
            )
        )
    cases += [
        Hostile(
            "preprocessor", "odd-pcm-bytes", "/denoise/streaming", lambda: {"content": b"\0" * 3}
        ),
        Hostile(
            "preprocessor",
            "raw-truncated-wav",
            "/denoise",
            lambda: {"content": WAV[: len(WAV) // 2], "headers": {"content-type": "audio/wav"}},
            (400,),
        ),
        Hostile(
            "preprocessor",
            "raw-wrong-type",
            "/denoise",
            lambda: {"content": WAV, "headers": {"content-type": "image/png"}},
            (415,),
        ),
        Hostile(
            "orchestrator",
            "mcp-unknown-pipeline",
            "/mcp/transcript",
            _json({"transcript": "hi", "session_id": "s", "pipeline": "../../etc"}),
        ),
        Hostile(
            "orchestrator",
            "mcp-huge-session-id",
            "/mcp/transcript",
            _json({"transcript": "hi", "session_id": "s" * 200_000}),
        ),
        Hostile(
            "orchestrator",
            "voice-huge-form-field",
            "/v1/voice",
            _file(WAV, session_id="s" * 200_000),
        ),
        Hostile(
            "guardrails",
            "escalate-deep-context",
            "/escalate",
            _json_raw(b'{"reason": "r", "context": {"a": ' + _nested(10_000) + b"}}"),
        ),
        Hostile(
            "orchestrator",
            "admin-reload-deep-json",
            "/admin/reload",
            _json_raw(_nested(10_000)),
            ok_allowed=True,
        ),
    ]
    return cases


def _all_cases() -> list[Hostile]:
    cases: list[Hostile] = []
    for svc, endpoints in JSON_ENDPOINTS.items():
        for path, body, field in endpoints:
            cases += _generic(svc, path) + _json_cases(svc, path, body, field)
    for svc, paths in AUDIO_ENDPOINTS.items():
        for path in paths:
            cases += _generic(svc, path, multipart=True) + _audio_cases(svc, path)
    # Any even number of bytes is valid PCM16, JSON text included.
    cases += _generic("preprocessor", "/denoise/streaming", ok=True)
    return cases + _specific()


CASES = _all_cases()


@pytest.fixture(scope="module")
def servers() -> Iterator[Callable[[str], str]]:
    """Start services on first use and keep them for the module."""
    with contextlib.ExitStack() as stack:
        running: dict[str, str] = {}

        def get(name: str) -> str:
            if name not in running:
                running[name] = stack.enter_context(serve(name))
            return running[name]

        yield get


def _raw_request(
    base: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> httpx.Response:
    """Send bytes httpx refuses to (a Content-Length that lies); parse the reply."""
    host, port = base.removeprefix("http://").split(":")
    head = f"{method} {path} HTTP/1.1\r\nhost: {host}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        status_line, _, rest = data.partition(b"\r\n")
        header_block, _, content = rest.partition(b"\r\n\r\n")
        length = 0
        for line in header_block.split(b"\r\n"):
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value)
        while len(content) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            content += chunk
    return httpx.Response(int(status_line.split()[1]), content=content)


def _check(case: Hostile, r: httpx.Response) -> None:
    where = f"{case.id} -> {r.status_code} {r.text[:300]!r}"
    assert r.status_code < 500, f"server error: {where}"
    if r.status_code < 400:
        assert case.ok_allowed and not case.expect, f"accepted hostile input: {where}"
        return
    if case.expect:
        assert r.status_code in case.expect, where
    try:
        err = r.json()["error"]
    except (ValueError, KeyError, TypeError):
        pytest.fail(f"no error envelope: {where}")
    assert isinstance(err, dict) and set(err) == ENVELOPE_KEYS and err["message"], where


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_request(case: Hostile, servers: Callable[[str], str]) -> None:
    """The request gets a 4xx in the envelope (or a 2xx where allowed); the service lives."""
    base = servers(case.service)
    kwargs = case.kwargs()
    try:
        if "raw_head" in kwargs:
            r = _raw_request(base, case.method, case.path, kwargs["raw_head"], kwargs["raw_body"])
        else:
            r = httpx.request(case.method, base + case.path, timeout=TIMEOUT, **kwargs)
    except (httpx.TimeoutException, TimeoutError):
        pytest.fail(f"{case.id}: no answer within {TIMEOUT}s (hang)")
    _check(case, r)
    assert_healthy(base)


@pytest.mark.parametrize("service", SERVICES_ALL)
def test_still_healthy_after_abuse(service: str, servers: Callable[[str], str]) -> None:
    """After every hostile case, each service still serves its health probes."""
    assert_healthy(servers(service))
