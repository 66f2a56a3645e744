"""Run the audio-preprocessor service: `python -m services.preprocessor`."""

from services.kit.serve import serve
from services.preprocessor.app import build_app
from services.preprocessor.settings import Settings

if __name__ == "__main__":
    settings = Settings()
    serve(build_app(settings), "audio-preprocessor", settings)
