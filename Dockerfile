# One image recipe for every service: the SERVICE build arg picks the package to run,
# EXTRAS the pyproject extras (engines) it needs. Models live in the /models volume.
FROM python:3.11-slim-bookworm

ARG SERVICE=orchestrator
ARG EXTRAS=""
# Services with a transformers engine need torch; CPU images may point PIP_EXTRA_INDEX_URL
# at PyTorch's CPU wheel index to avoid the CUDA build.
ARG TORCH_SPEC=""
ARG PIP_EXTRA_INDEX_URL=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/hf \
    SERVICE=${SERVICE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 libopus0 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 app && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /models /data \
    && chown app:app /models /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY config ./config

RUN if [ -n "${TORCH_SPEC}" ]; then pip install "${TORCH_SPEC}"; fi \
    && pip install ".[${EXTRAS}]"

USER 10001:10001
VOLUME ["/models"]
CMD ["sh", "-c", "exec python -m services.${SERVICE}"]
