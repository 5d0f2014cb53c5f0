# Bastion developer commands. `make help` lists them.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask
PORT ?= 8000
FUZZ_MAX_EXAMPLES ?= 100
FUZZ_SEED ?= 1
export FLASK_APP := bastion

.DEFAULT_GOAL := help

SQUAWK := .ci/squawk/node_modules/.bin/squawk

.PHONY: help install run test test-compat fuzz lint lint-migrations migration fmt migrate clean
.PHONY: bench bench-tools bench-flood

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	# Put src/ on the venv's import path so flask, gunicorn and pytest find bastion.
	echo "$(CURDIR)/src" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/bastion.pth"
	touch $@

install: $(VENV)/.installed ## Create .venv and install requirements.txt.

# squawk comes from the npm registry at the version .ci/squawk/package.json
# pins, into the git-ignored .ci/squawk/node_modules/.
.ci/squawk/node_modules/.installed: .ci/squawk/package.json .ci/squawk/package-lock.json
	npm install --prefix .ci/squawk --no-audit --no-fund --loglevel=error
	touch $@

var/dev.env: install
	$(PY) -m bastion.devenv --env-file var/dev.env

migrate: var/dev.env ## Apply pending migrations to the development database.
	source var/dev.env && $(FLASK) db create-roles && $(FLASK) db upgrade

run: install ## Serve the API on 127.0.0.1:PORT (default 8000) with a local database.
	$(PY) -m bastion.devenv --env-file var/dev.env --shared-limits
	source var/dev.env && $(FLASK) db create-roles && $(FLASK) db upgrade \
		&& $(FLASK) keys rotate --if-missing \
		&& exec $(VENV)/bin/gunicorn -c gunicorn.conf.py --bind 127.0.0.1:$(PORT) wsgi:app

test: install ## Run the test suite against a fresh test database.
	-@$(MAKE) --no-print-directory bench-tools
	$(PY) -m bastion.devenv --env-file var/test.env
	source var/test.env && $(VENV)/bin/pytest $(PYTEST_ARGS)

test-compat: install ## Run the previous release's end-to-end test on the current schema.
	$(PY) -m bastion.devenv --env-file var/test.env
	source var/test.env && $(PY) -m bastion.compat

# root installs with apt-get directly; anyone else goes through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BENCH_ARGS ?=

bench-tools: ## Install wrk and pgbouncer from Debian when missing.
	@command -v wrk >/dev/null 2>&1 && command -v pgbouncer >/dev/null 2>&1 \
		|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk pgbouncer >/dev/null; }

bench: install bench-tools ## Benchmark the whole stack against baselines; BENCH_ARGS=--help lists options.
	$(PY) -m bench $(BENCH_ARGS)

bench-flood: install ## Time reads through nginx with and without a login flood (~2 min).
	$(PY) -m bastion.devenv --env-file var/bench.env
	source var/bench.env && $(PY) bench/login_flood.py $(BENCH_ARGS)

fuzz: install ## Fuzz a live server against its OpenAPI document, longer than make test.
	$(PY) -m bastion.devenv --env-file var/test.env
	source var/test.env && FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) \
		$(VENV)/bin/pytest -s tests/test_fuzz.py $(PYTEST_ARGS)

lint: install lint-migrations ## Check style, types and the migration files.
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

lint-migrations: install .ci/squawk/node_modules/.installed ## Check migrations/ with the house rules and squawk.
	$(PY) -m bastion.migration_files check --squawk $(SQUAWK)

migration: install ## Scaffold a migration: NAME=add-x [NUMBER=n] [INDEX=name ON='table (cols)'].
	@test -n "$(NAME)" || { echo "usage: make migration NAME=lower-case-words"; exit 2; }
	$(PY) -m bastion.migration_files new "$(NAME)" $(if $(NUMBER),--number "$(NUMBER)") \
		$(if $(INDEX),--index "$(INDEX)" --on "$(ON)")

fmt: install ## Format the code.
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

clean: ## Remove the virtualenv, node_modules and local state under var/.
	rm -rf $(VENV) .ci/squawk/node_modules var
