# The two commands of the README. Each creates the virtual environment on first use
# (.venv, from requirements.txt) and reinstalls when requirements.txt or pyproject.toml change.
#   make book            execute the notebooks (papermill) and build the book into _build/html
#   make test            run the whole test suite (unit, notebook smoke runs, book + browser)
#   make studies         train every published study at SCALE that is not stored yet
#                        (resumable; the book's experiments chapters read the results)
# Options: make book SCALE=smoke|scaled|full   PYTHON=python3.11   VENV=.venv

PYTHON ?= python3
VENV ?= .venv
SCALE ?= scaled
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

STUDIES ?= resnet-bn resnet-nobn warmup ghost-bn alexnet-bn alexnet-convbn alexnet-nobn cifar-augment
WORKERS ?= 2

.PHONY: book test studies venv clean

book: $(STAMP)
	$(PY) -m smallbatch.book --scale $(SCALE)

test: $(STAMP)
	$(PY) -m pytest

studies: $(STAMP)
	for study in $(STUDIES); do \
	  $(VENV)/bin/smallbatch sweep $$study --scale $(SCALE) --executor processes \
	    --workers $(WORKERS) --threads 1 || exit 1; \
	done

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

clean:
	rm -rf _build
