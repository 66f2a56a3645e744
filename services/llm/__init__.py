"""llm-flan: FLAN-T5 and causal chat models behind an OpenAI-compatible chat API."""
