# The two quick-start commands: `make demo` (the main job on the sample data) and
# `make test` (lint, type check, the whole test suite). Both install what they need first.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medlens-installed
INPUTS := pyproject.toml scripts/install.sh $(wildcard requirements/*.txt requirements/*.apt)

.PHONY: install demo test lint typecheck pytest benchmarks

install: $(STAMP)

$(STAMP): $(INPUTS)
	bash scripts/install.sh
	touch $@

demo: $(STAMP)
	$(BIN)/medlens demo

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest
