# sbserver: the same commands locally and in CI.  `make help` lists them.
VENV      ?= .venv
PY        := $(VENV)/bin/python
PYCLIENT  := .venv-pyclient
PYTEST_ARGS ?= -n 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install run test test-deps check lint fmt types bench screenshots clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml sbserver/runtime/leanctx.c
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install sbserver with its dev tools

run: install  ## start the server on the embedded SQLite store (dev app, port 8099)
	APP_ENV=dev $(VENV)/bin/backend server

$(PYCLIENT)/.installed:
	python3 -m venv $(PYCLIENT)
	$(PYCLIENT)/bin/pip install -q "staticbackend==0.1.1"
	touch $@

tests/compat/js/node_modules/.installed: tests/compat/js/package.json tests/compat/js/package-lock.json
	cd tests/compat/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

test-deps: install $(PYCLIENT)/.installed tests/compat/js/node_modules/.installed /usr/bin/chromium  ## install what the tests drive: JS and Python clients, Chromium

test: test-deps  ## run the whole test suite (PostgreSQL/Redis parts when SB_TEST_PG_URL/SB_TEST_REDIS_URL are set)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install  ## ruff lint and format check
	$(VENV)/bin/ruff check sbserver tests bench
	$(VENV)/bin/ruff format --check sbserver tests bench

fmt: install  ## format the code
	$(VENV)/bin/ruff format sbserver tests bench
	$(VENV)/bin/ruff check --fix sbserver tests bench

types: install  ## mypy on the package
	$(VENV)/bin/mypy sbserver

check: lint types test  ## everything CI checks

bench: install  ## the project's benchmarks; the peer comparison too when SB_SHARED_BENCH points at the harness (bench/README.md)
	$(PY) bench/run.py --own

screenshots: test-deps  ## retake README's admin UI screenshots (docs/img/) from the walk-through test
	$(VENV)/bin/pytest -q tests/web/test_ui_tutorial.py -k sqlite
	mkdir -p docs/img
	cp test-output/ui/tutorial-1-function-1280.png docs/img/admin-function.png
	cp test-output/ui/tutorial-2-history-1280.png docs/img/admin-history.png
	cp test-output/ui/tutorial-3-database-1280.png docs/img/admin-database.png

clean:  ## remove virtualenvs and caches
	rm -rf $(VENV) $(PYCLIENT) tests/compat/js/node_modules .pytest_cache .mypy_cache .ruff_cache
