"""The e2e mesh's keys and views (tests/e2e): shared by its fixtures and tests."""

from __future__ import annotations

API_KEY = "e2e-test-key"
ADMIN_KEY = "e2e-admin-key"
# Started beside the stage services: the UI, the dashboard and Prometheus.
VIEW_SERVICES = ["testing-ui", "monitoring-dashboard", "prometheus"]
