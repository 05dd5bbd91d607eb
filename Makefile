# xborder-gateway task runner. Every target sets up what it needs (scripts/bootstrap.sh is idempotent).
.PHONY: demo test test-unit lint bench kafka-up kafka-down install clean

XB := .venv/bin/xborder

install:
	@scripts/bootstrap.sh

demo: install          ## the full exchange both ways on two linked local sites (brokers + MirrorMaker 2) started here
	@$(XB) demo

test: install          ## the whole suite on a real Kafka broker (and PostgreSQL) started here
	@scripts/test.sh --durations=30

test-unit: install     ## only the fast tests that need no external service
	@.venv/bin/pytest -m "not integration"

lint: install          ## ruff on everything, mypy --strict on src/
	@.venv/bin/ruff check src tests bench
	@.venv/bin/mypy

bench: install         ## every benchmark in bench/ (starts the local broker if needed)
	@$(XB) kafka start >/dev/null
	@set -e; for b in bench/bench_*.py; do echo "== $$b"; .venv/bin/python $$b; done

kafka-up: install      ## start the local broker (under ~/.xborder or $$XBG_HOME)
	@$(XB) kafka start

kafka-down: install
	@$(XB) kafka stop

clean:
	rm -rf .xborder-test .pytest_cache .mypy_cache .ruff_cache
