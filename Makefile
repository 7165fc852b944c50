# podpreset — every target sets up what it needs on a fresh machine with Python 3.11 (and Go for e2e).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BIND ?= 127.0.0.1:8443
CERTS := build/dev-certs

.PHONY: install test unit lint run bench e2e e2e-kind controlplane clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $@

# Every test: the pure engine, the CLI, a real gunicorn over TLS, and the end-to-end suite
# against a kube-apiserver + etcd built from their Go modules.
test: install controlplane
	KUBEBUILDER_ASSETS="$$(hack/build-controlplane.sh 2>/dev/null | tail -n 1)" $(BIN)/pytest -q tests

# Everything but the end-to-end suite (no Go needed).
unit: install
	$(BIN)/pytest -q tests --ignore=tests/e2e

lint: install
	$(BIN)/ruff check presets webhook tests
	$(BIN)/ruff format --check presets webhook tests
	$(BIN)/mypy presets webhook

controlplane:
	hack/build-controlplane.sh >/dev/null

e2e: install controlplane
	KUBEBUILDER_ASSETS="$$(hack/build-controlplane.sh 2>/dev/null | tail -n 1)" $(BIN)/pytest -q tests/e2e

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .hypothesis
