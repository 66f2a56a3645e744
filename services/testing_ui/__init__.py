"""testing-ui: a Gradio page for trying the assistant through the orchestrator."""
