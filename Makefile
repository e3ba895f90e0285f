# Build/test frame of arcano_tools. Every target bootstraps first (idempotent, ~0.3 s).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ENV := . scripts/env.sh &&
ARGS ?=

.PHONY: help bootstrap bootstrap-test run test lint fmt typecheck bench matrix clean

help:
	@echo "make run [ARGS='--env prod']  start the app (dev: frontend :3000, backend :8000)"
	@echo "make test                     lint + format check + vulture + mypy + the whole pytest suite"
	@echo "make lint | fmt | typecheck   ruff check + vulture / ruff format+fix / mypy"
	@echo "make bench [ARGS='--quick']    issue 9's benchmark (wrk, PostgreSQL; < 10 min): BENCHMARKS.md"
	@echo "make matrix [ARGS='--jobs 20'] fault matrix at 200 jobs a scenario (its table) + 1,000 races"

bootstrap:
	@scripts/bootstrap.sh

bootstrap-test:
	@scripts/bootstrap.sh --test

run: bootstrap
	$(ENV) reflex run $(ARGS)

lint: bootstrap
	$(ENV) ruff check .
	$(ENV) ruff format --check .
	$(ENV) vulture

fmt: bootstrap
	$(ENV) ruff check --fix .
	$(ENV) ruff format .

typecheck: bootstrap
	$(ENV) mypy arcano_tools

test: bootstrap-test
	$(ENV) ruff check .
	$(ENV) ruff format --check .
	$(ENV) vulture
	$(ENV) mypy arcano_tools
	$(ENV) pytest $(ARGS)

bench:
	@scripts/bootstrap.sh --bench
	$(ENV) python -m bench $(ARGS)

matrix: bootstrap-test
	$(ENV) status=0; python -m tests.support.matrix --jobs 200 $(ARGS) || status=$$?; \
		ARCANO_RACES=1000 pytest tests/integration/test_job_life_postgres.py -q -p no:cacheprovider \
			-k randomized_races || status=$$?; \
		exit $$status

clean:
	rm -rf .web .states .pytest_cache .mypy_cache .ruff_cache
