"""HTTP calls to the stage services' documented APIs (one function per capability).

aiohttp, not httpx: measured on this project's hot path (a six-stage run makes six calls),
an httpx call costs ~0.65 ms of CPU against ~0.16 ms for aiohttp, a third of the
orchestrator's own work per run (benchmarks/bench_orchestrator.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from services.client.errors import parse_error_text
from services.kit.context import END_USER_HEADER, outbound_headers
from services.orchestrator.balancer import Balancer, outcome_of, send_balanced
from services.orchestrator.config import ProviderConfig
from services.orchestrator.executor import BadResponse, ProviderError, ReplyTooLarge

# Below uvicorn's 5 s keep-alive: reusing a connection the server is closing costs a resend.
KEEPALIVE_S = 4.0


def make_session(max_connections: int = 200) -> aiohttp.ClientSession:
    """The one pooled session every stage call shares (create inside the event loop)."""
    connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=KEEPALIVE_S)
    # Cookies are never part of a stage API; a dummy jar skips parsing Set-Cookie headers.
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


@dataclass(frozen=True)
class Reply:
    """A whole HTTP response, read before the connection goes back to the pool."""

    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    content: bytes

    @property
    def text(self) -> str:
        """The body as text (undecodable bytes replaced)."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON (ValueError when it is not)."""
        return json.loads(self.content)


def api_base(url: str) -> str:
    """Provider URL without a trailing slash or `/v1`, so both spellings work."""
    base = url.strip().rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def _headers(prov: ProviderConfig) -> dict[str, str]:
    headers = outbound_headers()  # X-Request-ID follows the run into every stage
    if prov.api_key:
        headers["Authorization"] = f"Bearer {prov.api_key}"
    return headers


def _raise_for_status(resp: Reply) -> None:
    if resp.status < 400:
        return
    raise ProviderError(resp.status, parse_error_text(resp.text, resp.reason or "error").message)


def _json(resp: Reply) -> dict[str, Any]:
    _raise_for_status(resp)
    try:
        data = resp.json()
    except ValueError as exc:
        raise BadResponse("response is not JSON") from exc
    if not isinstance(data, dict):
        raise BadResponse("response is not a JSON object")
    return data


@dataclass(frozen=True)
class ChatReply:
    """One chat completion: the reply text ("" when the model only asked for tools)."""

    text: str
    usage: dict[str, int]
    # OpenAI wire form: {"id", "type": "function", "function": {"name", "arguments"}}
    tool_calls: tuple[dict[str, Any], ...] = ()


def wire_tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """One tool call in the OpenAI wire form both LLM clients hand to `converse`."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _tool_calls(message: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    raw = message.get("tool_calls")
    if not isinstance(raw, list):
        return ()
    calls: list[dict[str, Any]] = []
    for call in raw:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadResponse("chat completion has a malformed tool call")
        call_id = str(call.get("id") or f"call_{len(calls)}")
        calls.append(wire_tool_call(call_id, fn["name"], fn.get("arguments") or "{}"))
    return tuple(calls)


def parse_chat_completion(body: dict[str, Any]) -> ChatReply:
    """The reply text, tool calls and token usage of a chat completion; BadResponse if malformed."""
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise BadResponse("chat completion has no message content")
    calls = _tool_calls(message)
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content is None and calls:
        content = ""
    if not isinstance(content, str):
        raise BadResponse("chat completion has no message content")
    text = content.strip()
    if not text and not calls:
        raise BadResponse("the model returned an empty reply")
    raw = body.get("usage")
    usage = raw if isinstance(raw, dict) else {}
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    counts = {k: v if isinstance(v := usage.get(k), int) else 0 for k in keys}
    return ChatReply(text, counts, calls)


@dataclass(frozen=True)
class ReplyLimits:
    """The most bytes read from one provider reply, by kind of reply."""

    json_bytes: int = 1_048_576
    audio_bytes: int = 33_554_432


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ReplyTooLarge as soon as it is known to exceed `limit` bytes."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise ReplyTooLarge(f"reply of {declared} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    # Chunked or lying replies: count while reading and stop at the limit, so a provider
    # that streams forever costs at most `limit` bytes of memory (and its timeout).
    async for chunk in resp.content.iter_chunked(65_536):
        size += len(chunk)
        if size > limit:
            raise ReplyTooLarge(f"reply exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# The call never reached the replica: safe to send to a sibling.
NOT_CONNECTED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


async def _nothing(_: Reply) -> None:
    """A Reply is already read: nothing to close."""


class StageClient:
    """Calls stage services over one shared keep-alive session, spread over replicas."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        limits: ReplyLimits | None = None,
        balancer: Balancer | None = None,
    ) -> None:
        self.session = session
        self.limits = limits or ReplyLimits()
        self.balancer = balancer

    async def _post(
        self,
        url: str,
        timeout_s: float,
        *,
        audio: bool = False,
        headers: dict[str, str],
        body: Callable[[], dict[str, Any]],
    ) -> Reply:
        limit = self.limits.audio_bytes if audio else self.limits.json_bytes

        async def send(target: str, host_header: str | None) -> Reply:
            timeout = aiohttp.ClientTimeout(total=timeout_s)
            sent = headers
            if host_header is not None:
                # A dead replica's address may not even refuse: give up on it early.
                timeout = aiohttp.ClientTimeout(
                    total=timeout_s, sock_connect=self._connect_timeout(timeout_s)
                )
                sent = {**headers, "Host": host_header}
            # body() builds the payload afresh: a multipart form can be sent only once.
            async with self.session.post(target, timeout=timeout, headers=sent, **body()) as resp:
                cap = limit
                if resp.status >= 400:
                    # An error body is only read for its message: the JSON cap is plenty.
                    cap = min(limit, self.limits.json_bytes)
                content = await read_capped(resp, cap)
                return Reply(resp.status, resp.reason or "", resp.headers, content)

        reply, lease = await send_balanced(
            self.balancer, url, send, lambda r: r.status, NOT_CONNECTED, _nothing
        )
        if lease is not None:
            lease.release(outcome_of(reply.status))
        return reply

    def _connect_timeout(self, timeout_s: float) -> float:
        assert self.balancer is not None
        return min(timeout_s, self.balancer.settings.connect_timeout_s)

    async def denoise(self, prov: ProviderConfig, audio: bytes, timeout_s: float) -> bytes:
        """POST raw audio to /denoise; returns the cleaned WAV."""
        resp = await self._post(
            api_base(prov.url) + "/denoise",
            timeout_s,
            audio=True,
            headers={"Content-Type": "audio/wav", **_headers(prov)},
            body=lambda: {"data": audio},
        )
        _raise_for_status(resp)
        if not resp.content.startswith(b"RIFF"):
            raise BadResponse("denoise reply is not a WAV file")
        return resp.content

    async def transcribe(
        self,
        prov: ProviderConfig,
        audio: bytes,
        filename: str,
        options: dict[str, Any],
        timeout_s: float,
    ) -> str:
        """OpenAI /v1/audio/transcriptions; returns the text."""
        fields = {"model": prov.model or "whisper-1", "response_format": "json"}
        fields.update({k: str(v) for k, v in options.items()})

        def form() -> dict[str, Any]:
            data = aiohttp.FormData()
            for key, value in fields.items():
                data.add_field(key, value)
            data.add_field(
                "file", audio, filename=filename, content_type="application/octet-stream"
            )
            return {"data": data}

        resp = await self._post(
            api_base(prov.url) + "/v1/audio/transcriptions",
            timeout_s,
            headers=_headers(prov),
            body=form,
        )
        body = _json(resp)
        text = body.get("text")
        if not isinstance(text, str):
            raise BadResponse("transcription has no text")
        return text

    async def validate(
        self,
        prov: ProviderConfig,
        direction: str,
        text: str,
        timeout_s: float,
        *,
        history: tuple[tuple[str, str], ...] = (),
        end_user: str | None = None,
        request: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST /validate/input or /validate/output; returns the verdict.

        `history`: the request's earlier (role, text) pairs, checked in the same call; a provider
        that does not say it checked them all has not, and counts as failed (never unguarded).
        `request`: extra fields for the check (the output check's `input` and `canary`).
        """
        payload: dict[str, Any] = {**(request or {}), "text": text}
        if history:
            payload["history"] = [{"role": role, "text": said} for role, said in history]
        headers = _headers(prov)
        if end_user:
            headers[END_USER_HEADER] = end_user
        resp = await self._post(
            f"{api_base(prov.url)}/validate/{direction}",
            timeout_s,
            headers=headers,
            body=lambda: {"json": payload},
        )
        body = _json(resp)
        if not isinstance(body.get("safe"), bool):
            raise BadResponse(f"guardrails /validate/{direction} gave no boolean 'safe'")
        if history and body.get("history_checked") != len(history):
            raise BadResponse(
                f"guardrails /validate/{direction} did not check the {len(history)} earlier "
                "message(s) (an older guardrails without history support?)"
            )
        return body

    async def chat(
        self,
        prov: ProviderConfig,
        messages: list[dict[str, Any]],
        options: dict[str, Any],
        timeout_s: float,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str = "auto",
    ) -> ChatReply:
        """OpenAI /v1/chat/completions (not streamed), offering `tools` when given."""
        # Stage options (temperature, max_tokens, even model) override the provider's model.
        payload: dict[str, Any] = {"model": prov.model or "default", **options}
        payload["messages"] = messages
        if tools:
            payload["tools"] = tools
            payload["tool_choice"] = tool_choice
        resp = await self._post(
            api_base(prov.url) + "/v1/chat/completions",
            timeout_s,
            headers=_headers(prov),
            body=lambda: {"json": payload},
        )
        return parse_chat_completion(_json(resp))

    async def speak(
        self, prov: ProviderConfig, text: str, options: dict[str, Any], timeout_s: float
    ) -> tuple[bytes, str | None]:
        """OpenAI /v1/audio/speech as WAV; returns (audio, X-TTS-Engine)."""
        payload: dict[str, Any] = {
            "model": prov.model or "tts-1",
            "input": text,
            "voice": "alloy",
            "response_format": "wav",
        }
        payload.update(options)
        resp = await self._post(
            api_base(prov.url) + "/v1/audio/speech",
            timeout_s,
            audio=True,
            headers=_headers(prov),
            body=lambda: {"json": payload},
        )
        _raise_for_status(resp)
        if not resp.content.startswith(b"RIFF"):
            raise BadResponse("speech reply is not a WAV file")
        return resp.content, resp.headers.get("X-TTS-Engine")


async def open_stream(
    client: StageClient,
    prov: ProviderConfig,
    path: str,
    payload: dict[str, Any],
    timeout_s: float,
) -> aiohttp.ClientResponse:
    """POST for a streamed reply: the open response, or the provider's error raised."""
    resp = await client.session.post(
        api_base(prov.url) + path,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        json=payload,
        headers=_headers(prov),
    )
    try:
        if resp.status >= 400:
            content = await read_capped(resp, client.limits.json_bytes)
            _raise_for_status(Reply(resp.status, resp.reason or "", resp.headers, content))
    except BaseException:
        resp.close()
        raise
    return resp


async def open_denoise_ws(
    client: StageClient, prov: ProviderConfig, sample_rate: int, timeout_s: float
) -> aiohttp.ClientWebSocketResponse:
    """Open the preprocessor's streaming `WS /denoise/ws` with the stage calls' auth headers."""
    base = api_base(prov.url)
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return await client.session.ws_connect(
        f"{base}/denoise/ws",
        params={"sample_rate": str(sample_rate)},
        headers=_headers(prov),
        # Closing waits for the server's close frame; a stalled server must not hold a
        # session's receive loop (VAD switched off) or its teardown for long.
        timeout=aiohttp.ClientWSTimeout(ws_close=min(timeout_s, 2.0)),
        autoping=True,
        heartbeat=None,
    )
