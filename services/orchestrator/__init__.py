"""Orchestrator: runs YAML-configured pipelines of stage services with fallbacks."""
