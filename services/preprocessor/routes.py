"""HTTP endpoints: whole-file `/denoise` and raw-PCM `/denoise/streaming`."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import UploadFile

from services.kit import ApiError
from services.kit.audio import decode_audio, encode_wav, from_pcm16, to_pcm16
from services.preprocessor.deps import DepsDep

router = APIRouter(tags=["denoise"])

_RAW_TYPES = ("audio/", "application/octet-stream")


async def _read_upload(request: Request) -> bytes:
    """The audio bytes of a multipart `file` field or of a raw audio body."""
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(
                400,
                "multipart field 'file' (the audio) is required",
                param="file",
                code="missing_file",
            )
        return await upload.read()
    if ctype and not ctype.startswith(_RAW_TYPES):
        raise ApiError(
            415,
            f"send audio as multipart 'file' or a raw audio/wav body, not {ctype}",
            param="file",
            code="unsupported_media_type",
        )
    return await request.body()


@router.post(
    "/denoise",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}, "description": "Denoised mono WAV."}},
)
async def denoise(request: Request, deps: DepsDep) -> Response:
    """Denoise an audio file (multipart `file` or raw body); WAV back at the input's rate."""
    denoiser = deps.service
    # Decoding a large file takes a while: keep it off the event loop.
    audio = await asyncio.to_thread(decode_audio, await _read_upload(request))
    denoiser.check_rate(audio.sample_rate, "file")
    denoiser.check_duration(len(audio.samples), audio.sample_rate, "file")
    out = await denoiser.denoise(audio.samples, audio.sample_rate, "denoise")
    return Response(
        encode_wav(out, audio.sample_rate),
        media_type="audio/wav",
        headers=denoiser.headers(audio.sample_rate),
    )


@router.post(
    "/denoise/streaming",
    response_class=Response,
    responses={200: {"content": {"audio/pcm": {}}, "description": "Denoised PCM16, same length."}},
)
async def denoise_streaming(
    request: Request,
    deps: DepsDep,
    sample_rate: Annotated[int, Query(description="Rate of the PCM16 mono body (Hz).")] = 16000,
) -> Response:
    """Denoise raw little-endian PCM16 mono; PCM16 of the same length back."""
    denoiser = deps.service
    denoiser.check_rate(sample_rate, "sample_rate")
    data = await request.body()
    if not data:
        raise ApiError(
            400, "request body is empty: send PCM16 samples", param="body", code="empty_audio"
        )
    samples = from_pcm16(data)
    denoiser.check_duration(len(samples), sample_rate, "body")
    out = await denoiser.denoise(samples, sample_rate, "denoise_streaming")
    return Response(to_pcm16(out), media_type="audio/pcm", headers=denoiser.headers(sample_rate))
