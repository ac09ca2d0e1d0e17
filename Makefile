# Bulk Transcribe — every target sets itself up first (idempotent), so a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= transcripts
PORT ?= 8501
APT_PACKAGES := espeak-ng chromium

.PHONY: setup lock system-deps run run-cli test test-fast test-faults bench bench-quick clean

setup: $(STAMP)

# Debian packages: espeak-ng makes speech fixtures, chromium drives the browser tests. Installed only when missing.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Please install:$$missing (sudo apt-get install$$missing)"; fi; \
	fi

# Python packages come from requirements.lock (exact versions and hashes), so a fresh clone installs the same set on
# any day; pyproject.toml keeps the ranges. uv itself is pinned: it resolves and installs from the same index as pip.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
LOCK_FLAGS := --extra dev --generate-hashes --universal --python-version 3.11

$(STAMP): pyproject.toml requirements.lock
	$(MAKE) system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(UV) pip sync -q --python $(BIN)/python requirements.lock
	$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

# Re-resolve the ranges in pyproject.toml to today's newest versions, on purpose (after changing a dependency, or to
# take upgrades): review the diff of requirements.lock, run `make test`, commit both files together.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(UV) pip compile -q pyproject.toml $(LOCK_FLAGS) --upgrade -o requirements.lock

# The main job on the embedded default: the dashboard on http://127.0.0.1:$(PORT) (bundled model; the parallel
# toggle starts an embedded local Ray). Only this machine can reach it unless you opt out (see README, Security).
run: setup
	$(BIN)/streamlit run streamlit_app.py --server.address 127.0.0.1 --server.port $(PORT) --server.headless true

# Headless: transcribe the bundled sample media with the CLI.
run-cli: setup
	$(BIN)/bulk-transcribe run samples --out $(OUT)

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not browser"

test-faults: setup
	$(BIN)/python -m pytest -m slow

bench: setup
	$(BIN)/python -m benchmarks.run_all

bench-quick: setup
	$(BIN)/python -m benchmarks.run_all --quick

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
