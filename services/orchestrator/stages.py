"""HTTP calls to the stage services' documented APIs (one function per capability)."""

from __future__ import annotations

from typing import Any

import httpx

from services.orchestrator.config import ProviderConfig
from services.orchestrator.executor import BadResponse, ProviderError


def api_base(url: str) -> str:
    """Provider URL without a trailing slash or `/v1`, so both spellings work."""
    base = url.strip().rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def _headers(prov: ProviderConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {prov.api_key}"} if prov.api_key else {}


def _raise_for_status(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    message = resp.reason_phrase or "error"
    try:
        body = resp.json()
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            message = err["message"]
        elif isinstance(err, str):
            message = err
        elif isinstance(body, dict) and isinstance(body.get("detail"), str):
            message = body["detail"]
    except ValueError:
        if resp.text:
            message = resp.text[:200]
    raise ProviderError(resp.status_code, message)


def _json(resp: httpx.Response) -> dict[str, Any]:
    _raise_for_status(resp)
    try:
        data = resp.json()
    except ValueError as exc:
        raise BadResponse("response is not JSON") from exc
    if not isinstance(data, dict):
        raise BadResponse("response is not a JSON object")
    return data


class StageClient:
    """Calls stage services over one shared keep-alive client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def denoise(self, prov: ProviderConfig, audio: bytes, timeout_s: float) -> bytes:
        """POST raw audio to /denoise; returns the cleaned WAV."""
        resp = await self.client.post(
            api_base(prov.url) + "/denoise",
            content=audio,
            timeout=timeout_s,
            headers={"Content-Type": "audio/wav", **_headers(prov)},
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
        data = {"model": prov.model or "whisper-1", "response_format": "json"}
        data.update({k: str(v) for k, v in options.items()})
        resp = await self.client.post(
            api_base(prov.url) + "/v1/audio/transcriptions",
            files={"file": (filename, audio, "application/octet-stream")},
            data=data,
            timeout=timeout_s,
            headers=_headers(prov),
        )
        body = _json(resp)
        text = body.get("text")
        if not isinstance(text, str):
            raise BadResponse("transcription has no text")
        return text

    async def validate(
        self, prov: ProviderConfig, direction: str, text: str, timeout_s: float
    ) -> dict[str, Any]:
        """POST /validate/input or /validate/output; returns the verdict."""
        resp = await self.client.post(
            f"{api_base(prov.url)}/validate/{direction}",
            json={"text": text},
            timeout=timeout_s,
            headers=_headers(prov),
        )
        body = _json(resp)
        if not isinstance(body.get("safe"), bool):
            raise BadResponse(f"guardrails /validate/{direction} gave no boolean 'safe'")
        return body

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
        resp = await self.client.post(
            api_base(prov.url) + "/v1/audio/speech",
            json=payload,
            timeout=timeout_s,
            headers=_headers(prov),
        )
        _raise_for_status(resp)
        if not resp.content.startswith(b"RIFF"):
            raise BadResponse("speech reply is not a WAV file")
        return resp.content, resp.headers.get("X-TTS-Engine")
