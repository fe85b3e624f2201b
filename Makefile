# prenv — the two commands a newcomer needs are `make demo` and `make test`; everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv tools tools-env images test lint demo demo-down bench chaos clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -r requirements-dev.txt
	@$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

## Build (or reuse) the offline toolchain: pulumi CLI, language host, providers, Kubernetes control plane and node,
## KWOK, CoreDNS, Traefik; check (as root: install) the node's Debian packages.
tools: venv
	@$(PY) -m prenv.toolchain build

## Shell exports for the toolchain: eval "$$(make -s tools-env)"
tools-env: venv
	@$(PY) -m prenv.toolchain env

## The example app (examples/app): static binary and OCI image archive under .state/images/ (needs go and umoci).
images: venv
	@$(PY) -m devtools.images

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check --exclude '*.md' .
	$(VENV)/bin/mypy prenv components stacks bench testsupport devtools
	$(VENV)/bin/lint-imports --no-cache

## Unit, integration and end-to-end tests; the suite starts its own cluster, PostgreSQL, fake GitHub and S3.
test: tools
	$(PY) -m pytest -n 2 --dist loadgroup -m "not chaos" tests

demo: tools
	@$(PY) -m devtools.demo up

demo-down: venv
	@$(PY) -m devtools.demo down

bench: tools
	@$(PY) -m bench

chaos: tools
	$(PY) -m pytest -n 2 -m chaos tests

clean:
	rm -rf $(VENV) .state build
