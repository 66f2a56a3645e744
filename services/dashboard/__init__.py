"""monitoring-dashboard: a Streamlit page over service health checks and Prometheus."""
