# lrkit: two commands on a fresh clone (only Python 3 and make needed).
#   make lab    set up .venv and open the course in JupyterLab
#   make test   set up .venv and run every test, the notebooks included
#   make html   execute the whole course headlessly and render it to build/html/
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

# Writes build/html/index.html, a list of the rendered notebooks.
define HTML_INDEX
import pathlib
out = pathlib.Path("build/html")
items = "".join(f'<li><a href="{f.name}">{f.stem}</a></li>' for f in sorted(out.glob("[0-9]*.html")))
(out / "index.html").write_text(f"<h1>lrkit: the course</h1><ol>{items}</ol>")
endef
export HTML_INDEX

.PHONY: help venv lab test test-fast lint notebooks-clean html bench clean

help:
	@echo "make lab     - set up .venv and open the course in JupyterLab"
	@echo "make test    - set up .venv and run all tests (library, notebooks, lint)"
	@echo "make html    - execute every notebook and render HTML into build/html/"
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

# --allow-root only where it is needed (containers often run as root)
lab: venv
	$(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Everything CI runs: unit tests, every notebook (lessons and solutions) executed by nbval, lint.
test: venv
	$(VENV)/bin/ruff check lrkit tests benchmarks notebooks
	$(VENV)/bin/ruff format --check lrkit tests benchmarks notebooks
	CI=$${CI:-1} $(PY) -m pytest tests lrkit notebooks --doctest-modules --nbval-lax --nbval-current-env -p no:cacheprovider

# Library tests only, for a quick loop while coding.
test-fast: venv
	$(PY) -m pytest tests -x -q

lint: venv
	$(VENV)/bin/ruff check lrkit tests benchmarks notebooks
	$(VENV)/bin/ruff format --check lrkit tests benchmarks

# Strip outputs and execution counts so notebooks are stored clean.
notebooks-clean: venv
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace $(NOTEBOOKS) $(SOLUTIONS)

html: venv
	mkdir -p build/html
	$(VENV)/bin/jupyter nbconvert --to html --execute --output-dir build/html \
		--ExecutePreprocessor.timeout=600 $(NOTEBOOKS)
	$(PY) -c "$$HTML_INDEX"
	@echo "open build/html/index.html"

# The machine is printed once; each script then prints its own tables (--no-machine).
bench: venv
	$(PY) benchmarks/_timing.py
	for f in benchmarks/bench_*.py; do $(PY) $$f --no-machine || exit 1; done

clean:
	rm -rf $(VENV) build
