"""HTTP routes: OpenAI `/v1/audio/transcriptions`, the seed's `/transcribe`, `/v1/models`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from services.kit import ApiError
from services.kit.limits import read_upload
from services.stt.deps import DepsDep, SettingsDep
from services.stt.formats import (
    GRANULARITIES,
    RESPONSE_FORMATS,
    to_srt,
    to_verbose_json,
    to_vtt,
)

router = APIRouter()

# Model time for this request, so clients can tell service and network overhead from inference.
PROCESSING_HEADER = "X-Processing-Ms"


@router.post("/v1/audio/transcriptions", tags=["openai"], response_model=None)
async def transcriptions(
    deps: DepsDep,
    file: Annotated[UploadFile, File(description="Audio file (WAV, FLAC, OGG/Opus, MP3).")],
    model: Annotated[str | None, Form(description="Accepted for compatibility.")] = None,
    language: Annotated[str | None, Form(description="ISO-639-1 code; empty = detect.")] = None,
    prompt: Annotated[str | None, Form(description="Text to guide style or vocabulary.")] = None,
    response_format: Annotated[str, Form(description="json|text|verbose_json|srt|vtt")] = "json",
    temperature: Annotated[float, Form(ge=0.0, le=1.0, description="0 = automatic.")] = 0.0,
    timestamp_granularities: Annotated[
        list[str] | None, Form(alias="timestamp_granularities[]", description="word and/or segment")
    ] = None,
    stream: Annotated[bool, Form(description="Streaming is not supported.")] = False,
) -> Response:
    """Transcribe audio the way OpenAI's transcription endpoint does."""
    if stream:
        raise ApiError(
            400, "stream=true is not supported; omit it", param="stream", code="unsupported_option"
        )
    if response_format not in RESPONSE_FORMATS:
        raise ApiError(
            400,
            f"unknown response_format {response_format!r}; "
            f"use one of {', '.join(RESPONSE_FORMATS)}",
            param="response_format",
            code="invalid_response_format",
        )
    granularities = set(timestamp_granularities or [])
    unknown = granularities - set(GRANULARITIES)
    if unknown:
        raise ApiError(
            400,
            f"unknown timestamp_granularities {sorted(unknown)}; use word and/or segment",
            param="timestamp_granularities",
            code="invalid_granularity",
        )
    if granularities and response_format != "verbose_json":
        raise ApiError(
            400,
            "timestamp_granularities requires response_format=verbose_json",
            param="timestamp_granularities",
            code="invalid_granularity",
        )
    transcriber = deps.service
    options = transcriber.options(
        language=language,
        prompt=prompt,
        # OpenAI: temperature 0 means "start at 0, raise it when decoding fails".
        temperature=temperature or None,
        word_timestamps="word" in granularities,
    )
    data = await read_upload(file, transcriber.settings.max_upload_bytes)
    done = await transcriber.transcribe(data, options)
    result = done.transcription
    out: Response
    if response_format == "json":
        out = JSONResponse({"text": result.text})
    elif response_format == "verbose_json":
        out = JSONResponse(to_verbose_json(result, granularities))
    elif response_format == "srt":
        out = PlainTextResponse(to_srt(result.segments))
    elif response_format == "vtt":
        out = PlainTextResponse(to_vtt(result.segments), media_type="text/vtt")
    else:
        out = PlainTextResponse(result.text)
    out.headers[PROCESSING_HEADER] = f"{done.processing_ms:.1f}"
    return out


@router.post("/transcribe", tags=["stt"])
async def transcribe(
    deps: DepsDep,
    response: Response,
    file: Annotated[UploadFile, File(description="Audio file (WAV, FLAC, OGG/Opus, MP3).")],
    language: Annotated[str | None, Form(description="ISO-639-1 code; empty = detect.")] = None,
) -> dict[str, Any]:
    """Transcribe audio: text, language, duration, segments and the model's processing time."""
    transcriber = deps.service
    options = transcriber.options(language=language)
    data = await read_upload(file, transcriber.settings.max_upload_bytes)
    result = await transcriber.transcribe(data, options)
    response.headers[PROCESSING_HEADER] = f"{result.processing_ms:.1f}"
    t = result.transcription
    return {
        "text": t.text,
        "language": t.language,
        "duration": round(t.duration, 3),
        "segments": [
            {"id": s.id, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text.strip()}
            for s in t.segments
        ],
        "processing_ms": round(result.processing_ms, 1),
    }


@router.get("/v1/models", tags=["openai"])
async def models(settings: SettingsDep) -> dict[str, Any]:
    """The one model this service serves, in OpenAI's list format."""
    return {
        "object": "list",
        "data": [{"id": settings.model_id(), "object": "model", "created": 0, "owned_by": "stt"}],
    }
