"""tts-piper engine backends."""
