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

# Seven internal SQL functions have no SET search_path on purpose: the planner inlines them
# into their callers only without it (see 020_schema.sql, 034_events.sql, 100_validation.sql
# and 110_access.sql); every name in them is schema-qualified instead.
PGSPOT_INLINED := \
	--proc-without-search-path 'pgportfolio._acting_role()' \
	--proc-without-search-path 'pgportfolio._refused_characters()' \
	--proc-without-search-path 'pgportfolio._symbol_valid(p_symbol text)' \
	--proc-without-search-path 'pgportfolio._execution_valid(p_executed_at timestamptz,p_order_id text,p_latest timestamptz)' \
	--proc-without-search-path 'pgportfolio._invalid_tags(p_tags jsonb[],item bigint)' \
	--proc-without-search-path 'pgportfolio._event_hash(p_previous bytea,p_portfolio_id bigint,p_portfolio_version bigint,p_kind text,p_operation text,p_symbol text,p_quantity numeric,p_price numeric,p_fee numeric,p_amount numeric,p_cash_delta numeric,p_realized_pnl numeric,p_cash_balance numeric,p_position_quantity numeric,p_position_cost_basis numeric,p_request_id text,p_executed_at timestamptz,p_order_id text,p_tags jsonb,p_multiplier numeric,p_acting_role name,p_created_at timestamptz)' \
	--proc-without-search-path 'pgportfolio._authorization_refusals(p_portfolio_ids bigint[],p_actor name,portfolio_id bigint,sqlstate text,message text,hint text)'

sqllint: install ## sqlfluff (lint only, never format) and pgspot on the SQL
	$(BIN)/sqlfluff lint sql/ migrations/ --processes 2
	$(BIN)/pgspot -a $(PGSPOT_INLINED) sql/*.sql
	$(BIN)/pgspot $(PGSPOT_INLINED) migrations/*.sql

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
