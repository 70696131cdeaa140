# QMVOS Lab: two commands for a fresh machine, `make demo` and `make test`.
# Both create the virtual environment $(VENV) when it is missing and install the kit into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Reinstall when the dependency spec changes (the stamp is named after its hash) ...
DEPS_HASH := $(shell cat pyproject.toml | sha256sum | cut -c1-16)
DEPS_STAMP := $(VENV)/.deps-$(DEPS_HASH)
# ... and point the editable install at this checkout (a cached venv may serve several clones).
SRC_STAMP := $(VENV)/.src-$(shell echo '$(CURDIR)' | sha256sum | cut -c1-16)-$(DEPS_HASH)

.PHONY: install demo test test-fast lab clean-venv

$(DEPS_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.deps-* $(VENV)/.src-*
	@touch $(DEPS_STAMP)

$(SRC_STAMP): $(DEPS_STAMP)
	$(PY) -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.src-*
	@touch $(SRC_STAMP)

install: $(SRC_STAMP)

demo: install
	$(VENV)/bin/qmvos-lab demo

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow and not e2e"

lab: install
	$(PY) -m pip install --quiet -e '.[dev,lab]'
	$(VENV)/bin/jupyter lab notebooks/

clean-venv:
	rm -rf $(VENV)
