"""tts-bark endpoints: the shared TTS routes over Bark (503 `not_ready` until it has loaded)."""

from __future__ import annotations

from services.tts_bark.deps import DepsDep
from services.tts_bark.service import BarkSpeaker
from services.tts_common.routes import speech_router


def _speaker(deps: DepsDep) -> BarkSpeaker:
    return deps.service


router = speech_router(_speaker)
