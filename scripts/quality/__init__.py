"""The spoken question → spoken answer evaluation (`make eval`, docs/quality.md)."""
