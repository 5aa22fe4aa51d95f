# The README's commands.  `make demo` and `make test` do all set-up on a fresh Debian
# machine (Python 3.11, root): a virtualenv in .venv, system packages the tests need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install sysdeps test test-quick demo bench reliability lint format clean screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,export]'
	touch $(STAMP)

install: $(STAMP)

sysdeps:
	scripts/install-test-deps.sh

test: install sysdeps
	PATH="$(CURDIR)/$(VENV)/node/node_modules/.bin:$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

test-quick: install
	$(BIN)/python -m pytest -m "not hub and not slapd" $(PYTEST_ARGS)

demo: install
	$(BIN)/wod demo

bench: install sysdeps
	$(BIN)/python bench/run.py

# Bursts, kill -9, peers down, full disk, memory (root; ~30 min); figures in docs/reliability.md.
reliability: install sysdeps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(BIN)/python bench/reliability.py $(RELIABILITY_ARGS)

lint: install
	$(BIN)/ruff check wod tests bench
	$(BIN)/ruff format --check wod tests bench

format: install
	$(BIN)/ruff format wod tests bench
	$(BIN)/ruff check --fix wod tests bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# The dashboard screenshots of the README (docs/img/*.png), taken by the browser tests.
screenshots: install sysdeps
	WOD_SCREENSHOTS=docs/img PATH="$(CURDIR)/$(VENV)/node/node_modules/.bin:$$PATH" \
		$(BIN)/python -m pytest tests/test_dashboard_browser.py -q
