#!/usr/bin/env bash
# Property-based API tests of docs/openapi.json against the running local stack (schemathesis).
#
#   scripts/schemathesis.sh [--quick]   (--quick: few examples per operation, CI; default: long)
#
# Builds the debug binaries, starts target/debug/local-stack on a free port with a dev API key,
# waits for its `ready` line, runs `schemathesis run` with the key as a bearer token and the
# checks not_a_server_error and response_schema_conformance, then stops the stack with SIGINT
# and waits for it to exit. Extra arguments go to schemathesis (e.g. --seed 1).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENTANA_VENV:-$ROOT/.venv}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

MODE=long
if [[ "${1:-}" == "--quick" ]]; then MODE=quick; shift; fi
if [[ $MODE == quick ]]; then
  LIMITS=(--max-examples 8 --max-time 45 --seed 1 --generation-deterministic)
else
  LIMITS=(--max-examples 300)
fi

"$ROOT/scripts/bootstrap.sh" >&2
cargo build --workspace --bins >&2

PORT="${VENTANA_PORT:-$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
KEY="${VENTANA_DEV_API_KEY:-schemathesis-$RANDOM$RANDOM}"
LOG="$(mktemp -t ventana-schemathesis.XXXXXX)"

export PATH="$VENV/bin:$PATH" VENTANA_VENV="$VENV" VENTANA_PORT="$PORT" VENTANA_DEV_API_KEY="$KEY"
"$TARGET/debug/local-stack" >"$LOG" 2>&1 &
STACK=$!
stop() {
  if kill -0 "$STACK" 2>/dev/null; then
    kill -INT "$STACK"
    wait "$STACK" || echo "schemathesis.sh: local-stack exited $? on SIGINT (log: $LOG)" >&2
  fi
}
trap stop EXIT

for _ in $(seq 1 240); do
  grep -q "ready" "$LOG" && break
  kill -0 "$STACK" 2>/dev/null || { cat "$LOG" >&2; echo "schemathesis.sh: local-stack died" >&2; exit 1; }
  sleep 0.5
done
grep -q "ready" "$LOG" || { cat "$LOG" >&2; echo "schemathesis.sh: no ready line in 120 s" >&2; exit 1; }
echo "schemathesis.sh: stack ready on 127.0.0.1:$PORT ($MODE mode; stack log $LOG)" >&2

set +e
"$VENV/bin/schemathesis" run docs/openapi.json \
  --url "http://127.0.0.1:$PORT" \
  -H "Authorization: Bearer $KEY" \
  --checks not_a_server_error,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --request-timeout 10 \
  "${LIMITS[@]}" "$@"
rc=$?
set -e
stop
trap - EXIT
[[ $rc -eq 0 ]] && rm -f "$LOG"
exit "$rc"
