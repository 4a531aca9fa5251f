# Hourglass — every target installs what it needs on a fresh machine.
PYTHON_BOOT ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed-dev
RUN_STAMP   := $(VENV)/.installed-server
# The dashboard's browser tests drive Debian's Chromium (Playwright's own download cannot run here).
CHROMIUM    := /usr/bin/chromium
SUDO        := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
export PYTHONPATH := client:core:coordinator:worker:proto

.PHONY: help venv proto stubs proto-baseline run dev cluster services services-stop test screenshots test-unit test-contract test-e2e lint typecheck bench chaos clean

help:
	@echo "make run            start Hourglass on its embedded default (SQLite + in-process leases) with a live demo"
	@echo "make test           install, start Redis and Cassandra, run every test"
	@echo "make services       start Redis and Cassandra on loopback   (make services-stop stops them)"
	@echo "                    KAFKA=1: a single-node Kafka (KRaft) on 127.0.0.1:9092 as well"
	@echo "                    CASSANDRA_NODES=3: a three-node Cassandra ring on 127.0.0.2-4 as well"
	@echo "make cluster        Redis + Cassandra + 2 coordinators + 2 workers on this box"
	@echo "make lint           ruff and buf lint (also run by make test)"
	@echo "make typecheck      mypy --strict"
	@echo "make proto          regenerate proto/hourglass_pb from proto/hourglass/v1"
	@echo "make stubs          regenerate every client's code from proto/ (Python, Go; make test checks it is fresh)"
	@echo "make proto-baseline take the protos as they are as the API buf breaking compares with"
	@echo "make screenshots    the dashboard's views into docs/screenshots (hourglass dev --demo, headless Chromium)"

$(VENV)/bin/python:
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# `make run` needs only the servers' packages; tests and benchmarks add the dev tools.
$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[server]'
	touch $@

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(RUN_STAMP)

venv: $(STAMP)

proto: $(STAMP)
	PYTHON=$(PY) bash scripts/gen_proto.sh

# Go's generators come from the Go proxy (scripts/go_tools.sh, pinned) into .tools/bin.
stubs: $(STAMP)
	PYTHON=$(PY) bash scripts/stubs.sh

# Only for a deliberate break of the API (a new major version): buf breaking compares with this.
proto-baseline: $(STAMP)
	$(VENV)/bin/buf build --exclude-source-info -o proto/buf-baseline.binpb

run: $(RUN_STAMP)
	$(PY) -m hourglass dev --demo

dev: $(RUN_STAMP)
	$(PY) -m hourglass dev

# Kafka only when asked (KAFKA=1): the embedded default and most work need no broker.
KAFKA ?= 0
# CASSANDRA_NODES=3: a three-node ring on 127.0.0.2-4 as well (scripts/services.sh ring).
CASSANDRA_NODES ?= 1
services: $(STAMP)
	PYTHON=$(PY) HOURGLASS_KAFKA=$(KAFKA) bash scripts/services.sh start
	if [ "$(CASSANDRA_NODES)" = 3 ]; then PYTHON=$(PY) bash scripts/services.sh ring start; \
	elif [ "$(CASSANDRA_NODES)" != 1 ]; then echo "CASSANDRA_NODES: 1 or 3" >&2; exit 2; fi

services-stop:
	bash scripts/services.sh ring stop
	bash scripts/services.sh stop

cluster: services
	bash scripts/cluster.sh

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

# The Kafka ingestion tests need the broker: `make test` asks for it (its prerequisites see KAFKA=1).
test: KAFKA = 1
test: services lint $(CHROMIUM)
	$(PY) -m pytest -q -p no:cacheprovider

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/buf lint

typecheck: $(STAMP)
	$(PY) -m mypy client core coordinator worker benchmarks tests

screenshots: $(STAMP) $(CHROMIUM)
	$(PY) -m scripts.dashboard_screenshots docs/screenshots

bench: KAFKA = 1
bench: services
	$(PY) -m benchmarks.run

chaos: services
	$(PY) -m benchmarks.chaos

clean:
	rm -rf $(VENV) .services .hourglass .mypy_cache .pytest_cache
