# The README's two commands are `make demo` and `make test`; each creates .venv and installs into it when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lint format bench clean

install: $(STAMP)

# setup.py builds the optional C extension in place (cvtrain/_jpeg_region.c): a changed source rebuilds it.
$(STAMP): pyproject.toml setup.py cvtrain/_jpeg_region.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cvtrain fit

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check cvtrain tests scripts
	$(BIN)/ruff format --check cvtrain tests scripts

format: $(STAMP)
	$(BIN)/ruff format cvtrain tests scripts
	$(BIN)/ruff check --fix cvtrain tests scripts

bench: $(STAMP)
	$(BIN)/python scripts/bench_loop.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .ruff_cache
