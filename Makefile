PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test check bench clean

$(BIN)/charter-installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(BIN)/charter-dev-installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/charter-installed $@

run: $(BIN)/charter-installed
	$(BIN)/charter serve examples/shop/app.py:app --host $(HOST) --port $(PORT)

check: $(BIN)/charter-dev-installed
	$(BIN)/ruff check charter tests examples bench
	$(BIN)/ruff format --check charter tests examples bench
	$(BIN)/mypy

test: check
	$(BIN)/pytest -q

bench: $(BIN)/charter-dev-installed
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/auth.py
	$(BIN)/python bench/realtime.py
	$(BIN)/python bench/signup.py
	$(BIN)/python bench/caching.py
	$(BIN)/python bench/channel.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
