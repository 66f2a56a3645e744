"""Guardrails service: prompt-injection checks, toxicity and PII filtering, escalations."""
