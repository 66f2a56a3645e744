"""tts-piper endpoints: OpenAI `/v1/audio/speech`, the seed's `/synthesize`, `/voices`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from services.kit import ServiceState
from services.kit.app import get_state
from services.kit.limits import check_text_length
from services.tts_common.engine import SpeechEngine
from services.tts_common.schemas import SpeechRequest, SynthesizeRequest
from services.tts_common.streaming import audio_response, chunks_in_thread
from services.tts_common.voices import resolve_voice
from services.tts_piper.settings import Settings

router = APIRouter(tags=["tts"])


def _check_length(state: ServiceState, text: str, param: str) -> None:
    settings = state.settings
    assert isinstance(settings, Settings)
    check_text_length(text, settings.max_chars, param, code="input_too_long")


async def _speak(
    state: ServiceState,
    text: str,
    voice_name: str,
    speed: float,
    fmt: str,
    param: str,
    stream: bool = True,
) -> Response:
    _check_length(state, text, param)
    state.require_ready()
    engine: SpeechEngine = state.resources["engine"]
    voice = resolve_voice(voice_name, engine.voices(), state.resources["voice_map"])
    chunks = chunks_in_thread(
        state.resources["limiter"], lambda: engine.synthesize(text, voice, speed)
    )
    return await audio_response(
        chunks,
        engine.sample_rate(voice),
        fmt,
        engine="piper",
        metrics=state.resources["metrics"],
        characters=len(text),
        headers={"X-TTS-Voice": voice},
        stream=stream,
    )


@router.post("/v1/audio/speech", response_model=None)
async def speech(body: SpeechRequest, request: Request) -> Response:
    """OpenAI-compatible speech; wav and pcm stream sentence by sentence."""
    state = get_state(request)
    return await _speak(state, body.input, body.voice, body.speed, body.response_format, "input")


@router.post("/synthesize", response_model=None)
async def synthesize(body: SynthesizeRequest, request: Request) -> Response:
    """The seed's endpoint: `{text, voice}` → one complete audio/wav (sizes in the header)."""
    state = get_state(request)
    return await _speak(state, body.text, body.voice, 1.0, "wav", "text", stream=False)


@router.get("/voices")
async def voices(request: Request) -> dict[str, Any]:
    """Local voices, the default, and what each OpenAI voice name maps to."""
    state = get_state(request)
    state.require_ready()
    engine: SpeechEngine = state.resources["engine"]
    names = engine.voices()
    return {
        "engine": "piper",
        "default": names[0],
        "voices": [{"name": n, "sample_rate": engine.sample_rate(n)} for n in names],
        "openai_voices": state.resources["voice_map"],
    }
