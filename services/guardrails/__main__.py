"""Run the guardrails service: `python -m services.guardrails`."""

from services.guardrails.app import build_app
from services.guardrails.settings import Settings
from services.kit.serve import serve

if __name__ == "__main__":
    settings = Settings()
    serve(build_app(settings), "guardrails", settings)
