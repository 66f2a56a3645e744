"""tts-piper: fast CPU text-to-speech with Piper behind the OpenAI speech API."""
