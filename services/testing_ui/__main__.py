"""Run the testing UI: `python -m services.testing_ui`."""

from services.kit.serve import serve
from services.testing_ui.app import build_app
from services.testing_ui.settings import Settings

settings = Settings()
serve(build_app(settings), "testing-ui", settings)
