"""Speech-to-text service: Whisper behind the OpenAI transcription API."""
