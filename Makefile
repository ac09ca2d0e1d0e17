# Bulk Transcribe — every target sets itself up first (idempotent), so a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
OUT ?= transcripts
PORT ?= 8501
APT_PACKAGES := espeak-ng chromium

.PHONY: setup setup-test lock system-deps run run-cli test test-fast test-faults bench bench-quick clean

setup: $(RUN_STAMP)
setup-test: $(TEST_STAMP)

# Debian packages the tests use: espeak-ng makes speech fixtures, chromium drives the browser tests. Installed only
# when missing, and only by the test targets: running the tool needs neither.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Please install:$$missing (sudo apt-get install$$missing)"; fi; \
	fi

# Python packages come from two locks (exact versions and hashes), so a fresh clone installs the same set on any
# day: requirements.lock is what the tool needs to run, requirements-dev.lock adds what the tests need (its shared
# pins are the runtime lock's). pyproject.toml keeps the ranges. uv itself is pinned: it resolves and installs from
# the same index as pip. Installs add to the venv (never remove), so `make run` after `make test` keeps the test set.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
LOCK_FLAGS := --generate-hashes --universal --python-version 3.11

$(VENV)/.venv-made:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION)
	touch $@

$(RUN_STAMP): pyproject.toml requirements.lock $(VENV)/.venv-made
	$(UV) pip install -q --python $(BIN)/python -r requirements.lock
	$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

$(TEST_STAMP): pyproject.toml requirements-dev.lock $(RUN_STAMP)
	$(MAKE) system-deps
	$(UV) pip install -q --python $(BIN)/python -r requirements-dev.lock
	touch $@

# Re-resolve the ranges in pyproject.toml to today's newest versions, on purpose (after changing a dependency, or to
# take upgrades): review the diff of both locks, run `make test`, commit them together.
lock: $(VENV)/.venv-made
	$(UV) pip compile -q pyproject.toml $(LOCK_FLAGS) --upgrade -o requirements.lock
	$(UV) pip compile -q pyproject.toml $(LOCK_FLAGS) --extra dev -c requirements.lock --upgrade -o requirements-dev.lock

# The main job on the embedded default: the dashboard on http://127.0.0.1:$(PORT) (bundled model; the parallel
# toggle starts an embedded local Ray). Only this machine can reach it unless you opt out (see README, Security).
run: setup
	$(BIN)/streamlit run streamlit_app.py --server.address 127.0.0.1 --server.port $(PORT) --server.headless true

# Headless: transcribe the bundled sample media with the CLI.
run-cli: setup
	$(BIN)/bulk-transcribe run samples --out $(OUT)

test: setup-test
	$(BIN)/python -m pytest

test-fast: setup-test
	$(BIN)/python -m pytest -m "not slow and not browser"

test-faults: setup-test
	$(BIN)/python -m pytest -m slow

bench: setup-test
	$(BIN)/python -m benchmarks.run_all

bench-quick: setup-test
	$(BIN)/python -m benchmarks.run_all --quick

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
