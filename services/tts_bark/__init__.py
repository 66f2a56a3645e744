"""tts-bark: expressive Bark text-to-speech (transformers) that falls back to tts-piper."""
