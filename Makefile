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

.PHONY: test book serve lab assignments browser bench checks clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

## make test: every test (library, theory checks, notebooks, book, browser, assignments), on two
## pytest-xdist workers (pyproject.toml); the book is built in fast mode into _build/test-book
test: $(STAMP) browser
	$(PY) -m pytest

## make book: build the Jupyter Book with the full-size runs (FAST=1: the quick fast-mode runs)
## through jupyter-cache (only a changed chapter re-executes), and print the path of index.html
book: $(STAMP)
	$(PY) scripts/build_book.py $(if $(filter 1 yes true,$(FAST)),--fast,)

## make serve: serve the built book on http://127.0.0.1:$(PORT)
PORT ?= 8000
serve: book
	$(PY) -m http.server --bind 127.0.0.1 --directory _build/html $(PORT)

## make lab: JupyterLab on notebooks/: the .md files open as notebooks (jupytext) and their
## markdown renders as MyST (jupyterlab-myst)
lab: $(STAMP)
	$(PY) scripts/start_lab.py

## make assignments: nbgrader student versions in _build/assignments/release/
assignments: $(STAMP)
	$(PY) scripts/make_assignments.py

## make browser: Debian's Chromium for the browser test (skipped when already installed)
browser:
	@test -x /usr/bin/chromium || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

## make checks: the theory-check table in full mode
checks: $(STAMP)
	$(PY) -m theory_checks

## make bench: the benchmarks, each printing its measured ratios
bench: $(STAMP)
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f; done

clean:
	rm -rf _build notebooks/*.ipynb .pytest_cache
