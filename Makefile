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

.PHONY: install demo test test-fast lab notebooks sync-notebooks clean-venv

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
	$(PY) -m pytest -q -m "not slow and not e2e and not notebooks"

# the browser tier: the explorer notebook run in JupyterLab in headless Chromium (Debian's: apt-get install -y
# chromium; Playwright drives it, no browser download); fails, instead of skipping, when chromium is missing
.PHONY: test-browser
test-browser: install
	$(PY) -m pip install --quiet -e '.[dev,lab,browser]'
	QMVOS_LAB_REQUIRE_BROWSER=1 $(PY) -m pytest -q -s tests/browser

lab: install
	$(PY) -m pip install --quiet -e '.[dev,lab]'
	$(VENV)/bin/jupyter lab notebooks/

# execute every notebook in full mode and render it to HTML (outputs/notebooks/), so a reader can
# browse the results without running them
notebooks: install
	@mkdir -p outputs/notebooks && rm -f outputs/notebooks/times.txt
	cd notebooks && for nb in [0-9][0-9]_*.ipynb; do start=$$(date +%s); \
		$(abspath $(PY)) -m jupyter nbconvert --execute --to html --output-dir ../outputs/notebooks \
			--ExecutePreprocessor.timeout=3600 "$$nb" || exit 1; \
		echo "$$nb: $$(( $$(date +%s) - start )) s in full mode" | tee -a ../outputs/notebooks/times.txt; done

# after editing a notebook's .py source (or the .ipynb in JupyterLab): update its pair, outputs stripped
sync-notebooks: install
	$(VENV)/bin/jupytext --sync notebooks/[0-9][0-9]_*.py
	$(PY) -m jupyter nbconvert --clear-output --inplace notebooks/[0-9][0-9]_*.ipynb

clean-venv:
	rm -rf $(VENV)
