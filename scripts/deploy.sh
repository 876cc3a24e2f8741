#!/usr/bin/env bash
# `make deploy`: sam deploy --guided of the last `make sam-build` (infra/.aws-sam/build).
#
# Guard: the Arch parameter must match what was built, or every function fails at start with
# "exec format error". This script reads the architecture from the built `bootstrap` ELF header
# and passes Arch=<that> together with the overrides already saved in infra/samconfig.toml
# (passing --parameter-overrides replaces the saved ones, so they are merged here).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENTANA_VENV:-$ROOT/.venv}"
BUILD="$ROOT/infra/.aws-sam/build"

[[ -f "$BUILD/template.yaml" ]] || { echo "deploy: no build in infra/.aws-sam: run 'make sam-build' first" >&2; exit 1; }

bin="$BUILD/WebhookVerifyFunction/bootstrap"
[[ -f "$bin" ]] || { echo "deploy: $bin missing: run 'make sam-build' again" >&2; exit 1; }
case "$(od -An -tx1 -j18 -N1 "$bin" | tr -d ' ')" in
  3e) arch=x86_64 ;;
  b7) arch=arm64 ;;
  *) echo "deploy: cannot tell the architecture of $bin" >&2; exit 1 ;;
esac

overrides="$("$VENV/bin/python" - "$ROOT/infra/samconfig.toml" "$arch" <<'PY'
import sys, tomllib, shlex
path, arch = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    cfg = tomllib.load(f)
saved = cfg.get("default", {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
if isinstance(saved, list):
    saved = " ".join(saved)
pairs = [p.split("=", 1) for p in shlex.split(saved) if "=" in p and not p.startswith("Arch=")]
# One string, as SAM expects: Key="value" pairs separated by spaces (values may hold spaces).
print(" ".join(f'{k}="{v}"' for k, v in [("Arch", arch)] + pairs))
PY
)"
echo "deploy: functions were built for $arch; parameter overrides: $overrides" >&2

cd "$ROOT/infra"
export PATH="$VENV/bin:$PATH" SAM_CLI_TELEMETRY=0
exec sam deploy --guided --parameter-overrides "$overrides" "$@"
