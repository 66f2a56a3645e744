"""tts-piper endpoints: the shared TTS routes over this service's `Speaker`."""

from __future__ import annotations

from services.tts_common.routes import speech_router
from services.tts_common.service import Speaker
from services.tts_piper.deps import DepsDep
from services.tts_piper.engine import PiperSpeech


def _speaker(deps: DepsDep) -> Speaker[PiperSpeech]:
    return deps.service


router = speech_router(_speaker)
