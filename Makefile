# The README's commands. Each creates the virtual environment on first use
# (.venv, from requirements.txt) and reinstalls when requirements.txt or pyproject.toml change.
#   make book            execute the notebooks (papermill) and build the book into _build/html;
#                        needs nothing outside pip (no data set, no browser)
#   make test            run the whole test suite (unit, notebook smoke runs, book + browser);
#                        first `make system`: Debian's Fashion-MNIST and Chromium
#   make system          install what the tests need from outside pip, when missing: as root
#                        with apt-get, else stop with the command to run
#   make lab             JupyterLab on the notebooks, live widgets included (the explorer's
#                        train button, the theory chapters' sliders), on 127.0.0.1
#   make studies         train every published study at SCALE that is not stored yet
#                        (resumable; the book's experiments chapters read the results)
#   make readme          rewrite the README's computed blocks from results/ (after storing trials)
#   make launch REPO_URL=https://github.com/OWNER/NAME
#                        name the repository in every chapter's Colab setup cell (commit them);
#                        `make launch` alone shows the one named
# Options: make book SCALE=smoke|scaled|full   PYTHON=python3.11   VENV=.venv
#          make book REPO_URL=https://github.com/OWNER/NAME: Colab and Binder launch links on
#                        every chapter (the chapters' setup cells must name the same URL)

PYTHON ?= python3
VENV ?= .venv
SCALE ?= scaled
# the repository's public URL, for launch links (make book) and the setup cells (make launch)
REPO_URL ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# STUDIES: default, the published ones (smallbatch.analysis.PUBLISHED_STUDIES, their one list)
STUDIES ?=
WORKERS ?= 2

# What the tests need from Debian: (package, a file it installs).
FASHION_MNIST_FILE := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
CHROMIUM := /usr/bin/chromium

# make lab: the notebooks it opens; as root, JupyterLab needs --allow-root
NOTEBOOKS ?= notebooks
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: book test lab studies launch readme venv system clean

book: $(STAMP)
	$(PY) -m smallbatch_book --scale $(SCALE) $(if $(REPO_URL),--repo-url "$(REPO_URL)")

launch: $(STAMP)
	$(PY) -m smallbatch_book.launch $(if $(filter command line,$(origin REPO_URL)),"$(REPO_URL)",--show)

test: $(STAMP) system
	$(PY) -m pytest

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --notebook-dir=$(NOTEBOOKS) $(ALLOW_ROOT)

system:
	@missing=""; \
	[ -f $(FASHION_MNIST_FILE) ] || missing="$$missing dataset-fashion-mnist"; \
	[ -x $(CHROMIUM) ] || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make system: installing from Debian:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing \
	    || exit 1; \
	else \
	  echo "make test needs, from Debian:$$missing (the data tests and reproduction checks" \
	       "read Fashion-MNIST; the browser test drives Chromium). Install them with:" >&2; \
	  echo "  sudo apt-get install -y$$missing" >&2; \
	  echo "then run make test again." >&2; \
	  exit 1; \
	fi

studies: $(STAMP)
	for study in $(or $(STUDIES),$$($(PY) -c 'from smallbatch.analysis import PUBLISHED_STUDIES as s; print(*s)')); do \
	  $(VENV)/bin/smallbatch sweep $$study --scale $(SCALE) --executor processes \
	    --workers $(WORKERS) --threads 1 || exit 1; \
	done

readme: $(STAMP)
	$(PY) -m smallbatch_book.readme

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

clean:
	rm -rf _build
