# The README's commands. Each target installs what it needs into .venv first
# (torch pinned and installed first: an unpinned torch pulls CUDA builds).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TORCH := torch==2.13.0
EXTRAS := dev,book,course,diffusers

.PHONY: test book serve lab assignments bench checks clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

## make test: every test (library, theory checks, notebooks, book, browser, assignments)
test: $(STAMP)
	$(PY) -m pytest

## make checks: the theory-check table in full mode
checks: $(STAMP)
	$(PY) -m theory_checks

## make bench: the benchmarks, each printing its measured ratios
bench: $(STAMP)
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f; done

clean:
	rm -rf _build notebooks/*.ipynb .pytest_cache
