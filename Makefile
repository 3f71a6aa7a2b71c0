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
# Audit entries of calls that fail while the database cannot take them wait here (README).
export SINERGI_AUDIT_SPOOL ?= ./sinergi-audit.spool

.PHONY: run test lint fuzz install migrate demo bench soak faults clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# The client is a distribution of its own (clients/pyproject.toml), installed beside the service.
$(VENV)/.installed: pyproject.toml clients/pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet -e clients/
	touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/sinergi db upgrade

demo: migrate
	$(BIN)/sinergi demo --output demo-credentials.json

## Serve on http://$(HOST):$(PORT) with demo data (SQLite file ./sinergi.db). The address is
## checked first: while one is serving, a second `make run` stops before touching anything.
run: install
	$(BIN)/sinergi serve --check --host $(HOST) --port $(PORT)
	$(BIN)/sinergi db upgrade
	$(BIN)/sinergi demo --output demo-credentials.json
	$(BIN)/sinergi serve --host $(HOST) --port $(PORT)

## ruff, mypy, then the whole suite on SQLite and on PostgreSQL (127.0.0.1:5432, database `test`).
test: lint
	$(BIN)/pytest -n 4 --dist loadfile

## The linters the suite starts with: ruff (pyflakes, bugbear, import order) and mypy.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

## Schema fuzzing at length (the suite runs a few derandomised examples per operation):
## FUZZ_EXAMPLES per operation, seeded at random; FUZZ_SEED=n replays a run.
FUZZ_EXAMPLES ?= 300
fuzz: install
	SINERGI_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(if $(FUZZ_SEED),SINERGI_FUZZ_SEED=$(FUZZ_SEED)) $(BIN)/pytest -p no:cacheprovider tests/test_fuzz.py

bench: install
	$(BIN)/python -m bench

## The mixed workload on 2 server processes and one PostgreSQL (SINERGI_BENCH_POSTGRES, default
## the local `test` server; a scratch database is made and dropped), then the consistency checks.
SOAK_SECONDS ?= 60
soak: install
	$(BIN)/python -m bench.soak --seconds $(SOAK_SECONDS)

## The same workload through a TCP proxy that refuses, blackholes, freezes and cuts COMMIT
## replies, and with kill -9 of a server mid-batch; the checks after each (bench/README.md).
FAULTS_PHASES ?= refuse,blackhole,freeze,cut,kill
faults: install
	$(BIN)/python -m bench.faults --phases $(FAULTS_PHASES)

clean:
	rm -rf $(VENV) sinergi.db sinergi.db-* sinergi-audit.spool* demo-credentials.json
