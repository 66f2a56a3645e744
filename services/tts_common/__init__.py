"""Code shared by the two TTS services: request models, voices, sentence splitting, streaming."""
