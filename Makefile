# Parley: two commands do all the set-up on a fresh machine: `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install whenever pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# jsii (under aws-cdk-lib) wants a maintained Node; node@22 comes from the npm registry.
NODE_DIR := .tools/node
NODE_BIN := $(NODE_DIR)/node_modules/node/bin
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export PATH := $(CURDIR)/$(NODE_BIN):$(PATH)
# pytest workers: CI has 2 cores.
WORKERS ?= 2
# The stage `make synth|deploy|diff|destroy` work on (infra/stages.py: dev tears down, prod retains).
STAGE ?= prod
CDK_CLI := $(NODE_DIR)/node_modules/aws-cdk/bin/cdk
CDK := $(CDK_CLI) --app "$(BIN)/python infra/app.py" -c stage=$(STAGE)

.PHONY: install serve test lint types unit synth layers bench bench-cost bench-gateway smoke clean node node-clients openapi deploy diff destroy cdk-cli not-prod

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

$(NODE_BIN)/node:
	@mkdir -p $(NODE_DIR)
	npm install --silent --no-audit --no-fund --prefix $(NODE_DIR) node@22 >/dev/null

node: $(NODE_BIN)/node

# Node clients nobody here wrote (the Vercel AI SDK), pinned in tests/node/package.json, for the
# acceptance tests run from pytest (tests/local/test_vercel_ai_sdk.py installs them too on first use).
node-clients: node
	@mkdir -p .tools/node-clients
	cp tests/node/package.json .tools/node-clients/package.json
	cd .tools/node-clients && npm install --silent --no-audit --no-fund --no-package-lock >/dev/null

serve: install
	$(BIN)/python -m parley.runtime.local $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

unit: install node
	$(BIN)/pytest -n $(WORKERS) -q

test: lint types unit

# The OpenAPI document from the route table and the handlers' models: the core package's copy (what
# GET /v1/openapi.json serves) and docs/openapi.json. `make test` fails when they drift.
openapi: install
	$(BIN)/python -m parley.api.openapi_gen

layers: install
	$(BIN)/python -m infra.layers

# Offline: no AWS call. cdk-nag runs in the synth (a finding fails it), cfn-lint over the stage's templates.
synth: install node layers
	CDK_CONTEXT_JSON='{"stage":"$(STAGE)"}' $(BIN)/python infra/app.py
	$(BIN)/cfn-lint --ignore-checks W3005 --regions us-east-1 -- cdk.out/parley-$(STAGE)-*.template.json

# The CDK CLI (npm) for the targets that talk to AWS; none of them runs in `make test`.
$(CDK_CLI):
	npm install --silent --no-audit --no-fund --prefix $(NODE_DIR) aws-cdk@2 >/dev/null

cdk-cli: node $(CDK_CLI)

deploy: install cdk-cli layers
	$(CDK) deploy --all --require-approval broadening

diff: install cdk-cli layers
	$(CDK) diff --all

# A production stage keeps its data and refuses deletion: only a non-production stage is destroyed here.
destroy: not-prod install cdk-cli layers
	$(CDK) destroy --all --force

not-prod:
	@if [ "$(STAGE)" = "prod" ]; then echo "make destroy refuses STAGE=prod (its data is retained by design)"; exit 2; fi

bench: install
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/send_message_calls.py
	$(BIN)/python -m bench.local_load

# Parley's local server as a gateway, side by side with the direct upstream and LiteLLM's proxy when
# installed (pip install -e '.[bench]', or LITELLM_CLI=.../bin/litellm): bench/gateway.py; then where one
# completion's time goes inside its handler (bench/handler_profile.py).
bench-gateway: install
	$(BIN)/python -m bench.gateway $(or $(ROUNDS),5) $(or $(REQUESTS),60)
	$(BIN)/python -m bench.handler_profile

# The smoke suite against any deployment: make smoke API_URL=https://.../prod API_KEY=prl_... [RECEIVER_URL=...]
# (also SMOKE_MODEL, SMOKE_EMBEDDING_MODEL, SMOKE_POLL_SECONDS). Make exports command-line variables to
# the recipe's environment, so the key reaches the runner without appearing in its command line or echo.
smoke: install
	$(BIN)/python -m parley.cli.smoke

# The cost per 1,000 conversation turns (bench/cost_per_turn.py; TURNS=200 by default).
bench-cost: install
	$(BIN)/python bench/cost_per_turn.py $(if $(TURNS),--turns $(TURNS))

clean:
	rm -rf $(VENV) .tools build cdk.out .parley .pytest_cache .mypy_cache .ruff_cache
