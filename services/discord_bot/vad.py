"""Speech probability backends for the segmenter (shared with the orchestrator: `kit.vad`)."""

from services.kit.vad import WINDOW, SileroDetector, SpeechDetector

__all__ = ["WINDOW", "SileroDetector", "SpeechDetector"]
