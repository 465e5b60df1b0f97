# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: check every bundled scenario x variant, then show the v6.8 pfncache race
demo: $(STAMP)
	$(BIN)/kvmcheck check --all
	@echo
	@echo "== the seed race in v6.8 (exit status 1: a bug, as expected) =="
	$(BIN)/kvmcheck check pfncache.seed_race --variant v6.8 --html reports/pfncache-v6.8.html; test $$? -eq 1
	@echo "HTML report: reports/pfncache-v6.8.html"

## test: the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

## bench: throughput of the checker (executions/s, steps/s), then side by side with frontrun
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/bench_lock_family.py
	$(BIN)/python bench/bench_peers.py
	$(BIN)/python bench/bench_models.py

## lint: ruff (lint + format check) and mypy --strict on src/
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) reports build *.egg-info src/*.egg-info
