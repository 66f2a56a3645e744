# One image recipe for every service: SERVICE picks the package to run, EXTRAS the
# pyproject extras (engines) it needs. Models live in the /models volume.
#
# Layers are ordered from most shared to least, so building every service costs little more
# than building one: system packages and the core dependencies are the same layers in every
# image, torch is one layer shared by every image that names the same TORCH_SPEC, and only the
# extras and the source differ per service. The dependency layers depend on the requirement
# lists (extracted from pyproject.toml in a small stage), not on pyproject.toml itself, so an
# edit elsewhere in it, or in the README, does not reinstall them. No `RUN --mount` cache
# mounts: the recipe must also build with the classic builder (a docker CLI without buildx).
#
#   docker build .                                               # orchestrator, hub base
#   docker build --build-arg SERVICE=stt --build-arg EXTRAS=stt .
#   docker build --build-arg BASE_IMAGE=audio-orchestrator/base:bookworm .   # no registry
ARG BASE_IMAGE=python:3.11-slim-bookworm

# Requirement lists and the local torch wheels this image needs (none unless TORCH_SPEC).
FROM ${BASE_IMAGE} AS requirements
# The default SERVICE's extras, so a bare `docker build .` gives a working orchestrator.
ARG EXTRAS="orchestrator"
ARG TORCH_SPEC=""
COPY pyproject.toml scripts/image_deps.py /src/
COPY wheels/ /src/wheels/
RUN mkdir -p /out/wheels \
    && python /src/image_deps.py --pyproject /src/pyproject.toml > /out/core.txt \
    && python /src/image_deps.py --pyproject /src/pyproject.toml --extras "${EXTRAS}" --no-core > /out/extras.txt \
    && if [ -n "${TORCH_SPEC}" ]; then find /src/wheels -name '*.whl' -exec cp {} /out/wheels/ \; ; fi

FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    HF_HOME=/models/hf \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 libopus0 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 app && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /models /data \
    && chown app:app /models /data \
    && python -m venv /opt/venv \
    && pip install --upgrade pip setuptools wheel

# Core dependencies: identical in every image (the file's content is the cache key).
COPY --from=requirements /out/core.txt /tmp/req/core.txt
RUN pip install -r /tmp/req/core.txt

# torch, when the service needs it. TORCH_SPEC is a pip requirement list pinned in one
# command (torch and torchaudio together); TORCH_INDEX_URL names PyTorch's wheel index
# (https://download.pytorch.org/whl/cpu for CPU images: PyPI's plain `torch` is the multi-GB
# CUDA build). Wheels placed in ./wheels/ are used first (a machine with no PyTorch index).
ARG TORCH_SPEC=""
ARG TORCH_INDEX_URL=""
COPY --from=requirements /out/wheels/ /tmp/wheels/
RUN if [ -n "${TORCH_SPEC}" ]; then \
        pip install --find-links /tmp/wheels ${TORCH_INDEX_URL:+--extra-index-url "${TORCH_INDEX_URL}"} ${TORCH_SPEC}; \
    fi \
    && rm -rf /tmp/wheels \
    && pip freeze > /tmp/req/freeze.txt \
    && { grep -E '^(torch|torchaudio|torchvision)==' /tmp/req/freeze.txt > /tmp/req/torch-pins.txt || true; }

# The service's engines (EXTRAS; empty = core only) and any extra packages (EXTRA_PIP, e.g.
# CUDA libraries for CTranslate2). Installed torch stays as pinned (constraints file).
ARG EXTRA_PIP=""
COPY --from=requirements /out/extras.txt /tmp/req/extras.txt
RUN if [ -s /tmp/req/extras.txt ] || [ -n "${EXTRA_PIP}" ]; then \
        pip install -c /tmp/req/torch-pins.txt ${TORCH_INDEX_URL:+--extra-index-url "${TORCH_INDEX_URL}"} -r /tmp/req/extras.txt ${EXTRA_PIP}; \
    fi

WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY config ./config
RUN pip install --no-deps --no-build-isolation . && rm -rf build ./*.egg-info

ARG SERVICE=orchestrator
ENV SERVICE=${SERVICE}
USER 10001:10001
VOLUME ["/models"]
CMD ["sh", "-c", "exec python -m services.${SERVICE}"]
