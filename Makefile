# Two commands do all set-up on a fresh machine:  make run  ·  make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test test-ts install lint typecheck imports bench bench-ts clean services langfuse-clients

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "PromptKeeper needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

install: $(STAMP)

# The test suite also needs the embeddings extra (semantic similarity), which needs torch. torch comes
# first, as the CPU build named by its local version: on Linux, PyPI's torch==2.13.0 is the CUDA build
# (527 MB plus the nvidia-* packages), and `==2.13.0` would also accept it. 2.13.0+cpu is on PyTorch's
# CPU index (or in a local wheel directory that pip is configured with); nothing else matches
# `==2.13.0+cpu`, so an unreachable index is an error, never a silent CUDA download. macOS wheels
# have no CUDA and no `+cpu` tag.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH       := $(if $(filter Darwin,$(shell uname -s)),torch==2.13.0,torch==2.13.0+cpu)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --only-binary=:all: --extra-index-url $(TORCH_INDEX) --timeout 30 '$(TORCH)' || { echo "error: cannot install $(TORCH), the CPU build of torch, from $(TORCH_INDEX), PyPI or pip's configured wheel directories; reach that index, or put the wheel in a --find-links directory (see README, Development)" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet -e '.[server,dev,embeddings]'
	touch $(TEST_STAMP)

## make run: install, migrate, start the server on SQLite at 127.0.0.1:8700 with sample data
## (another port: make run PORT=8800; only a PORT given on make's command line, not one inherited
## from the environment, which often means something else)
run: $(STAMP)
	$(BIN)/promptkeeper serve --sample-data$(if $(filter command line,$(origin PORT)), --port $(PORT))

## make test: install, make sure PostgreSQL and Redis are up, run the whole suite
test: $(TEST_STAMP) services langfuse-clients
	$(BIN)/ruff check promptkeeper tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)
	$(MAKE) test-ts

## make test-ts: the TypeScript SDK (sdk/typescript): npm ci (once per package-lock.json), tsc, the
## types checked against tests/data/openapi.json, then node --test against real servers ($(BIN)/promptkeeper)
TS_DIR   := sdk/typescript
TS_STAMP := $(TS_DIR)/node_modules/.installed

$(TS_STAMP): $(TS_DIR)/package-lock.json
	cd $(TS_DIR) && npm ci --no-audit --no-fund
	touch $(TS_STAMP)

test-ts: $(STAMP) services $(TS_STAMP)
	cd $(TS_DIR) && PK_SERVER=$(abspath $(BIN))/promptkeeper npm test

## make langfuse-clients: the real Langfuse clients the compatibility matrix runs against
## (tests/test_langfuse_matrix.py): one small virtualenv per supported major of the Python SDK in
## .venv/langfuse-N/ (pins in tests/langfuse/requirements-N.txt) and the JS clients in
## tests/js/langfuse/node_modules (package-lock.json). Stamp files: a second run installs nothing.
LANGFUSE_MAJORS := 2 3 4 5
LANGFUSE_VENVS  := $(foreach major,$(LANGFUSE_MAJORS),$(VENV)/langfuse-$(major)/.installed)
LANGFUSE_JS     := tests/js/langfuse

$(VENV)/langfuse-%/.installed: tests/langfuse/requirements-%.txt
	rm -rf $(VENV)/langfuse-$*
	$(PYTHON) -m venv $(VENV)/langfuse-$*
	$(VENV)/langfuse-$*/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	touch $@

$(LANGFUSE_JS)/node_modules/.installed: $(LANGFUSE_JS)/package.json $(LANGFUSE_JS)/package-lock.json
	cd $(LANGFUSE_JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

langfuse-clients: $(LANGFUSE_VENVS) $(LANGFUSE_JS)/node_modules/.installed

services:
	bash scripts/ensure-services.sh

lint: $(STAMP)
	$(BIN)/ruff check promptkeeper tests bench scripts
	$(BIN)/ruff format --check promptkeeper tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

bench: $(STAMP) services
	$(BIN)/python bench/resolve_http.py
	$(BIN)/python bench/sdk_cache_hit.py
	$(BIN)/python bench/propagation.py

bench-ts: $(STAMP) services $(TS_STAMP)
	cd $(TS_DIR) && npx tsc -p tsconfig.json
	PK_SERVER=$(abspath $(BIN))/promptkeeper node bench/ts_cache_hit.mjs
	PK_SERVER=$(abspath $(BIN))/promptkeeper node bench/ts_propagation.mjs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache promptkeeper.egg-info $(LANGFUSE_JS)/node_modules $(TS_DIR)/node_modules $(TS_DIR)/dist $(TS_DIR)/generated
