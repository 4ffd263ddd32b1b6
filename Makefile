# Heartbeat pipeline: developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK_DIR := .stack

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $@

.PHONY: install
install: $(VENV)/.installed ## Create .venv and install the project with test and lint tools

.PHONY: system-deps
system-deps: ## Install the OS packages the local stack needs (Java, Maven, PostgreSQL)
	./.ci/system-deps

.PHONY: stack
stack: install ## Start local Kafka (KRaft) and PostgreSQL in the background; settings in .stack/env
	$(PY) -m localstack up --dir $(STACK_DIR)

.PHONY: stack-down
stack-down: ## Stop the local Kafka and PostgreSQL
	@if [ -x $(PY) ]; then $(PY) -m localstack down --dir $(STACK_DIR); fi
