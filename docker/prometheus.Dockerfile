# Prometheus from Debian's package, for machines that cannot pull prom/prometheus (the
# offline overlay builds it on the same base as the services). Same entrypoint contract as
# the hub image: compose passes the flags as `command`.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# A fixed system uid (adduser in the package postinst wants one below 1000) so the prometheus-data volume's ownership does not depend on package order.
RUN groupadd --system --gid 990 prometheus \
    && useradd --system --uid 990 --gid 990 --home-dir /prometheus --shell /usr/sbin/nologin prometheus \
    && apt-get update \
    && apt-get install -y --no-install-recommends prometheus wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus \
    && chown 990:990 /prometheus

USER 990:990
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
