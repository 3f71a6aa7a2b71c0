# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# The embedded default: a SQLite file in this folder.
export SINERGI_DATABASE_URL ?= sqlite+aiosqlite:///./sinergi.db
# On a workstation, the published development keys (the service says so at start-up). Without
# SINERGI_MODE the service runs in production mode and refuses to start without real keys.
export SINERGI_MODE ?= development

.PHONY: run test fuzz install migrate demo bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/sinergi db upgrade

demo: migrate
	$(BIN)/sinergi demo --output demo-credentials.json

## Serve on http://$(HOST):$(PORT) with demo data (SQLite file ./sinergi.db).
run: demo
	$(BIN)/sinergi serve --host $(HOST) --port $(PORT)

## The whole suite, on SQLite and on PostgreSQL (127.0.0.1:5432, database `test`).
test: install
	$(BIN)/pytest

## Schema fuzzing at length (the suite runs a few derandomised examples per operation):
## FUZZ_EXAMPLES per operation, seeded at random; FUZZ_SEED=n replays a run.
FUZZ_EXAMPLES ?= 300
fuzz: install
	SINERGI_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(if $(FUZZ_SEED),SINERGI_FUZZ_SEED=$(FUZZ_SEED)) $(BIN)/pytest -p no:cacheprovider tests/test_fuzz.py

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) sinergi.db sinergi.db-* demo-credentials.json
