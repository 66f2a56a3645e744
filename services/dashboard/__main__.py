"""Run the dashboard: `python -m services.dashboard` execs `streamlit run` on app.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from services.dashboard.settings import Settings


def command(settings: Settings) -> list[str]:
    """The streamlit command line for these settings."""
    script = Path(__file__).with_name("app.py")
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.port",
        str(settings.port),
        "--server.address",
        settings.host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--logger.level",
        settings.log_level.lower(),
    ]


def main() -> None:
    """Validate settings here (a clear error beats a broken page), then become Streamlit."""
    settings = Settings()
    settings.service_urls()
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    # Streamlit puts the script's folder on sys.path, not the repo: make `services` importable.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    os.execve(sys.executable, command(settings), env)


if __name__ == "__main__":
    main()
