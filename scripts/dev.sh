#!/usr/bin/env bash
# `make dev` (the README's run command): installs what is missing (.venv, debug binaries), then
# hands over to target/debug/local-stack, which starts moto, every route on
# 127.0.0.1:${VENTANA_PORT:-3000}, the queue consumers and the sandbox Graph API, prints a
# `ready` line, and stops all of it on SIGINT/SIGTERM.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENTANA_VENV:-$ROOT/.venv}"

"$ROOT/scripts/bootstrap.sh"

echo "dev: cargo build --workspace --bins" >&2
cargo build --workspace --bins

# local-stack finds moto_server and cargo-lambda through PATH (or VENTANA_VENV).
export PATH="$VENV/bin:$PATH"
export VENTANA_VENV="$VENV"
export SAM_CLI_TELEMETRY=0

# exec: local-stack replaces this shell, so Ctrl-C and `kill <pid>` reach it directly and it
# can shut moto and the functions down cleanly. Nothing may run after this line.
exec "${CARGO_TARGET_DIR:-$ROOT/target}/debug/local-stack" "$@"
