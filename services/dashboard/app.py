"""The Streamlit page (run with `streamlit run`; `python -m services.dashboard` does that)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from services.dashboard.data import (
    PrometheusClient,
    PrometheusUnavailable,
    ServiceHealth,
    check_health,
    request_rate_query,
    snapshot,
    stage_p95_query,
    timeseries,
)
from services.dashboard.settings import Settings


def _health_table(rows: list[ServiceHealth]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "service": r.name,
                "live": "up" if r.live else "DOWN",
                "ready": "ready" if r.ready else "NOT READY",
                "engine": r.engine,
                "model": r.model,
                "probe ms": "" if r.latency_ms is None else f"{r.latency_ms:.0f}",
                "detail": r.detail,
                "url": r.url,
            }
            for r in rows
        ]
    )


def _table(rows: list[dict[str, Any]], empty: str) -> None:
    # st.table renders plain HTML, so the values are in the page (and in browser tests).
    if rows:
        # Strings, so the table shows 12.5 and not 12.5000.
        shown = [{k: f"{v:g}" if isinstance(v, float) else v for k, v in r.items()} for r in rows]
        st.table(pd.DataFrame(shown), hide_index=True)
    else:
        st.caption(empty)


def _chart(series: dict[str, list[tuple[float, float]]], empty: str) -> None:
    if not any(series.values()):
        st.caption(empty)
        return
    frames = [
        pd.Series(
            [v for _, v in pts],
            index=pd.to_datetime([t for t, _ in pts], unit="s"),
            name=name,
        )
        for name, pts in series.items()
        if pts
    ]
    st.line_chart(pd.concat(frames, axis=1))


def render(settings: Settings) -> None:
    """Draw one refresh of the dashboard."""
    services = settings.service_urls()
    health = check_health(services, settings.timeout_s)
    ready = sum(r.ready for r in health)
    st.caption(
        f"Refreshed {datetime.now(UTC):%H:%M:%S} UTC · every {settings.refresh_s:g} s · "
        f"Prometheus {settings.prometheus_url}"
    )
    st.subheader(f"Service health — {ready}/{len(health)} ready")
    if health:
        st.table(_health_table(health), hide_index=True)
    else:
        st.info("No services configured (DASHBOARD_SERVICES or the *_URL variables).")

    prom = PrometheusClient(settings.prometheus_url, settings.timeout_s)
    try:
        snap = snapshot(prom, settings.rate_window)
        rate_series = timeseries(
            prom, request_rate_query(settings.rate_window), "service", settings.chart_minutes
        )
        p95_series = timeseries(
            prom, stage_p95_query(settings.rate_window), "stage", settings.chart_minutes
        )
    except PrometheusUnavailable as exc:
        st.warning(
            f"Prometheus is unreachable — metrics are unavailable. {exc}. "
            "The health grid above is probed directly and stays current."
        )
        return
    finally:
        prom.close()

    down = [t for t in snap.targets if t["health"] != "up"]
    if down:
        st.warning(
            "Prometheus cannot scrape: "
            + ", ".join(f"{t['job']} ({t['error'] or t['health']})" for t in down)
        )
    window = settings.rate_window
    st.subheader("Requests (health probes and scrapes excluded)")
    _table(snap.requests, "No requests recorded yet.")
    left, right = st.columns(2)
    with left:
        st.subheader(f"Latency per service (last {window})")
        _table(snap.http_latency, "No requests in the window.")
    with right:
        st.subheader(f"Latency per stage and provider (last {window})")
        _table(snap.stage_latency, "No orchestrated turns in the window.")
    left, right = st.columns(2)
    with left:
        st.subheader("Stage outcomes")
        _table(snap.stage_outcomes, "No stage calls recorded yet.")
        st.subheader("Fallbacks")
        _table(snap.fallbacks, "No fallbacks recorded.")
    with right:
        st.subheader("Guardrail blocks by reason")
        _table(snap.blocks, "No guardrail blocks recorded.")
    st.subheader(f"Request rate per service (req/s, last {settings.chart_minutes} min)")
    _chart(rate_series, "No request-rate data yet.")
    st.subheader(f"p95 stage latency (s, last {settings.chart_minutes} min)")
    _chart(p95_series, "No stage latency data yet.")


def main() -> None:
    """Page setup and the auto-refreshing fragment."""
    st.set_page_config(page_title="Audio Orchestrator — monitoring", layout="wide")
    st.title("Audio Orchestrator — monitoring")
    try:
        settings = Settings()
        services = settings.service_urls()
    except ValueError as exc:
        st.error(f"Dashboard settings are invalid: {exc}")
        return
    del services

    @st.fragment(run_every=settings.refresh_s)
    def live() -> None:
        render(settings)

    live()


if __name__ == "__main__":
    main()
