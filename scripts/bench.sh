#!/usr/bin/env bash
# Benchmarks that write docs/benchmarks.md, between generated markers. Never type those
# figures by hand.
#
# Ingest (the default part): functions/domain/benches/ingest.rs (criterion), section "current".
# Outbound (--outbound): tests/benches/outbound.rs, the deliver-worker engine against the
# sandbox Graph API (throughput at 1,000/s, pacing accuracy at 80/s with 1, 2 and 4 workers)
# and send-api's handler latency; section "current" under "## Outbound" (about 4 min once
# built; 1 min with --quick).
#
#   scripts/bench.sh                    ingest, full run (about 40 s once built)
#   scripts/bench.sh --outbound         outbound only
#   scripts/bench.sh --all              ingest, then outbound
#   scripts/bench.sh --quick            VENTANA_BENCH_QUICK=1: fewer, shorter samples and runs
#   scripts/bench.sh --label NAME       write the section NAME instead of "current"
#   scripts/bench.sh --no-write         print the tables, leave docs/benchmarks.md alone
#   scripts/bench.sh --min-ratio 0.22   exit 1 if any payload's paired Ventana/floor ratio is lower (ingest)
#   scripts/bench.sh -- ARGS            pass ARGS to criterion (ingest; e.g. -- ingest_1_message)
#   scripts/bench.sh --no-peer          ingest without the pywa peer (the default with --min-ratio)
#
# The ingest part also times pywa (pinned in scripts/bench-requirements.txt, installed from PyPI
# into <target dir>/bench-venv on first use) on the very payloads the Rust bench wrote out
# (scripts/bench_pywa.py), right after criterion, and adds its table to the section.
#
# The machine is shared and noisy: the ingest figure that means something is the ratio
# Ventana/floor, both measured in the same run; the outbound figures are rates against the
# pacer's limit and latencies, each measured in one run. Needs cargo and python3 (no jq).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

label=current
quick=0
write=1
min_ratio=
criterion_args=()
run_ingest=1
run_outbound=0
peer=
original_args=("$@")
while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --outbound) run_ingest=0; run_outbound=1 ;;
    --all) run_ingest=1; run_outbound=1 ;;
    --label) label=${2:?--label needs a name}; shift ;;
    --no-write) write=0 ;;
    --no-peer) peer=0 ;;
    --peer) peer=1 ;;
    --min-ratio) min_ratio=${2:?--min-ratio needs a number}; shift ;;
    --) shift; criterion_args=("$@"); break ;;
    -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# The CI guard (--min-ratio) checks Ventana against the floor only: no virtualenv, no pywa.
[[ -z $peer ]] && { [[ -n $min_ratio ]] && peer=0 || peer=1; }
[[ $label =~ ^[A-Za-z0-9._-]+$ ]] || { echo "bench.sh: label must be [A-Za-z0-9._-]+" >&2; exit 2; }

cargo_cmd=(cargo bench -p wa-domain --bench ingest)
((${#criterion_args[@]})) && cargo_cmd+=(-- "${criterion_args[@]}")
env_prefix=
if ((quick)); then
  export VENTANA_BENCH_QUICK=1
  env_prefix="VENTANA_BENCH_QUICK=1 "
else
  unset VENTANA_BENCH_QUICK
fi

log=$(mktemp "${TMPDIR:-/tmp}/ventana-bench.XXXXXX")
trap 'rm -f "$log"' EXIT
target_dir=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
script_cmd="scripts/bench.sh${original_args[*]:+ ${original_args[*]}}"

if ((run_ingest)); then
# Results older than this run are ignored (criterion keeps every benchmark it ever ran).
started=$(date +%s)
sleep 1

payloads=$(mktemp -d "${TMPDIR:-/tmp}/ventana-bench-payloads.XXXXXX")
trap 'rm -rf "$log" "$payloads"' EXIT
peer_cmd=
if ((peer)); then
  venv=$target_dir/bench-venv
  if ! "$venv/bin/python" -c 'import sys, importlib.metadata as m; sys.exit(m.version("pywa") != sys.argv[1])' \
      "$(sed -n 's/^pywa==//p' scripts/bench-requirements.txt)" 2>/dev/null; then
    echo "+ python3 -m venv $venv && pip install -r scripts/bench-requirements.txt" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/bench-requirements.txt
  fi
  peer_cmd="$venv/bin/python scripts/bench_pywa.py"
fi

echo "+ ${env_prefix}${cargo_cmd[*]}" >&2
VENTANA_BENCH_PAYLOADS=$payloads "${cargo_cmd[@]}" 2>&1 | tee "$log"
if ((peer)); then
  echo "+ ${env_prefix}VENTANA_BENCH_PAYLOADS=<the bench's payloads> ${peer_cmd}" >&2
  VENTANA_BENCH_PAYLOADS=$payloads $peer_cmd 2>&1 | tee -a "$log"
fi

BENCH_LOG=$log BENCH_STARTED=$started BENCH_TARGET_DIR=$target_dir BENCH_LABEL=$label \
BENCH_WRITE=$write BENCH_MIN_RATIO=$min_ratio BENCH_QUICK=$quick \
BENCH_SCRIPT_CMD="$script_cmd" BENCH_PEER_CMD="${peer_cmd:+${env_prefix}${peer_cmd#"$PWD/"}}" \
BENCH_CARGO_CMD="${env_prefix}${cargo_cmd[*]}" \
BENCH_RUSTC="$(rustc -V)" BENCH_NPROC="$(nproc)" \
BENCH_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git status --porcelain -- functions/domain 2>/dev/null | grep -q . && echo '+dirty' || true)" \
python3 - <<'PY'
import glob, json, os, re, sys, time

env = os.environ
log = open(env["BENCH_LOG"], encoding="utf-8", errors="replace").read()
started = int(env["BENCH_STARTED"])
root = os.path.join(env["BENCH_TARGET_DIR"], "criterion")

# "ingest_1_message: 647 bytes, 1 events" is printed by the bench for each payload.
sizes = {m[1]: (int(m[2]), int(m[3]))
         for m in re.finditer(r"^(ingest_\S+): (\d+) bytes, (\d+) events$", log, re.M)}

# "paired ingest_1_message: ratio 0.3712 over 40 samples": the median of per-sample ratios,
# each floor batch timed next to its ventana batch (see the bench's header).
paired = {m[1]: float(m[2]) for m in re.finditer(r"^paired (ingest_\S+): ratio ([\d.]+|NaN) over \d+ samples$", log, re.M)}

results = {}  # group -> {function: (mean ns, elements)}
for path in glob.glob(os.path.join(root, "ingest_*", "*", "new", "benchmark.json")):
    est_path = os.path.join(os.path.dirname(path), "estimates.json")
    if not os.path.exists(est_path) or os.path.getmtime(est_path) < started:
        continue
    bench = json.load(open(path))
    est = json.load(open(est_path))
    elements = (bench.get("throughput") or {}).get("Elements")
    results.setdefault(bench["group_id"], {})[bench["function_id"]] = (
        est["mean"]["point_estimate"], est["median"]["point_estimate"], elements)

rows = []
for group, fns in results.items():
    if "ventana" not in fns or "floor" not in fns:
        continue
    (v_ns, v_med, events), (f_ns, f_med, _) = fns["ventana"], fns["floor"]
    size = sizes.get(group, (None, events))[0]
    rows.append(dict(group=group, bytes=size, events=events or 1,
                     v_eps=(events or 1) * 1e9 / v_ns, f_eps=(events or 1) * 1e9 / f_ns,
                     ratio=f_ns / v_ns, ratio_med=f_med / v_med, paired=paired.get(group), v_wps=1e9 / v_ns, v_us=v_ns / 1e3, f_us=f_ns / 1e3))
if not rows:
    sys.exit("bench.sh: no fresh ventana/floor pair under %s (did the bench run?)" % root)
rows.sort(key=lambda r: (r["bytes"] or 0, r["group"]))

def n(x):
    return f"{x:,.0f}"

def us(x):
    return f"{x:,.2f}" if x < 100 else f"{x:,.0f}"

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"

label = env["BENCH_LABEL"]
date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
lines = [
    f"<!-- bench:{label}:begin (generated by scripts/bench.sh; do not edit by hand) -->",
    f"### `{label}`",
    "",
    f"- command: `{env['BENCH_SCRIPT_CMD']}`, which ran `{env['BENCH_CARGO_CMD']}`"
    + (" (quick mode: 10 samples in 0.6 s per routine)" if env["BENCH_QUICK"] == "1" else " (40 samples in 3 s per routine)"),
    f"- machine: {env['BENCH_NPROC']} CPU(s) (`nproc`), {cpu_model()}; shared, so compare ratios, not times",
    f"- date: {date}; {env['BENCH_RUSTC']}; wa-domain at commit `{env['BENCH_COMMIT']}`",
    "- figures: criterion's mean point estimates (`target/criterion/<payload>/<routine>/new/estimates.json`);"
    " *paired ratio*: the median over samples of floor time / Ventana time, each pair timed back to back"
    " (printed by the bench as `paired <payload>: ratio …`), which load from other work moves far less",
    "",
    "| payload | bytes | events | Ventana events/s | floor events/s | ratio Ventana/floor (means) | paired ratio | Ventana webhooks/s | Ventana µs/webhook | floor µs/webhook |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for r in rows:
    lines.append(
        f"| `{r['group']}` | {n(r['bytes']) if r['bytes'] is not None else '?'} | {n(r['events'])} "
        f"| {n(r['v_eps'])} | {n(r['f_eps'])} | {r['ratio']:.3f} | {'%.3f' % r['paired'] if r['paired'] is not None else '?'} | {n(r['v_wps'])} "
        f"| {us(r['v_us'])} | {us(r['f_us'])} |")
# The pywa peer: "pywa <payload> <routine>: <s> s/webhook, <events> events, <n> samples".
peer = {}
for m in re.finditer(r"^pywa (ingest_\S+) (pywa_\w+): ([\d.e-]+) s/webhook, (\d+) events, (\d+) samples$", log, re.M):
    peer.setdefault(m[1], {})[m[2]] = (float(m[3]), int(m[4]))
built = {m[1]: int(m[2]) for m in re.finditer(r"^pywa (ingest_\S+): handler built (\d+) update", log, re.M)}
pywa_version = re.search(r"^pywa version (\S+)$", log, re.M)
if peer:
    lines += [
        "",
        f"**Beside pywa {pywa_version[1] if pywa_version else '?'}**, timed right after criterion on the same payload files"
        f" (`{env['BENCH_PEER_CMD']}`, median of its samples; `scripts/bench_pywa.py` says what each routine calls)."
        " *pywa, every item*: `WhatsApp.webhook_update_validator` (hmac `hexdigest` + `compare_digest`), `RawUpdate`"
        " (`json.loads` of the body), then `Message.from_update` / `MessageStatus.from_update` on a one-item view of each"
        " message or status, the comparable of Ventana's `split`, which yields every item."
        " *pywa handler*: `webhook_update_validator` + `webhook_update_handler` as a pywa app runs them, which build ONE"
        " update per webhook (`messages[0]` / `statuses[0]`) and leave the other items of a batched webhook as raw JSON"
        " (and cannot build a status without a `contacts` entry, which Meta's status webhooks here do not carry)."
        " Ventana/pywa = Ventana events/s ÷ pywa events/s (every item); Python and Rust run minutes apart on a busy"
        " machine, so read it to ±30 %.",
        "",
        "| payload | events | Ventana events/s | floor events/s | pywa events/s (every item) | paired ratio Ventana/floor | ratio Ventana/pywa | pywa handler µs/webhook (updates it built) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        p = peer.get(r["group"], {})
        every = p.get("pywa_every_item")
        handler = p.get("pywa_handler")
        p_eps = every[1] / every[0] if every else None
        lines.append(
            f"| `{r['group']}` | {n(r['events'])} | {n(r['v_eps'])} | {n(r['f_eps'])} "
            f"| {n(p_eps) if p_eps else '?'} | {'%.3f' % r['paired'] if r['paired'] is not None else '?'} "
            f"| {'%.0f' % (r['v_eps'] / p_eps) if p_eps else '?'} | {us(handler[0] * 1e6) + ' (%s)' % built.get(r['group'], '?') if handler else '?'} |")
lines.append(f"<!-- bench:{label}:end -->")
section = "\n".join(lines)
print()
print(section)

if env["BENCH_WRITE"] == "1":
    doc_path = "docs/benchmarks.md"
    if os.path.exists(doc_path):
        doc = open(doc_path, encoding="utf-8").read()
    else:
        os.makedirs("docs", exist_ok=True)
        doc = "# Benchmarks\n\nGenerated by `scripts/bench.sh`.\n\n## Results\n"
    pattern = re.compile(
        r"<!-- bench:%s:begin.*?<!-- bench:%s:end -->" % (re.escape(label), re.escape(label)), re.S)
    if pattern.search(doc):
        doc = pattern.sub(lambda _: section, doc, count=1)
    else:
        doc = doc.rstrip("\n") + "\n\n" + section + "\n"
    with open(doc_path, "w", encoding="utf-8") as f:
        f.write(doc)
    print(f"\nbench.sh: wrote section `{label}` of {doc_path}", file=sys.stderr)

if env["BENCH_MIN_RATIO"]:
    floor = float(env["BENCH_MIN_RATIO"])
    # The paired ratio when the bench printed one (it is the steadier), else the means' ratio.
    def guarded(r):
        return r["paired"] if r["paired"] is not None else r["ratio"]
    low = [r for r in rows if not guarded(r) >= floor]
    for r in low:
        print(f"bench.sh: {r['group']}: ratio {guarded(r):.3f} < {floor}", file=sys.stderr)
    if low:
        sys.exit(1)
    print(f"bench.sh: every ratio >= {floor}", file=sys.stderr)
PY
fi

if ((run_outbound)); then
out_cmd=(cargo bench -p wa-tests --bench outbound)
out_log=$(mktemp "${TMPDIR:-/tmp}/ventana-bench-outbound.XXXXXX")
trap 'rm -rf "$log" "$out_log" "${payloads:-}"' EXIT
echo "+ ${env_prefix}${out_cmd[*]}" >&2
"${out_cmd[@]}" 2>&1 | tee "$out_log"

BENCH_LOG=$out_log BENCH_LABEL=$label BENCH_WRITE=$write BENCH_QUICK=$quick \
BENCH_SCRIPT_CMD="$script_cmd" \
BENCH_CARGO_CMD="${env_prefix}${out_cmd[*]}" \
BENCH_RUSTC="$(rustc -V)" BENCH_NPROC="$(nproc)" \
BENCH_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git status --porcelain -- functions/domain functions/graph functions/sandbox functions/send-api functions/deliver-worker tests/benches 2>/dev/null | grep -q . && echo '+dirty' || true)" \
python3 - <<'PY'
import os, re, sys, time

env = os.environ
log = open(env["BENCH_LOG"], encoding="utf-8", errors="replace").read()
m = re.search(r"^=== outbound report begin ===\n(.*?)^=== outbound report end ===$", log, re.M | re.S)
if not m:
    sys.exit("bench.sh: the outbound bench printed no report (did it run?)")
report = m[1].rstrip("\n")

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"

label = env["BENCH_LABEL"]
date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
mode = ("quick mode: 10 s throughput runs, 10 s pacing runs, 5,000 send-api requests per case"
        if env["BENCH_QUICK"] == "1" else
        "10 s throughput runs, 60 s pacing runs, 20,000 send-api requests per case")
lines = [
    f"<!-- bench-outbound:{label}:begin (generated by scripts/bench.sh; do not edit by hand) -->",
    f"### `{label}`",
    "",
    f"- command: `{env['BENCH_SCRIPT_CMD']}`, which ran `{env['BENCH_CARGO_CMD']}` ({mode})",
    f"- machine: {env['BENCH_NPROC']} CPU(s) (`nproc`), {cpu_model()} (`/proc/cpuinfo`); shared with other work,"
    " and the sandbox Graph API, its client and the engines share these cores",
    f"- date: {date}; {env['BENCH_RUSTC']}; commit `{env['BENCH_COMMIT']}`",
    "",
    report,
    f"<!-- bench-outbound:{label}:end -->",
]
section = "\n".join(lines)
print()
print(section)

if env["BENCH_WRITE"] == "1":
    doc_path = "docs/benchmarks.md"
    doc = open(doc_path, encoding="utf-8").read() if os.path.exists(doc_path) else "# Benchmarks\n"
    pattern = re.compile(
        r"<!-- bench-outbound:%s:begin.*?<!-- bench-outbound:%s:end -->" % (re.escape(label), re.escape(label)), re.S)
    if pattern.search(doc):
        doc = pattern.sub(lambda _: section, doc, count=1)
    else:
        heading = re.search(r"^## Outbound\s*$", doc, re.M)
        if heading:
            # At the end of the Outbound section: before the next `## ` heading, or at the end.
            nxt = re.compile(r"^## ", re.M).search(doc, heading.end())
            at = nxt.start() if nxt else len(doc)
            doc = doc[:at].rstrip("\n") + "\n\n" + section + "\n" + ("\n" + doc[at:] if nxt else "")
        else:
            doc = doc.rstrip("\n") + "\n\n## Outbound\n\n" + section + "\n"
    with open(doc_path, "w", encoding="utf-8") as f:
        f.write(doc)
    print(f"\nbench.sh: wrote section `{label}` of {doc_path} (Outbound)", file=sys.stderr)
PY
fi
