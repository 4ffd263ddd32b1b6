# Heartbeat pipeline: developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK_DIR := .stack
PRODUCER_METRICS_PORT ?= 8001
CONSUMER_METRICS_PORT ?= 8002
PYTEST_ARGS ?=
# e.g. BENCH_STORAGE_ARGS="--readings 10000000" for a quicker make bench-storage
BENCH_STORAGE_ARGS ?=
IMAGE ?= heartbeat:dev
# kwok: fake nodes (fast, nothing runs); real: one node whose kubelet runs pods on containerd.
NODES ?= kwok
# What `make test` runs a second time with HEARTBEAT_TEST_SERVICES=containers (testcontainers).
CONTAINER_TESTS ?= tests/containers tests/integration/test_pipeline.py \
	tests/integration/test_kafka_outage.py tests/integration/test_localstack.py \
	tests/integration/test_store_recovery.py tests/integration/test_consumer_progress.py

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# pip prints what it fetches and installs (a progress bar on a terminal). The venv's own pip
# is recent enough for editable installs and extras, so it is not upgraded first.
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check

# What make dev runs: the pipeline and the local services (the `local` extra).
$(VENV)/.installed-run: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[local]'
	touch $@

# And the operator, the test and the lint tools (the `test` extra brings the operator's).
$(VENV)/.installed: $(VENV)/.installed-run
	$(PIP_INSTALL) -e '.[test,lint]'
	touch $@

.PHONY: install-run
install-run: $(VENV)/.installed-run ## Create .venv with what make dev runs: the pipeline and the local services

.PHONY: install
install: $(VENV)/.installed ## Create .venv and install the project with the operator, test and lint tools

.PHONY: system-deps
system-deps: ## Install the OS packages the local stack needs (Java, Maven, PostgreSQL, Prometheus)
	./.ci/system-deps

.PHONY: stack
stack: install-run system-deps ## Start local Kafka (KRaft) and PostgreSQL in the background; settings in .stack/env (SECURE=1: SASL_SSL, mutual TLS, verify-full)
	$(PY) -m heartbeat_localstack up --dir $(STACK_DIR) $(if $(SECURE),--secure)

.PHONY: stack-down
stack-down: ## Stop the local Kafka and PostgreSQL
	@if [ -x $(PY) ]; then $(PY) -m heartbeat_localstack down --dir $(STACK_DIR); fi

.PHONY: docker
docker: install ## Start a Docker engine unless one answers (installs docker.io and debootstrap first); PID and log in .stack/
	@$(PY) -m heartbeat_localstack.docker status --dir $(STACK_DIR) >/dev/null || ./.ci/system-deps docker
	$(PY) -m heartbeat_localstack.docker up --dir $(STACK_DIR)

.PHONY: docker-down
docker-down: ## Stop the Docker engine that make docker started (any other engine is left alone)
	@if [ -x $(PY) ]; then $(PY) -m heartbeat_localstack.docker down --dir $(STACK_DIR); fi

.PHONY: base-images
base-images: docker ## Base images: public where a registry answers, else made with debootstrap once (tars in ~/.cache/heartbeat/images)
	$(PY) -m heartbeat_localstack.images base

.PHONY: service-images
service-images: docker ## The Kafka and PostgreSQL images the testcontainers fixtures run (built once, kept as tars)
	$(PY) -m heartbeat_localstack.images services

.PHONY: image
image: docker ## Build the project's image as $(IMAGE) from the Dockerfile and print its size
	$(PY) -m heartbeat_localstack.images app --tag $(IMAGE)

.PHONY: images
images: docker ## Every image: the bases, Kafka and PostgreSQL (tests, dev-deps), the project's as $(IMAGE); copied into a running real node
	$(PY) -m heartbeat_localstack.images all --tag $(IMAGE)
	$(PY) -m heartbeat_localstack.cluster load --dir $(STACK_DIR)

.PHONY: cluster-build
cluster-build: install ## Build the local Kubernetes control plane, helm and kubectl once (cached in ~/.cache/heartbeat); NODES=real: a real node's too
	@if [ "$(NODES)" = real ]; then ./.ci/system-deps node; fi
	$(PY) -m heartbeat_localstack.cluster build --nodes $(NODES)

.PHONY: cluster
cluster: cluster-build ## Start a local Kubernetes control plane (kwok nodes; NODES=real: one that runs pods); kubeconfig in .stack/kubeconfig
	$(PY) -m heartbeat_localstack.cluster up --dir $(STACK_DIR) --nodes $(NODES)

.PHONY: k8s-dev
k8s-dev: NODES = real
k8s-dev: cluster-build images ## The pipeline on the local cluster's real node: dev-deps and the chart from the local images; prints port-forward lines
	$(PY) -m heartbeat_localstack.cluster dev --dir $(STACK_DIR)

.PHONY: skaffold
skaffold: install ## Build skaffold from its Go module once (cached in ~/.cache/heartbeat/tools)
	$(PY) -m heartbeat_localstack.devtools build skaffold

.PHONY: kind
kind: install ## Build kind from its Go module once (cached in ~/.cache/heartbeat/tools)
	$(PY) -m heartbeat_localstack.devtools build kind

.PHONY: skaffold-dev
skaffold-dev: NODES = real
skaffold-dev: skaffold cluster images ## skaffold run -p local-node on the local cluster's real node: dev-deps and the pipeline from local images, none pulled or pushed
	@exports="$$($(PY) -m heartbeat_localstack.skaffold env --dir $(STACK_DIR))" || exit 1; \
	eval "$$exports"; \
	"$$($(PY) -m heartbeat_localstack.devtools path skaffold)" run -p local-node \
		--kubeconfig $(STACK_DIR)/kubeconfig -n heartbeat-skaffold

.PHONY: cluster-down
cluster-down: ## Stop the local Kubernetes control plane
	@if [ -x $(PY) ]; then $(PY) -m heartbeat_localstack.cluster down --dir $(STACK_DIR); fi

.PHONY: migrate
migrate: stack ## Apply pending database migrations to the local PostgreSQL
	set -a; . $(STACK_DIR)/env; set +a; $(VENV)/bin/heartbeat migrate

.PHONY: dev
dev: migrate ## Run the whole pipeline locally: stack, migrations, maintenance, producer and consumer (Ctrl-C stops)
	@set -a; . $(STACK_DIR)/env; set +a; \
	$(VENV)/bin/heartbeat maintain || exit 1; \
	trap 'kill -TERM $$producer $$consumer $$maintainer 2>/dev/null; wait $$producer $$consumer $$maintainer; echo; echo "stopped; the stack keeps running (make stack-down stops it)"; exit 0' INT TERM; \
	$(VENV)/bin/heartbeat maintain --every 60 >/dev/null & maintainer=$$!; \
	METRICS_PORT=$(CONSUMER_METRICS_PORT) $(VENV)/bin/heartbeat consume & consumer=$$!; \
	METRICS_PORT=$(PRODUCER_METRICS_PORT) $(VENV)/bin/heartbeat produce & producer=$$!; \
	echo ""; \
	echo "  producer metrics  http://127.0.0.1:$(PRODUCER_METRICS_PORT)/metrics  (/healthz, /readyz)"; \
	echo "  consumer metrics  http://127.0.0.1:$(CONSUMER_METRICS_PORT)/metrics  (/healthz, /readyz)"; \
	echo "  Kafka             $$KAFKA_BOOTSTRAP_SERVERS  (make tail, make tail-dlq)"; \
	echo "  PostgreSQL        psql -h $$PGHOST -p $$PGPORT -U $$PGUSER $$PGDATABASE  (make stats)"; \
	echo "  maintenance       heartbeat maintain every 60 s (partitions, retention, rollups)"; \
	echo "  Ctrl-C stops the producer, consumer and maintenance"; \
	echo ""; \
	while kill -0 $$producer 2>/dev/null && kill -0 $$consumer 2>/dev/null; do sleep 1; done; \
	kill -TERM $$producer $$consumer $$maintainer 2>/dev/null; wait $$producer $$consumer $$maintainer; \
	echo "the producer or the consumer stopped (its message is above), so both are stopped"; exit 1

.PHONY: monitor
monitor: install-run system-deps ## Start Prometheus scraping the local producer (8001) and consumer (8002), with the alert rules
	$(PY) -m heartbeat_localstack.prometheus up --dir $(STACK_DIR) --targets 127.0.0.1:$(PRODUCER_METRICS_PORT),127.0.0.1:$(CONSUMER_METRICS_PORT)

.PHONY: monitor-down
monitor-down: ## Stop that Prometheus
	@if [ -x $(PY) ]; then $(PY) -m heartbeat_localstack.prometheus down --dir $(STACK_DIR); fi

.PHONY: stats
stats: ## Row and anomaly counts and per-customer statistics from the local PostgreSQL
	@set -a; . $(STACK_DIR)/env; set +a; $(VENV)/bin/heartbeat stats

.PHONY: tail
tail: ## Print readings arriving on the local Kafka topic
	@set -a; . $(STACK_DIR)/env; set +a; $(VENV)/bin/heartbeat tail

.PHONY: tail-dlq
tail-dlq: ## Print the dead-letter topic from its beginning, with headers
	@set -a; . $(STACK_DIR)/env; set +a; $(VENV)/bin/heartbeat tail --dlq --from-beginning --idle-timeout 5

.PHONY: test
# The real-node tests (tests/real_node) are part of the suite: build a real node's binaries.
test: NODES = real
test: install system-deps cluster-build images ## Install everything, build the images, run the whole suite on local processes and the container tests on testcontainers
	@status=0; \
	echo "== the whole suite, integration services as local processes =="; \
	HEARTBEAT_TEST_SERVICES=local $(PY) -m pytest --ignore=tests/containers $(PYTEST_ARGS) || status=1; \
	echo "== the image, the pipeline in containers, and the pipeline, outage and restart tests on testcontainers =="; \
	HEARTBEAT_TEST_SERVICES=containers HEARTBEAT_TEST_IMAGE=$(IMAGE) \
		$(PY) -m pytest $(CONTAINER_TESTS) $(PYTEST_ARGS) || status=1; \
	exit $$status

.PHONY: test-unit
test-unit: install ## Run the tests that need no services
	$(PY) -m pytest tests/unit tests/operator -m "not integration" $(PYTEST_ARGS)

.PHONY: lint
# Read-only: it installs nothing (make install does), it only needs the tools in .venv.
LINT_PATHS := app operator tests grafana scripts charts/heartbeat/scripts
lint: ## ruff, mypy and the import-layering contracts
	@test -x $(VENV)/bin/lint-imports || { echo "no lint tools in $(VENV): run make install" >&2; exit 2; }
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

.PHONY: bench
bench: install system-deps ## Benchmark: the consumer draining a 1M backlog against the PostgreSQL ceiling and a naive writer (readings/s, CPU, RSS), the producer against a bare loop, p99 latency at 10k/s (BENCH_ARGS="--readings N --scale")
	$(PY) -m tests.benchmarks.pipeline_throughput $(BENCH_ARGS)

.PHONY: bench-storage
bench-storage: install system-deps ## Benchmark storage: a batch's write cost, then 100M readings built in SQL, every panel and stats query timed, a day dropped
	$(PY) -m tests.benchmarks.storage_scale $(BENCH_STORAGE_ARGS)

.PHONY: docs
docs: install ## Regenerate .env.example, the README settings table and the chart README's values table
	$(VENV)/bin/heartbeat settings --env-example > .env.example
	$(PY) charts/heartbeat/scripts/values_table.py
	$(PY) -c 'import re,subprocess,pathlib; p=pathlib.Path("README.md"); t=subprocess.run(["$(VENV)/bin/heartbeat","settings","--markdown"],capture_output=True,text=True,check=True).stdout; s=p.read_text(); p.write_text(re.sub(r"(<!-- settings:start -->\n).*?(<!-- settings:end -->)", lambda m: m.group(1)+t+m.group(2), s, flags=re.S))'

.PHONY: clean
clean: monitor-down cluster-down stack-down docker-down ## Stop everything and remove .venv and .stack
	rm -rf $(VENV) $(STACK_DIR)
