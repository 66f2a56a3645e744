"""Run the stt service: `python -m services.stt`."""

from services.kit.serve import serve
from services.stt.app import build_app
from services.stt.settings import Settings

if __name__ == "__main__":
    settings = Settings()
    serve(build_app(settings), "stt", settings)
