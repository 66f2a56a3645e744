"""tts-piper endpoints: the shared TTS routes over this service's `Speaker`."""

from __future__ import annotations

from services.tts_common.routes import speech_router
from services.tts_piper.deps import DepsDep
from services.tts_piper.service import PiperSpeaker


def _speaker(deps: DepsDep) -> PiperSpeaker:
    return deps.service


router = speech_router(_speaker)
