"""Command-line voice client of the orchestrator (built on services.client)."""
