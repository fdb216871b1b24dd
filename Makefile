# Targets match the README. Everything runs from the project's virtualenv (.venv).
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: install test lint sqllint pylint migrate demo bench soak drill clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## create .venv and install the package with its dev tools

lint: sqllint pylint ## every linter

sqllint: install ## sqlfluff (lint only, never format) and pgspot on the SQL
	$(BIN)/sqlfluff lint sql/ migrations/ --processes 2
	$(BIN)/pgspot -a sql/*.sql
	$(BIN)/pgspot migrations/*.sql

pylint: install ## ruff and mypy --strict on the Python
	$(BIN)/ruff check python_client tests
	$(BIN)/ruff format --check python_client tests
	$(BIN)/mypy

test: lint ## the whole suite: linters, pgTAP and pytest in one run
	$(BIN)/pytest

demo: install ## trade against a throwaway server and verify every portfolio
	$(BIN)/pgportfolio demo

bench: install ## measure every scenario against its bounds (see docs/performance.md)
	$(BIN)/pgportfolio bench --json bench.json --soak-fills 500000

soak: install ## the full proof suite: 100k-operation chaos, 1M-operation memory, long model runs
	PGPORTFOLIO_SOAK=1 $(BIN)/pytest tests/proof -p no:cacheprovider

drill: install ## failover drill: 100 traders, the primary killed twice, >= 50,000 acknowledged (needs postgresql-15-auto-failover)
	$(BIN)/pgportfolio drill failover --failovers 2 --min-acknowledged 50000 --stall 1 --json drill.json

migrate: install ## apply migrations to the database named by DSN (or PG* variables)
	$(BIN)/pgportfolio migrate --dsn "$(DSN)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
