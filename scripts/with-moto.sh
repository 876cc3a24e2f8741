#!/usr/bin/env bash
# Usage: scripts/with-moto.sh CMD [ARGS...]
#
# Runs CMD with a private moto server (DynamoDB + SQS emulator, started by scripts/moto-server)
# on a free loopback port and the
# standard AWS SDK variables pointing at it:
#   AWS_ENDPOINT_URL=http://127.0.0.1:<port>  AWS_REGION=us-east-1  dummy static credentials
#   AWS_EC2_METADATA_DISABLED=true (the SDK must never try the instance-metadata address)
# moto is stopped when this script exits (also on Ctrl-C / SIGTERM); the exit code is CMD's.
# moto's log: target/moto.log (override with MOTO_LOG). Nothing listens beyond 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENTANA_VENV:-$ROOT/.venv}"

if [[ $# -eq 0 ]]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi

"$ROOT/scripts/bootstrap.sh"

MOTO_LOG="${MOTO_LOG:-$ROOT/target/moto.log}"
mkdir -p "$(dirname "$MOTO_LOG")"

MOTO_PID=""
stop_moto() {
  if [[ -n "$MOTO_PID" ]]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=""
  fi
}
trap stop_moto EXIT
# Turn signals into a normal exit so the EXIT trap stops moto (bash skips EXIT traps when a
# signal with its default action kills it).
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Readiness: moto answers GET /moto-api/. curl when present, else the venv's Python.
moto_ready() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/" 2>/dev/null
  else
    "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
      "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1
  fi
}

# The free port is only reserved until the probe socket closes: if another process grabs it
# before moto binds, moto exits and we try again on a new port.
started=""
for attempt in 1 2 3; do
  MOTO_PORT="$(free_port)"
  "$ROOT/scripts/moto-server" -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 150); do   # up to ~30 s; moto is usually ready in ~0.5 s
    if moto_ready; then
      started=1
      break
    fi
    kill -0 "$MOTO_PID" 2>/dev/null || break
    sleep 0.2
  done
  [[ -n "$started" ]] && break
  echo "with-moto: moto did not start on port $MOTO_PORT (attempt $attempt); log:" >&2
  sed 's/^/  moto: /' "$MOTO_LOG" >&2 || true
  stop_moto
done
if [[ -z "$started" ]]; then
  echo "with-moto: giving up: moto_server would not start" >&2
  exit 1
fi

export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
unset AWS_SESSION_TOKEN AWS_PROFILE
export AWS_EC2_METADATA_DISABLED=true
# For benchmarks that report moto's own CPU time (tests/broadcast_scale.rs).
export VENTANA_MOTO_PID="$MOTO_PID"
export MOTO_PORT
echo "with-moto: moto on $AWS_ENDPOINT_URL (pid $MOTO_PID, log ${MOTO_LOG#"$ROOT"/})" >&2

# Not `exec`: this shell must outlive CMD to stop moto. CMD stays in the foreground, so Ctrl-C
# reaches it directly.
set +e
"$@"
rc=$?
set -e
exit "$rc"
