"""Live voice sessions: the OpenAI Realtime API on WS /v1/realtime."""
