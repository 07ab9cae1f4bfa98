# hue-reports: the two commands a newcomer needs are `make run` and `make test`.
# Both install what is missing (Debian packages as root, a virtual environment
# from requirements.txt), then hand over to hue_reports/devstack.py, which runs
# a project-local PostgreSQL+PostGIS and Redis under ./var unless DATABASE_URL /
# REDIS_URL point elsewhere.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

# Debian packages the embedded stack needs. PostgreSQL 15's server package
# carries the contrib extensions (unaccent); PostGIS is a separate package.
DEBIAN_PACKAGES := postgresql-15 postgresql-15-postgis-3 redis-server
# The browser tests of the public pages (tests/test_pages.py) drive Debian's Chromium with Playwright;
# only `make test` needs it.
TEST_DEBIAN_PACKAGES := chromium

.PHONY: help run test bench system-deps venv stop clean-var

help:
	@echo "make run    the whole system with Huế demo data on http://127.0.0.1:5000"
	@echo "make test   the test suite against real PostgreSQL+PostGIS and Redis"
	@echo "make bench  the benchmarks (bench/), printing figures"
	@echo "make stop   stop the project-local PostgreSQL and Redis under ./var"

run: system-deps venv
	$(VPY) -m hue_reports.devstack run

# Extra pytest arguments: make test PYTEST_ARGS="-k seed -x"
test: DEBIAN_PACKAGES += $(TEST_DEBIAN_PACKAGES)
test: system-deps venv
	$(VPY) -m hue_reports.devstack test $(PYTEST_ARGS)

# Benchmarks print figures; they are never run as tests.
BENCH_STAMP := $(VENV)/.bench-requirements-installed

$(BENCH_STAMP): bench/requirements.txt $(STAMP)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: system-deps venv $(BENCH_STAMP)
	$(VPY) bench/derivatives.py
	$(VPY) bench/intake.py $(BENCH_ARGS)
	$(VPY) bench/routing.py
	$(VPY) bench/public.py

stop: venv
	$(VPY) -m hue_reports.devstack stop

system-deps:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$(PYTHON)" ]; then missing="$$missing python3 python3-venv"; \
	elif ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "Missing Debian packages:$$missing. Run as root, or: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	  echo "Installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

venv: $(STAMP)

$(STAMP): requirements.txt
	@py="$(PYTHON)"; [ -n "$$py" ] || py=python3; \
	"$$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "hue-reports needs Python 3.11; found $$("$$py" --version)" >&2; exit 1; }; \
	[ -x $(VPY) ] || "$$py" -m venv $(VENV) || exit 1; \
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements.txt || exit 1; \
	touch $(STAMP)

clean-var: stop
	rm -rf var
