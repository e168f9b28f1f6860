# tether — developer entry points. `make help` lists them.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export GOTOOLCHAIN := local

.DEFAULT_GOAL := help
.PHONY: help install test test-unit test-lab test-kind test-faults lint bench bench-gateway bench-kind demo \
	kind-demo kind-images kind-up kind-down lab-binaries clean istio-diff

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

test: install lab-binaries kind-images ## the whole suite: unit, lab (lab + e2e on the lab), kind (e2e on kind)
	$(BIN)/pytest -m "not lab and not bench and not e2e" tests/unit
	$(BIN)/pytest -m "lab or e2e" --cluster=lab tests/lab tests/e2e
	$(BIN)/pytest -m e2e --cluster=kind tests/e2e

test-unit: install ## unit tier only (seconds)
	$(BIN)/pytest -m "not lab and not bench and not e2e" tests/unit

test-lab: install lab-binaries ## lab tier: lab tests and the end-to-end suite on the lab
	$(BIN)/pytest -m "lab or e2e" --cluster=lab tests/lab tests/e2e

test-kind: install kind-images ## kind tier: the end-to-end suite on a kind cluster (offline images)
	$(BIN)/pytest -m e2e --cluster=kind tests/e2e

FAULTS := tests/e2e/test_faults_control_plane.py tests/e2e/test_faults_data_plane.py
test-faults: install lab-binaries kind-images ## fault scenarios under load, lab then kind; prints the FAULTS figures
	$(BIN)/pytest -m e2e -s --cluster=lab $(FAULTS)
	$(BIN)/pytest -m e2e -s --cluster=kind $(FAULTS)

kind-images: install lab-binaries ## build the offline kind images (node, go-httpbin, tether:dev; cached)
	$(BIN)/tether kind build

kind-up: kind-images ## a kind cluster `tether` with tether's images loaded (gateway port printed)
	$(BIN)/tether kind up

kind-down: install ## delete the kind cluster `tether`
	$(BIN)/tether kind down

kind-demo: kind-images ## the seed walkthrough on a kind cluster: real images, deploy/ unchanged
	$(BIN)/tether demo --cluster kind

lint: install ## ruff + import-linter layer contracts
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	cd operator && ../$(BIN)/lint-imports --config ../pyproject.toml

bench: install ## benchmarks: hashing core (table, JSON, PNG) and the operator on the lab
	$(BIN)/pytest -m bench -s -p no:cacheprovider tests/bench --ignore=tests/bench/test_kind_bench.py

bench-kind: install lab-binaries kind-images ## kind vs lab: warm up, scale -> routing, gateway rps
	$(BIN)/pytest -m bench -s -p no:cacheprovider tests/bench/test_kind_bench.py

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
