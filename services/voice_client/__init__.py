"""Voice clients of the orchestrator: a shared HTTP client and a command-line client."""
