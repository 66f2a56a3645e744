"""Shared service kit: app factory, errors, metrics, request IDs, logging, audio helpers."""

from services.kit.app import Readiness, ServiceState, create_app
from services.kit.errors import ApiError
from services.kit.settings import ServiceSettings

__all__ = ["ApiError", "Readiness", "ServiceSettings", "ServiceState", "create_app"]
