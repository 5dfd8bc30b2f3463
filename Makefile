# qgs: the two commands are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-slow lint bench reliability clean

# Idempotent set-up: (re)install only when pyproject.toml changed.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,plot,monitor,broker]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/qgs demo

test: setup
	$(PY) -m pytest -m "not slow and not hardware" -q

test-slow: setup
	$(PY) -m pytest -m "slow" -q

lint: setup
	$(VENV)/bin/ruff check drivers station sim_hardware tests bench reliability
	$(VENV)/bin/ruff format --check drivers station sim_hardware tests bench reliability
	$(VENV)/bin/mypy drivers station sim_hardware bench reliability

bench: setup
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PY) -m bench

# Fault matrix, kill -9 trials, fuzzing, security counts, bridged outage -> docs/reliability.md
# (real processes, ~30 min; a fast subset runs in `make test`). `--quick` for a smoke run.
reliability: setup
	$(PY) -m reliability

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
