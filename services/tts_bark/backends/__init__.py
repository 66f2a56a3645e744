"""tts-bark engine backends."""
