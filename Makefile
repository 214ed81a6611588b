# OTC: the two commands that matter are `make start` and `make test` (see README.md).
.PHONY: help start test lint format

help:
	@echo "make start   install, migrate, seed the demo company and run web + worker + beat on http://127.0.0.1:8000/"
	@echo "make test    run the whole test suite on PostgreSQL and Redis (pytest arguments: make test ARGS='-k invoice')"
	@echo "make lint    ruff check and ruff format --check"
	@echo "make format  ruff format and ruff check --fix"

start:
	bash scripts/start.sh

test:
	bash scripts/test.sh $(ARGS)

lint:
	bash -c 'source scripts/_common.sh && ensure_venv dev && "$$VENV/bin/ruff" check . && "$$VENV/bin/ruff" format --check .'

format:
	bash -c 'source scripts/_common.sh && ensure_venv dev && "$$VENV/bin/ruff" format . && "$$VENV/bin/ruff" check --fix .'
