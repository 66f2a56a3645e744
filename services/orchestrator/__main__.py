"""Run the orchestrator: `python -m services.orchestrator`."""

from services.kit.serve import serve
from services.orchestrator.app import build_app
from services.orchestrator.settings import Settings

if __name__ == "__main__":
    settings = Settings()
    serve(build_app(settings), "orchestrator", settings)
