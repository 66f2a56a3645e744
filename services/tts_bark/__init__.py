"""tts-bark: expressive Bark text-to-speech (transformers); 503 while it cannot serve."""
