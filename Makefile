# lrkit: two commands on a fresh clone (only Python 3 and make needed).
#   make lab    set up .venv and open the course in JupyterLab
#   make test   set up .venv and run every test, the notebooks included
#   make html   render the course as a website in build/html/ (its front page: the course page)
#   make browser-check   lesson 01's slider, run and dragged in JupyterLab in headless Chromium
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch release installed first. On a machine with a local CPU wheel of it, pip takes
# that file; elsewhere PyPI's wheel. Override for a CUDA build, e.g.
#   make venv TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Worked solutions, one notebook per lesson; `make test` executes them with the lessons
# (pytest is given the whole notebooks/ folder).
SOLUTIONS := $(sort $(wildcard notebooks/solutions/[0-9][0-9]_*.ipynb))

# `make html HTML_FULL=1` executes the notebooks at full size (default: smoke mode, seconds each).
HTML_FULL ?=

.PHONY: help venv site-venv lab test test-fast lint notebooks-clean html browser-check bench clean

help:
	@echo "make lab     - set up .venv and open the course in JupyterLab"
	@echo "make test    - set up .venv and run all tests (library, notebooks, lint)"
	@echo "make html    - render the course as a website into build/html/ (open index.html)"
	@echo "make browser-check - run lesson 01 in JupyterLab in headless Chromium, drag its slider"
	@echo "make bench   - run the benchmarks in benchmarks/"
	@echo "make clean   - remove .venv and build/"

# The venv is (re)built when pyproject.toml changes; a marker file records success.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC) || $(PY) -m pip install --quiet torch
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

# The website's tools and playwright (the `site` extra), on top of the dev environment.
$(VENV)/.site-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[dev,site]"
	touch $@

site-venv: $(VENV)/.site-installed

# --allow-root only where it is needed (containers often run as root)
lab: venv
	$(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Everything CI runs: unit tests, every notebook (lessons and solutions) executed by nbval, lint.
test: venv
	$(VENV)/bin/ruff check lrkit tests benchmarks notebooks docs
	$(VENV)/bin/ruff format --check lrkit tests benchmarks notebooks docs
	CI=$${CI:-1} $(PY) -m pytest tests lrkit notebooks --doctest-modules --nbval-lax --nbval-current-env -p no:cacheprovider

# Library tests only, for a quick loop while coding.
test-fast: venv
	$(PY) -m pytest tests -x -q

lint: venv
	$(VENV)/bin/ruff check lrkit tests benchmarks notebooks docs
	$(VENV)/bin/ruff format --check lrkit tests benchmarks docs

# Strip outputs and execution counts so notebooks are stored clean.
notebooks-clean: venv
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace $(NOTEBOOKS) $(SOLUTIONS)

# Executes every lesson and solution (smoke mode unless HTML_FULL=1; a notebook is run again
# only when it or lrkit changed) into build/site-src/, then mkdocs renders the site; the
# course page notebooks/README.md is its front page. Offline: MathJax is served from the site.
html: site-venv
	$(PY) docs/prepare_site.py $(if $(HTML_FULL),--full)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "open build/html/index.html"

# Needs Chromium (Debian: apt-get install chromium; elsewhere set CHROMIUM=/path/to/chrome).
# Screenshots and the JupyterLab log go to build/browser/.
browser-check: site-venv
	LRKIT_BROWSER_CHECK=1 $(PY) -m pytest tests/browser -p no:cacheprovider -q -rA

# The machine is printed once; each script then prints its own tables (--no-machine).
bench: venv
	$(PY) benchmarks/_timing.py
	for f in benchmarks/bench_*.py; do $(PY) $$f --no-machine || exit 1; done

clean:
	rm -rf $(VENV) build
