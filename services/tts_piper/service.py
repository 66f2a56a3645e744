"""The layer between tts-piper's routes and its engine: the shared TTS `Speaker` over Piper.

Piper needs nothing beyond what `tts_common.service.Speaker` does (length limit, voice
choice, queue, metrics, streamed answers); the module exists so that every service keeps
this layer under the same name.
"""

from __future__ import annotations

from services.tts_common.service import Speaker
from services.tts_piper.engine import PiperSpeech


class PiperSpeaker(Speaker[PiperSpeech]):
    """Speech from the loaded Piper voices."""
