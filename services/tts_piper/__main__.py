"""Run tts-piper: `python -m services.tts_piper`."""

from services.kit.serve import serve
from services.tts_piper.app import build_app
from services.tts_piper.settings import Settings

settings = Settings()
serve(build_app(settings), "tts-piper", settings)
