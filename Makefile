# Developer shortcuts; CI runs .ci/run.
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install test lint format bench demo

install:
	python3 -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'

test:
	$(BIN)/pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench:
	$(BIN)/python -m bench

demo:
	$(BIN)/crm demo
