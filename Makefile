# nia-eye-validation: every target runs on Debian's python3 + a venv (.venv)
# that adds pyarrow and this package. `make help` lists the targets.
SHELL := /bin/bash
SYSTEM_PYTHON ?= /usr/bin/python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYARROW_VERSION ?= 17.0.0
BUILD ?= build

.PHONY: help deps venv test bench clean

help:  ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

deps:  ## install the Debian packages (torch 1.13.1, OpenCV 4.6.0, ...) if missing
	@scripts/install-system-deps.sh

$(VENV)/.installed: pyproject.toml scripts/install-system-deps.sh
	@scripts/install-system-deps.sh
	$(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check pyarrow==$(PYARROW_VERSION)
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
	@touch $@

venv: $(VENV)/.installed  ## make .venv (system site packages + pyarrow + this package)

test: venv  ## run the test suite (CPU only)
	$(PY) -m pytest -q

bench: venv  ## run the benchmarks under bench/ and print their ratios
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:  ## remove build outputs (keeps .venv)
	rm -rf $(BUILD)
