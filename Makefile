# Two commands on a fresh machine:  make run   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run run-lan demo test lint format clean

# (Re)install when pyproject.toml changes; editable, so code changes need nothing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tongke serve

# One school's LAN over HTTPS: every interface (IPv6 and IPv4), a local CA classroom PCs
# trust once at /ca/ (docs/operations.md "One school's LAN").
run-lan: $(STAMP)
	$(BIN)/tongke serve --host :: --https

# Synthetic lead and receivers on port 8010 with ./data-demo: runs beside `make run`.
demo: $(STAMP)
	$(BIN)/tongke demo

test: $(STAMP)
	bash scripts/ensure-system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
