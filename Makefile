# Zhumeng: the two commands a newcomer needs, and the test tiers.
.PHONY: setup run run-fresh test test-unit test-integration test-e2e test-fault test-contract lint bench

setup:
	@bash scripts/setup.sh

## run: set up, then start Kafka, the document server, a mail sink and the four services with demo data
run: setup
	uv run --frozen python -m zhumeng_devstack up

run-fresh: setup
	uv run --frozen python -m zhumeng_devstack up --fresh

## test: set up, then run every test tier (the stack is started by the tests themselves)
test: setup
	uv run --frozen pytest

test-unit: setup
	uv run --frozen pytest -m "unit or contract"

test-integration: setup
	uv run --frozen pytest -m integration

test-e2e: setup
	uv run --frozen pytest -m e2e

test-fault: setup
	uv run --frozen pytest -m fault

test-contract: setup
	uv run --frozen pytest -m contract

lint: setup
	uv run --frozen ruff check .
	uv run --frozen ruff format --check .
	uv run --frozen mypy packages/*/src services/*/src tools/*/src

bench: setup
	uv run --frozen python bench/flow_bench.py
