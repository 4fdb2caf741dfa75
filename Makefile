# Missive — the two commands: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENDOR := app/static/vendor

.PHONY: run test install install-dev system-deps vendor translations lint format extract-messages clean

run: install
	MISSIVE_ENV=$${MISSIVE_ENV:-development} $(BIN)/missive db upgrade
	MISSIVE_ENV=$${MISSIVE_ENV:-development} $(BIN)/missive demo load
	MISSIVE_ENV=$${MISSIVE_ENV:-development} scripts/run.sh

test: install-dev system-deps
	scripts/test.sh

install: $(VENV)/.runtime translations vendor
install-dev: install $(VENV)/.dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.runtime
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

system-deps:
	scripts/system-deps.sh

vendor: $(VENDOR)/.stamp

$(VENDOR)/.stamp: frontend/package.json frontend/package-lock.json scripts/vendor.sh $(wildcard frontend/src/*)
	scripts/vendor.sh
	touch $@

translations: $(VENV)/.runtime
	$(BIN)/pybabel -q compile --use-fuzzy -d app/translations

extract-messages: $(VENV)/.runtime
	$(BIN)/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext -o app/translations/messages.pot .
	$(BIN)/pybabel -q update -i app/translations/messages.pot -d app/translations

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(VENDOR) frontend/node_modules .pytest_cache
