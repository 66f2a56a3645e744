"""Run the llm-flan service: `python -m services.llm`."""

from services.kit.serve import serve
from services.llm.app import build_app
from services.llm.settings import Settings

if __name__ == "__main__":
    settings = Settings()
    serve(build_app(settings), "llm-flan", settings)
