# tether — developer entry points. `make help` lists them.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export GOTOOLCHAIN := local

.DEFAULT_GOAL := help
.PHONY: help install test test-unit test-lab lint bench bench-gateway demo lab-binaries clean istio-diff

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(BIN)/tether: pyproject.toml setup.py $(wildcard operator/tether/*/*/*.[ch])
	@command -v $(PY) >/dev/null || { echo "need $(PY) on PATH" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/tether ## create .venv and install tether with its dev tools

lab-binaries: install ## build the lab's Go binaries into the cache (only when missing)
	$(BIN)/tether lab build

test: install lab-binaries ## the whole suite: unit tier, then the lab tier on a real control plane
	$(BIN)/pytest -m "not lab and not bench" tests/unit
	$(BIN)/pytest -m lab tests/lab

test-unit: install ## unit tier only (seconds)
	$(BIN)/pytest -m "not lab and not bench" tests/unit

test-lab: install lab-binaries ## lab tier only
	$(BIN)/pytest -m lab tests/lab

lint: install ## ruff + import-linter layer contracts
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	cd operator && ../$(BIN)/lint-imports --config ../pyproject.toml

bench: install ## benchmarks: hashing core (table, JSON, PNG) and the operator on the lab
	$(BIN)/pytest -m bench -s -p no:cacheprovider tests/bench

bench-gateway: install ## gateway vs nginx vs HAProxy side by side on loopback
	$(BIN)/python -m tests.bench.gateway

demo: install lab-binaries ## the seed walkthrough, end to end on the lab
	$(BIN)/tether demo

ISTIO_VERSION := $(shell awk '$$1 == "istio.io/istio" {print $$2}' tools/istio-validate/go.mod)
ISTIO_VALIDATE := $(or $(TETHER_CACHE_DIR),$(HOME)/.cache/tether)/istio-validate/$(ISTIO_VERSION)-$(shell go env GOVERSION 2>/dev/null)/istio-validate

$(ISTIO_VALIDATE): tools/istio-validate/main.go tools/istio-validate/go.mod tools/istio-validate/go.sum
	cd tools/istio-validate && go build -trimpath -o $@ .

istio-diff: install $(ISTIO_VALIDATE) ## Istio's own webhook (built once, cached) vs tether on the verdict corpus
	$(BIN)/python tools/istio-validate/corpus.py diff --harness $(ISTIO_VALIDATE)

clean: ## remove build products in the repo (not the binary cache)
	rm -rf build *.egg-info operator/*.egg-info .pytest_cache .ruff_cache
