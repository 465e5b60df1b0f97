# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BASE   := $(VENV)/.installed-base
STAMP  := $(VENV)/.installed

# The venv is rebuilt when the interpreter changes (another PYTHON, or an upgrade of it).
PYID := $(shell $(PYTHON) -c 'import sys; print(sys.version.split()[0], sys.executable)' 2>/dev/null)
ifneq ($(PYID),)
ifneq ($(PYID),$(shell cat $(VENV)/.python 2>/dev/null))
$(shell rm -rf $(VENV))
endif
endif

PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check

.PHONY: demo test test-full bench lint clean chromium

# kvmcheck alone: what `make demo` needs
$(BASE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	echo '$(PYID)' > $(VENV)/.python
	$(PIP) install -e .
	@$(BIN)/python -c 'from kvmcheck import _hotpath as h; print(h.describe())'
	touch $(BASE)

# kvmcheck with the test and lint tools
$(STAMP): $(BASE)
	KVMCHECK_NO_COMPILE=1 $(PIP) install -e '.[dev]'  # the base install compiled the hot path already
	touch $(STAMP)

## demo: check every bundled scenario x variant, then show Woodhouse's v6.8 oops and the finding
demo: $(BASE)
	$(BIN)/kvmcheck check --all
	@echo
	@echo "== the seed race in v6.8 on memory without struct page (exit status 1: a bug, as expected) =="
	$(BIN)/kvmcheck check pfncache.seed_race_iomem --variant v6.8 --no-db --html reports/pfncache-v6.8.html; test $$? -eq 1
	@echo "HTML report: reports/pfncache-v6.8.html"
	@echo
	@echo "== the use-after-free in every posted form of the seed patch (docs/findings/) =="
	$(BIN)/kvmcheck check pfncache.mmu_notifier --variant seed-final --no-db; test $$? -eq 1

## test: the fast tier, a few minutes (tests/README.md; the HTML report test needs Debian's chromium: installed here when root)
test: $(STAMP) chromium
	$(BIN)/python -m pytest

## test-full: both tiers -- adds the bundled seed verdicts, reliability corpora, Ray and slow tests (what CI runs)
test-full: $(STAMP) chromium
	$(BIN)/python -m pytest --full

## chromium: Debian's chromium for the HTML report test; installed only as root, when missing
chromium:
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the HTML report test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
	      || echo "could not install chromium: the HTML report test will be skipped"; \
	  else \
	    echo "chromium is not installed (apt-get install chromium): the HTML report test will be skipped"; \
	  fi; \
	fi

## bench: throughput of the checker (executions/s, steps/s), then side by side with frontrun
bench: $(STAMP)
	$(PIP) install -e '.[bench]'
	@$(BIN)/python -c 'from kvmcheck import _hotpath as h; print(h.describe())'
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_lock_family.py
	$(BIN)/python bench/bench_peers.py
	$(BIN)/python bench/bench_models.py

## lint: ruff (lint + format check) and mypy --strict on src/
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) reports build *.egg-info src/*.egg-info .kvmcheck
	find src -name '*.so' -delete  # the compiled hot path (setup.py)
