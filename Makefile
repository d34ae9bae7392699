# ganstudy: `make` sets up .venv and runs the default study (dvc repro); `make test` tests.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Quiet, offline-friendly defaults; set them yourself to override.
export DO_NOT_TRACK ?= true
export MLFLOW_DISABLE_TELEMETRY ?= true
export DVC_NO_ANALYTICS ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
MLFLOW_PORT ?= 5000
PREFECT_PORT ?= 4200
PREFECT_API ?= http://127.0.0.1:$(PREFECT_PORT)/api
FLOW_ARGS ?=

.PHONY: all setup repro test test-studies lint flow mlflow-ui prefect-server prefect-worker deploy lock
all: setup repro

setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml requirements.lock scripts/setup.sh
	bash scripts/setup.sh
	touch $@

repro: setup            ## run (or bring up to date) the default study
	dvc repro

test: setup             ## the test suite (offline, a few minutes on 2 cores)
	python -m pytest

test-studies: setup     ## each paper-table study at its tiny size through dvc (about 6 minutes)
	python -m pytest -m slow

lint: setup
	ruff check src stages pipelines tests benchmarks

flow: setup             ## the study as a Prefect flow (temporary local server); FLOW_ARGS="--workers 2 --threads-per-item 1"
	python -m pipelines.study $(FLOW_ARGS)

mlflow-ui: setup        ## MLflow UI on 127.0.0.1
	mlflow ui --host 127.0.0.1 --port $(MLFLOW_PORT) --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

prefect-server: setup   ## a local Prefect server on 127.0.0.1 (UI at http://127.0.0.1:$(PREFECT_PORT))
	prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

prefect-worker: setup   ## a process worker on the deployments' pool (one per host; all poll the same pool)
	PREFECT_API_URL=$(PREFECT_API) prefect worker start --pool ganstudy-local --type process

# PWD is the deployments' working directory ("{{ $PWD }}" in prefect.yaml), even under make -C.
deploy: setup           ## create the work pool if needed, register prefect.yaml's deployments
	PREFECT_API_URL=$(PREFECT_API) prefect work-pool inspect ganstudy-local >/dev/null 2>&1 \
	  || PREFECT_API_URL=$(PREFECT_API) prefect work-pool create ganstudy-local --type process
	PWD=$(CURDIR) PREFECT_API_URL=$(PREFECT_API) prefect --no-prompt deploy --all

lock:                   ## regenerate requirements.lock from the current .venv
	{ head -3 requirements.lock; $(VENV)/bin/pip freeze --exclude-editable | grep -v '^ganstudy' \
	  | sed -E 's/\+[a-z0-9.]+$$//'; } > requirements.lock.new && mv requirements.lock.new requirements.lock
