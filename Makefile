# segsync developer entry points. `make demo` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: setup demo test test-sqlite test-postgres lint reliability bench clean

$(BIN)/segsync: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	@touch $@

setup: $(BIN)/segsync  ## create .venv with segsync and the test tools

demo: setup  ## run the whole flow against the built-in CRM sandbox (SQLite store under ./segsync-demo)
	$(BIN)/segsync demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-sqlite: setup
	SEGSYNC_TEST_DB=sqlite $(BIN)/pytest -q -m "not slow" $(PYTEST_ARGS)

test-postgres: setup
	SEGSYNC_TEST_DB=$(PG_URL) $(BIN)/pytest -q -m "not slow" $(PYTEST_ARGS)

# The two databases run side by side: most of the suite waits on sockets, subprocesses and the sandbox's
# modelled latency, so two runs share two cores well; --output-sync keeps each run's report in one piece.
test: lint  ## lint, then the suite on SQLite and on PostgreSQL (at the same time)
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

reliability: setup  ## the full reliability suite (long)
	SEGSYNC_RELIABILITY=full $(BIN)/pytest -q tests/reliability $(PYTEST_ARGS)

bench: setup
	$(BIN)/pip install --quiet -e '.[dev,postgres,bench]'
	@echo "run a benchmark: $(BIN)/python bench/<name>.py --help"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
