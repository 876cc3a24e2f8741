#!/usr/bin/env bash
# Cold start and footprint of every Lambda binary (tests/coldstart.rs), written to the section
# `coldstart` of docs/benchmarks.md. Part of `make bench`; not run by CI.
#
#   scripts/coldstart.sh              release binaries, 5 starts each, 10,000 events each
#   scripts/coldstart.sh --quick      1,000 events each (the RSS is then after 1,000 events)
#   scripts/coldstart.sh --no-write   print the table, leave docs/benchmarks.md alone
#
# Builds the release binaries of every function that has one (broadcast-planner too, once it
# exists), strips a copy of each to measure its size, then runs the test against a private moto
# (scripts/with-moto.sh). The machine is shared: read init times as medians on a busy machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

events=10000
write=1
args=("$@")
while (($#)); do
  case "$1" in
    --quick) events=1000 ;;
    --no-write) write=0 ;;
    *) echo "coldstart.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

functions=()
for f in webhook-verify webhook-receive inbound-processor read-api send-api deliver-worker broadcast-planner; do
  [[ -f functions/$f/src/main.rs ]] && functions+=("$f")
done
pkgs=()
for f in "${functions[@]}"; do pkgs+=(-p "$f"); done
echo "+ cargo build --release --locked ${pkgs[*]}" >&2
cargo build --release --locked "${pkgs[@]}"
target_dir=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sizes=()
for f in "${functions[@]}"; do
  strip -o "$tmp/$f" "$target_dir/release/$f"
  sizes+=("$f=$(stat -c %s "$target_dir/release/$f"):$(stat -c %s "$tmp/$f")")
done

test_cmd=(scripts/with-moto.sh cargo test --locked -p wa-tests --test coldstart -- --include-ignored --nocapture)
echo "+ VENTANA_COLDSTART_EVENTS=$events ${test_cmd[*]}" >&2
started=$(date +%s)
VENTANA_COLDSTART_EVENTS=$events VENTANA_COLDSTART_PROFILE=release "${test_cmd[@]}" 2>&1 | tee "$tmp/log"
took=$(( $(date +%s) - started ))

CS_LOG=$tmp/log CS_SIZES="${sizes[*]}" CS_WRITE=$write CS_TOOK=$took \
CS_CMD="scripts/coldstart.sh${args[*]:+ ${args[*]}}" CS_TEST_CMD="VENTANA_COLDSTART_EVENTS=$events ${test_cmd[*]}" \
CS_RUSTC="$(rustc -V)" CS_NPROC="$(nproc)" CS_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)" \
CS_COMMIT="$(git rev-parse --short HEAD)$(git status --porcelain -- functions tests 2>/dev/null | grep -q . && echo '+dirty' || true)" \
python3 - <<'PY'
import os, re, sys, time
sys.path.insert(0, "scripts")
from bench_doc import write_section

env = os.environ
log = open(env["CS_LOG"], encoding="utf-8", errors="replace").read()
sizes = {}
for item in env["CS_SIZES"].split():
    name, rest = item.split("=")
    full, stripped = rest.split(":")
    sizes[name] = (int(full), int(stripped))
rows = []
for m in re.finditer(r"^coldstart (\S+): (.*)$", log, re.M):
    name, rest = m[1], m[2]
    if rest.startswith("skipped"):
        rows.append((name, None, rest))
        continue
    kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', rest))
    rows.append((name, {k: v.strip('"') for k, v in kv.items()}, None))
if not rows:
    sys.exit("coldstart.sh: the test printed no `coldstart` line")

def mib(b):
    return b / 1048576

def verdict(ok):
    return "met" if ok else "**missed**"

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
lines = [
    "### Every Lambda binary, release build",
    "",
    f"- command: `{env['CS_CMD']}` (~{int(env['CS_TOOK']) // 60 + 1} min once built), which ran `{env['CS_TEST_CMD']}`"
    " (`tests/coldstart.rs`) after `cargo build --release` and `strip -o` of a copy of each binary",
    f"- machine: {env['CS_NPROC']} CPU(s), {cpu}; load average before the run {env['CS_LOAD']} (shared with other engineers"
    " compiling: the times are medians on a busy machine, moto and the processes share these cores)",
    f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {env['CS_RUSTC']}; commit `{env['CS_COMMIT']}`",
    "- *init*: process spawn → first `GET /runtime/invocation/next` on the fake Runtime API; *first response*: spawn → the"
    " answer to the event below, queued before the process started (init + first invocation with its first connections to"
    " moto); both the median of the starts. *peak RSS*: `VmHWM` after the events, invoked one after the other in one process"
    " (an SQS event counts its records; webhook-receive's go to a fake SQS on loopback, as in `tests/footprint.rs`, since moto"
    " takes minutes to accept 10,000 FIFO messages; the other functions' queues are purged every second for the same reason). Targets: init < 30 ms, stripped binary < 10 MB (10,000,000 bytes), peak RSS < 32 MB (32,000,000 bytes).",
    "",
    "| function | event (`events/<function>/`) | answer | init (median) | first response (median) | binary | stripped | peak RSS after init | events | peak RSS after them | init | size | RSS |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
]
for name, kv, skipped in rows:
    if kv is None:
        lines.append(f"| `{name}` | {skipped} | | | | | | | | | | | |")
        continue
    full, stripped = sizes.get(name, (0, 0))
    init = float(kv["init_ms"]); first = float(kv["first_response_ms"])
    rss0 = int(kv["rss_init_kib"]) / 1024; rss = int(kv["peak_rss_kib"]) / 1024
    lines.append(
        f"| `{name}` | `{kv['case']}.json` | {kv['last_outcome']} | {init:.1f} ms | {first:.1f} ms | {mib(full):.1f} MiB | {mib(stripped):.1f} MiB ({stripped / 1e6:.2f} MB) "
        f"| {rss0:.1f} MiB | {int(kv['events']):,} | {rss:.1f} MiB | {verdict(init < 30)} | {verdict(stripped < 10_000_000)} | {verdict(rss * 1024 * 1024 < 32_000_000)} |")
missing = [f for f in ["broadcast-planner"] if f not in [r[0] for r in rows]]
if missing:
    lines.append("")
    lines.append("Not measured: " + ", ".join(f"`{f}` (not on main when this ran)" for f in missing) + ".")
section = "\n".join(lines)
print(section)
if env["CS_WRITE"] == "1":
    write_section("coldstart:release", "Cold start and footprint of every function", section)
PY
