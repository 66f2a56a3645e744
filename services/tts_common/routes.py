"""The endpoints both TTS services serve: OpenAI `/v1/audio/speech`, `/synthesize`, `/voices`."""

# No `from __future__ import annotations`: FastAPI must see `SpeakerDep`, a local of the
# factory, as a real annotation object, not a string it would look up in module globals.
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from services.tts_common.engine import SpeechEngine
from services.tts_common.schemas import SpeechRequest, SynthesizeRequest
from services.tts_common.service import Speaker


def speech_router(speaker: Callable[..., Speaker[SpeechEngine]]) -> APIRouter:
    """The TTS routes over the `Speaker` that the service's `speaker` dependency returns."""
    router = APIRouter(tags=["tts"])
    SpeakerDep = Annotated[Speaker[SpeechEngine], Depends(speaker)]

    @router.post("/v1/audio/speech", response_model=None)
    async def speech(body: SpeechRequest, service: SpeakerDep) -> Response:
        """OpenAI-compatible speech (tts-piper streams wav and pcm sentence by sentence)."""
        return await service.speak(
            body.input, body.voice, body.speed, body.response_format, param="input"
        )

    @router.post("/synthesize", response_model=None)
    async def synthesize(body: SynthesizeRequest, service: SpeakerDep) -> Response:
        """The seed's endpoint: `{text, voice}` → one complete audio/wav, X-TTS-Engine set."""
        return await service.speak(body.text, body.voice, 1.0, "wav", param="text", stream=False)

    @router.get("/voices")
    async def voices(service: SpeakerDep) -> dict[str, Any]:
        """Local voices, the default, and what each OpenAI voice name maps to."""
        return service.voices_info()

    return router
