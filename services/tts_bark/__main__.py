"""Run tts-bark: `python -m services.tts_bark`."""

from services.kit.serve import serve
from services.tts_bark.app import build_app
from services.tts_bark.settings import Settings

settings = Settings()
serve(build_app(settings), "tts-bark", settings)
