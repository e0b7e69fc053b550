# Every set-up step lives here: a fresh Debian machine and a fresh clone need nothing else.
# `make run` serves the bundled log; `make test` installs what the tests need and runs them.

PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
HOST     ?= 127.0.0.1
PORT     ?= 8000
PYTEST_ARGS ?=
# Two pytest workers: the slow tests mostly wait (tor voting, mmdebstrap, apt inside the chroot), so the
# deployment test runs beside the rest; tests sharing a Tor network stay on one worker (tests/conftest.py).
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

# Debian packages the tests use: a real tor, a real headless Chromium, a root filesystem builder
# for the deployment test, nginx and wrk for the ceilings in `make bench`.
DEB_TEST_PACKAGES := tor chromium mmdebstrap nginx-light wrk systemd sqlite3 ca-certificates iproute2 procps

.PHONY: help run test test-fast bench check lint install install-test system-deps clean

help:
	@echo "make run        create the venv, build the index, serve content/ on http://$(HOST):$(PORT)"
	@echo "make test       install everything the tests need (Debian packages too, as root) and run them"
	@echo "make test-fast  the suite without the private Tor network tests"
	@echo "make bench      the benchmarks under bench/, printing their figures"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt $(VENV)/.installed
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# As root, install the Debian packages; otherwise say which are missing and go on
# (the tests that need them fail loudly under CI=true).
system-deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; for p in $(DEB_TEST_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  fi; \
	else \
	  for b in tor chromium mmdebstrap; do command -v $$b >/dev/null || echo "note: $$b not installed (run make test as root to install it)"; done; \
	fi

run: install
	$(BIN)/blog serve --bind $(HOST):$(PORT)

check: install
	$(BIN)/blog check

test: system-deps install-test
	$(PYTEST) $(PYTEST_ARGS)

test-fast: install-test
	$(PYTEST) -m "not tornet" $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check blog tests bench wsgi.py

$(VENV)/.installed-bench: pyproject.toml constraints.txt $(VENV)/.installed-test
	$(BIN)/pip install -q -c constraints.txt -e '.[test,bench]'
	touch $@

bench: system-deps $(VENV)/.installed-bench
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache
