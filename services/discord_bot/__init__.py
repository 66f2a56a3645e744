"""Discord voice bot: listens in a voice channel and talks to the orchestrator."""
