# Conduit Mesh — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export PATH := $(CURDIR)/$(BIN):$(PATH)
STAMP := $(VENV)/.installed
# newman (the official RealWorld collection's runner), from npm into a cache shared by clones.
NEWMAN_VERSION := 6.2.2
NEWMAN_DIR := $(HOME)/.cache/conduit/newman-$(NEWMAN_VERSION)
NEWMAN := $(NEWMAN_DIR)/node_modules/.bin/newman
PYTEST_ARGS ?=
# The TypeScript client: npm packages pinned by its package-lock.json, npm's cache shared by clones.
TS_CLIENT := clients/typescript
TS_STAMP := $(TS_CLIENT)/node_modules/.installed
TS_GENERATE = $(CURDIR)/$(BIN)/buf generate --template buf.gen.yaml --path conduit --path google/rpc

.PHONY: help install run test check lint typecheck buf-lint buf-format buf-breaking generate \
        check-generated openapi format clean bench profile bench-tools observe observe-tools \
        observe-test rules-test prometheus-package ts-install ts-build ts-tools browser-tools nss-tools bench-observe conformance \
        settings-reference check-settings search-node search-node-fetch \
        container-tools image images compose-up compose-down kube-render kube-smoke deploy-lint \
        graphql-clients oidc-provider

help: ## list every target
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./clients/python -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the server, the SDK and the dev tools

run: $(STAMP) ## start PostgreSQL, Redis, every service and Envoy (TLS); Ctrl-C stops everything
	$(BIN)/conduit run

test: check rules-test ts-tools graphql-clients browser-tools oidc-provider ## run the checks, the alert-rule unit tests, then the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

# The OIDC login tests' OpenID Provider (oidc-provider from npm, as locked in tests/oidc/), cached in
# ~/.cache/conduit. Without npm the tests skip, except on CI, where this fails.
oidc-provider: $(STAMP) ## install the OIDC tests' OpenID Provider (npm ci into ~/.cache/conduit, once per lock)
	@command -v npm >/dev/null || { echo "npm not found: the OIDC tests will skip"; test -z "$$CI"; }
	@if command -v npm >/dev/null; then $(PY) -m tests.oidc.provider; fi

# Observability tools: Debian's prometheus (promtool too) and a Jaeger build cached outside the tree.
JAEGER_DIR ?= $(HOME)/.cache/conduit/jaeger-v1.75.0
export CONDUIT_JAEGER_DIR := $(JAEGER_DIR)

prometheus-package:
	@command -v promtool >/dev/null || { command -v apt-get >/dev/null && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus >/dev/null; }; } || { echo "needs promtool and prometheus (Debian package prometheus)"; exit 1; }

observe-tools: $(STAMP) prometheus-package ## install Prometheus (Debian package) and build Jaeger (Go module proxy) if missing
	@bash deploy/observability/build-jaeger.sh $(JAEGER_DIR)

rules-test: prometheus-package ## promtool: check the recording/alert rules and run their unit tests
	promtool check rules deploy/observability/prometheus/rules/*.yml
	promtool test rules deploy/observability/prometheus/tests/*.yml

observe: observe-tools ## `make run` with tracing + metrics on, beside a real Prometheus and Jaeger; prints URLs
	$(BIN)/conduit observe

# The ECS log test needs the search work's Elasticsearch node (search_node/, fetched with Maven) when present.
observe-test: observe-tools $(if $(wildcard search_node/pom.xml),search-node-fetch) ## the heavy observability tests: Envoy → Jaeger traces, Prometheus queries, ECS logs
	$(BIN)/pytest tests/observability -m observe $(PYTEST_ARGS)

check: lint typecheck buf-lint buf-format buf-breaking check-generated check-settings deploy-lint ## ruff, mypy, buf lint/format/breaking, generated-code and settings-reference drift, hadolint/actionlint

lint: $(STAMP) ## ruff on every hand-written file
	$(BIN)/ruff check .

format: $(STAMP) ## apply ruff's fixes and buf format
	$(BIN)/ruff check --fix .
	$(BIN)/buf format -w proto

typecheck: $(STAMP) ## mypy --strict on hand-written code (generated code excluded)
	$(BIN)/mypy server gateway/conduit_gateway bench tests search_node deploy

buf-lint: $(STAMP) ## buf lint on the contract
	$(BIN)/buf lint gateway/conduit.binpb --path conduit

buf-format: $(STAMP) ## fail when buf format would change a .proto
	$(BIN)/buf format -d --exit-code proto

buf-breaking: $(STAMP) ## no breaking change against main's contract
	@if git rev-parse -q --verify main:gateway/conduit.binpb >/dev/null; then \
	  tmp=$$(mktemp -d) && git show main:gateway/conduit.binpb > $$tmp/main.binpb && \
	  $(BIN)/buf breaking gateway/conduit.binpb --against $$tmp/main.binpb --path conduit && \
	  $(PY) proto/check_idempotency.py gateway/conduit.binpb $$tmp/main.binpb; \
	  status=$$?; rm -rf $$tmp; exit $$status; \
	else echo "buf-breaking: main has no contract yet; nothing to compare"; fi

KUBE_GATEWAY := deploy/kubernetes/base/config.env deploy/kubernetes/base/gateway/envoy.yaml

generate: $(STAMP) $(TS_STAMP) ## regenerate Python and TypeScript code, type stubs, the descriptor set, the GraphQL types, the OpenAPI document, the Kubernetes gateway config
	$(PY) proto/generate.py
	$(PY) proto/graphql_types.py
	rm -rf $(TS_CLIENT)/src/gen && cd $(TS_CLIENT) && $(TS_GENERATE) ../../gateway/conduit.binpb
	$(PY) -m conduit_gateway.openapi --descriptor gateway/conduit.binpb --out gateway/openapi.yaml
	$(PY) -m conduit_server.deploy $(KUBE_GATEWAY)

openapi: $(STAMP) ## regenerate gateway/openapi.yaml from the descriptor set
	$(PY) -m conduit_gateway.openapi --descriptor gateway/conduit.binpb --out gateway/openapi.yaml

check-generated: $(STAMP) $(TS_STAMP) ## fail when `make generate` would change any committed file
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(PY) proto/generate.py --out-src $$tmp/src --image $$tmp/conduit.binpb 2>/dev/null && \
	(cd $(TS_CLIENT) && $(TS_GENERATE) $$tmp/conduit.binpb -o $$tmp/ts) && \
	diff -r $$tmp/ts/src/gen $(TS_CLIENT)/src/gen && \
	diff -r -x __pycache__ $$tmp/src/conduit clients/python/src/conduit -x client -x py.typed -x '__init__.py' >/dev/null && \
	diff -r -x __pycache__ $$tmp/src/buf clients/python/src/buf && \
	cmp $$tmp/src/conduit/client/_contract.py clients/python/src/conduit/client/_contract.py && \
	cmp $$tmp/conduit.binpb gateway/conduit.binpb && \
	$(PY) proto/graphql_types.py --image $$tmp/conduit.binpb --check && \
	$(PY) -m conduit_gateway.openapi --descriptor gateway/conduit.binpb --out gateway/openapi.yaml --check && \
	$(PY) -m conduit_server.deploy $(KUBE_GATEWAY) --check && \
	echo "generated code is up to date" || { echo "generated code is stale: run 'make generate'"; exit 1; }

# Third-party GraphQL clients (graphql-ws + ws for Node, playwright-core for Chromium) and GraphiQL's files the
# graphql service serves: `npm ci` of clients/graphql into a cache shared by clones, redone when the lock changes.
GRAPHQL_CLIENTS_DIR := $(HOME)/.cache/conduit/graphql-clients
export CONDUIT_GRAPHQL_CLIENTS_DIR := $(GRAPHQL_CLIENTS_DIR)

graphql-clients: ## npm ci the GraphQL clients and GraphiQL's files into ~/.cache/conduit/graphql-clients (when the lock changed)
	@cmp -s clients/graphql/package-lock.json $(GRAPHQL_CLIENTS_DIR)/.installed-lock || { \
	  mkdir -p $(GRAPHQL_CLIENTS_DIR) && \
	  cp clients/graphql/package.json clients/graphql/package-lock.json $(GRAPHQL_CLIENTS_DIR)/ && \
	  npm ci --prefix $(GRAPHQL_CLIENTS_DIR) --no-audit --no-fund --loglevel=error --ignore-scripts && \
	  cp clients/graphql/package-lock.json $(GRAPHQL_CLIENTS_DIR)/.installed-lock; }

$(NEWMAN):
	npm install --prefix $(NEWMAN_DIR) --no-audit --no-fund --loglevel=error newman@$(NEWMAN_VERSION)

conformance: $(STAMP) $(NEWMAN) ## start a mesh and run the official RealWorld API collection on it (newman)
	$(PY) -m tests.conformance --newman $(NEWMAN)

settings-reference: $(STAMP) ## regenerate the README's configuration reference from Settings
	$(BIN)/conduit settings --write README.md

check-settings: $(STAMP) ## fail when the README's configuration reference differs from Settings
	$(BIN)/conduit settings --check README.md

search-node-fetch: $(STAMP) ## download the Elasticsearch test node with Maven into ~/.cache/conduit/search-node (once)
	@command -v mvn >/dev/null || { command -v apt-get >/dev/null && apt-get install -y -qq maven >/dev/null; } \
	  || { echo "search-node needs Maven (Debian: apt-get install maven)"; exit 1; }
	@start=$$(date +%s); $(PY) -c 'from search_node.node import fetch; print("search node jars in", fetch())' && \
	  echo "search-node-fetch took $$(( $$(date +%s) - start ))s"

search-node: search-node-fetch ## start one Elasticsearch 7.10.2 node on a loopback port and print its URL (Ctrl-C stops)
	$(PY) -m search_node

bench-tools: $(STAMP)
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && apt-get install -y -qq wrk >/dev/null; } \
	  || { echo "bench needs wrk (Debian: apt-get install wrk)"; exit 1; }
	@test -x $(BIN)/py-spy || $(PY) -m pip install --quiet py-spy

bench: bench-tools ## start the mesh, seed 1,000 users / 10,000 articles, print the results table
	$(PY) -m bench.run

bench-observe: bench-tools observe-tools ## req/s of bench rows with tracing (10 %) + metrics on vs off
	$(PY) -m bench.overhead

profile: bench-tools ## flame graph of one service under load (SERVICE=articles|users) into bench/results/
	$(PY) -m bench.profile $(or $(SERVICE),articles)

TOOLS := $(HOME)/.cache/conduit-mesh/bin
ACTIONLINT_VERSION := v1.7.7

# actionlint has no binary wheel: built once with Go from its module (cached).
$(TOOLS)/actionlint-$(ACTIONLINT_VERSION):
	@command -v go >/dev/null || { echo "actionlint is built with Go: install Go"; exit 1; }
	GOBIN=$(TOOLS) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	@touch $@

deploy-lint: $(STAMP) $(TOOLS)/actionlint-$(ACTIONLINT_VERSION) ## hadolint on every Containerfile, actionlint on the workflows
	$(BIN)/hadolint --failure-threshold info deploy/Containerfile deploy/images/*/Containerfile
	$(TOOLS)/actionlint -shellcheck= .github/workflows/*.yml

# ---- containers and Kubernetes (Podman with runc: deploy/podman/podman) ----
PODMAN := deploy/podman/podman

container-tools: ## install podman, runc and debootstrap with apt when missing
	@command -v podman >/dev/null && test -x /usr/sbin/runc && command -v debootstrap >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "needs podman, runc and debootstrap"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; }

image: $(STAMP) container-tools ## build localhost/conduit-mesh:dev (debootstrap base, host-built wheels, no network)
	PYTHON=$(PY) bash deploy/podman/image.sh base

images: $(STAMP) container-tools ## the image above plus the PostgreSQL image (Compose, kube-smoke)
	PYTHON=$(PY) bash deploy/podman/image.sh all

kube-render: ## print the rendered Kubernetes overlay (OVERLAY=dev|prod)
	@command -v kubectl >/dev/null || { echo "kube-render needs kubectl (with kustomize)"; exit 1; }
	kubectl kustomize deploy/kubernetes/overlays/$(or $(OVERLAY),dev)

kube-smoke: images ## play the dev overlay with podman kube play (2 replicas each), REST through Envoy, pod loss
	$(PY) -m deploy.kube_smoke

$(VENV)/.compose: $(STAMP)
	$(PY) -m pip install --quiet 'podman-compose==1.6.0'
	@touch $@

compose-up: images $(VENV)/.compose ## start deploy/compose.yaml with podman-compose, then the smoke test through Envoy's TLS port
	$(PY) -m deploy.compose up

compose-down: $(VENV)/.compose ## stop and remove everything compose-up created
	$(PY) -m deploy.compose down

$(TS_STAMP): $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	@command -v npm >/dev/null || { echo "the TypeScript client needs Node.js 20+ and npm"; exit 1; }
	cd $(TS_CLIENT) && npm ci --cache $(HOME)/.cache/conduit/npm --no-audit --no-fund --loglevel=error
	@touch $@

ts-install: $(TS_STAMP) ## npm ci of the TypeScript client: protoc-gen-es, Connect, TypeScript, esbuild, playwright-core

ts-build: ts-install ## compile the TypeScript client and its tests (tsc), bundle its example page (esbuild)
	cd $(TS_CLIENT) && npm run --silent build

ts-tools: ts-install browser-tools nss-tools ## what the TypeScript client's tests need: npm packages, Chromium, certutil

nss-tools: ## certutil (Debian's libnss3-tools): the browser tests trust the mesh's CA through an NSS database
	@command -v certutil >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libnss3-tools)

browser-tools: ## Debian's Chromium for the headless browser tests (apt, when missing)
	@command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

clean: ## remove caches (keeps .venv and .state)
	rm -rf .mypy_cache .ruff_cache .pytest_cache build dist $(TS_CLIENT)/dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
