#!/usr/bin/env bash
# End to end on the local stack and the AWS cost per million messages (tests/e2e_cost.rs),
# written to the sections `e2e` and `cost` of docs/benchmarks.md. Part of `make bench`; not CI.
#
#   scripts/e2e_cost.sh             200 webhooks by 16 clients, 30 timed to visibility, 30 sends
#   scripts/e2e_cost.sh --quick     60 webhooks, 10 to visibility, 10 sends, 100 direct invocations
#   scripts/e2e_cost.sh --no-write  print the sections, leave docs/benchmarks.md alone
#
# The test counts every AWS request each function makes, by operation, through a counting proxy
# in front of moto; this script turns the counts into request units and dollars at the list
# prices in PRICES below (us-east-1). Every figure in the sections comes from that run and
# these prices; none is typed by hand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

write=1
knobs=()
args=("$@")
while (($#)); do
  case "$1" in
    --quick) knobs=(VENTANA_E2E_INBOUND=60 VENTANA_E2E_VISIBLE=10 VENTANA_E2E_OUTBOUND=10 VENTANA_E2E_HANDLER=100) ;;
    --no-write) write=0 ;;
    *) echo "e2e_cost.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

pkgs=(-p webhook-receive -p inbound-processor -p read-api -p send-api -p deliver-worker)
echo "+ cargo build --release --locked ${pkgs[*]}" >&2
cargo build --release --locked "${pkgs[@]}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
test_cmd=(scripts/with-moto.sh cargo test --locked -p wa-tests --test e2e_cost -- --include-ignored --nocapture)
echo "+ ${knobs[*]:+${knobs[*]} }${test_cmd[*]}" >&2
started=$(date +%s)
env ${knobs[@]+"${knobs[@]}"} VENTANA_E2E_PROFILE=release "${test_cmd[@]}" 2>&1 | tee "$tmp/log"
took=$(( $(date +%s) - started ))

E2E_LOG=$tmp/log E2E_WRITE=$write E2E_TOOK=$took \
E2E_CMD="scripts/e2e_cost.sh${args[*]:+ ${args[*]}}" E2E_TEST_CMD="${knobs[*]:+${knobs[*]} }${test_cmd[*]}" \
E2E_RUSTC="$(rustc -V)" E2E_NPROC="$(nproc)" E2E_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)" \
E2E_COMMIT="$(git rev-parse --short HEAD)$(git status --porcelain -- functions tests 2>/dev/null | grep -q . && echo '+dirty' || true)" \
python3 - <<'PY'
import json, math, os, re, sys, time
sys.path.insert(0, "scripts")
from bench_doc import write_section

# AWS list prices, us-east-1, on-demand, without free tiers, as published on aws.amazon.com's
# pricing pages (Lambda, API Gateway, SQS, DynamoDB) and last checked by hand on PRICE_DATE;
# this script cannot fetch them. Change them here, and the date with them.
PRICE_REGION = "us-east-1 (N. Virginia)"
PRICE_DATE = "2025-06 (AWS pricing pages; not re-checked by this run)"
PRICES = {
    "lambda_request": 0.20 / 1e6,            # per invocation
    "lambda_gb_s_x86": 0.0000166667,          # per GB-second, x86_64 (the template's default Arch)
    "lambda_gb_s_arm": 0.0000133334,          # per GB-second, arm64
    "http_api_request": 1.00 / 1e6,           # API Gateway HTTP API, first 300 M/month, per 512 KB
    "rest_api_request": 3.50 / 1e6,           # API Gateway REST API, first 333 M/month
    "function_url_request": 0.0,              # Lambda function URLs: only the Lambda invocation
    "sqs_fifo_request": 0.50 / 1e6,           # per request (each 64 KB of payload is one)
    "sqs_standard_request": 0.40 / 1e6,
    "ddb_wru": 0.625 / 1e6,                   # on-demand write request unit (1 KB; 2 in a transaction)
    "ddb_rru": 0.125 / 1e6,                   # on-demand read request unit (4 KB strongly consistent)
    "ddb_wcu_hour": 0.00065,                  # provisioned write capacity unit-hour
    "ddb_rcu_hour": 0.00013,                  # provisioned read capacity unit-hour
}
TWILIO_PER_MESSAGE = 0.005  # what the issue sets beside it: a BSP's fee per message
TARGET_PER_MILLION = 5.0

env = os.environ
log = open(env["E2E_LOG"], encoding="utf-8", errors="replace").read()
m = re.search(r"^E2E_JSON (\{.*\})$", log, re.M)
if not m:
    sys.exit("e2e_cost.sh: the test printed no E2E_JSON line (did it pass?)")
r = json.loads(m[1])

# Memory per function from the template (Globals, then each function's own MemorySize).
tpl = open("infra/template.yaml", encoding="utf-8").read()
glob_mem = int(re.search(r"^Globals:.*?^\s+MemorySize:\s*(\d+)", tpl, re.M | re.S)[1])
logical = {"webhook-receive": "WebhookReceiveFunction", "inbound-processor": "InboundProcessorFunction",
           "read-api": "ReadApiFunction", "send-api": "SendApiFunction", "deliver-worker": "DeliverWorkerFunction"}
memory = {}
for fn, lid in logical.items():
    block = re.search(r"^  %s:\n(.*?)(?=^  \S)" % lid, tpl, re.M | re.S)
    own = re.search(r"^\s+MemorySize:\s*(\d+)", block[1], re.M) if block else None
    memory[fn] = int(own[1]) if own else glob_mem

def ddb_units(aws):
    """(WRU, RRU, requests) estimated from one function's DynamoDB requests."""
    wru = rru = reqs = 0.0
    for op, c in aws.items():
        if not op.startswith("dynamodb:"):
            continue
        reqs += c["requests"]
        name = op.split(":", 1)[1]
        if name in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"):
            if c.get("write_units"):
                wru += c["write_units"]  # the proxy's count: each item written by its size
                continue
            items = max(c["items"], 1)
            per_item_kb = math.ceil(c["req_bytes"] / items / 1024)  # request JSON ≥ item size: an upper bound
            wru += items * per_item_kb * (2 if name == "TransactWriteItems" else 1)
        elif name in ("GetItem", "Query", "BatchGetItem", "Scan"):
            per_req = math.ceil(c["resp_bytes"] / c["requests"] / 4096)  # response JSON ≥ items read
            rru += c["requests"] * max(per_req, 1)
    return wru, rru, reqs

def measured_units(phase, exclude=()):
    """(table WRU, index WRU, RRU) per message of a units phase: every DynamoDB request of it
    measured by the proxies (each written item read before and after; see counting_proxy.rs)."""
    n = phase.get("messages") or phase.get("sends")
    tw = iw = rr = 0.0
    for fn, counts in phase["aws"].items():
        if fn in exclude:
            continue
        for op, c in counts.items():
            if op.startswith("dynamodb:"):
                tw += c["table_wru"]; iw += c["index_wru"]; rr += c["rru"]
    return tw / n, iw / n, rr / n

def sqs_requests(aws, include_empty_receives=False):
    n = 0
    for op, c in aws.items():
        if not op.startswith("sqs:"):
            continue
        if op == "sqs:ReceiveMessage" and not include_empty_receives:
            n += c["non_empty"]
        elif op in ("sqs:SendMessage", "sqs:SendMessageBatch", "sqs:DeleteMessage", "sqs:DeleteMessageBatch",
                    "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:ChangeMessageVisibilityBatch"):
            n += c["requests"]
    return n

h = r["handler"]
dur_ms = {
    "webhook-receive": h["moto_ms"]["p50"],
    "inbound-processor": h["processor_moto_ms"]["p50"],  # one batch of processor_batch_records
    "send-api": r["outbound"]["send_ms"]["p50"],          # through the gateway: an upper bound
}

def path_cost(name, phase, units, api_requests, invocations, durations, batch_note, sqs_price="sqs_fifo_request",
              api_price="http_api_request", ddb="on-demand", wru_extra=0.0, rru_extra=0.0, sqs_extra=0.0, util=1.0,
              webhook_requests=0, webhook_api_price=None, arch="x86", esm_batch=None, measured=None):
    """Dollars per `units` messages of a phase, by service. `invocations`: {function: count}.
    `webhook_requests` of the `api_requests` are Meta's POST /webhook, priced at `webhook_api_price`
    (default: `api_price`). `esm_batch`: the event source's receives and deletes as if every batch
    held that many messages (default: as counted). `measured`: (table WRU, index WRU, RRU) per
    message from the units phase, used instead of the estimate from the counted bytes."""
    aws = phase["aws"]
    wru = rru = ddb_reqs = 0.0
    sqs = 0
    for fn, counts in aws.items():
        w, rr, q = ddb_units(counts)
        wru += w; rru += rr; ddb_reqs += q
        if fn == "event-source-mapping" and esm_batch:
            es = phase["event_source"]
            moved = es["inbound_messages"] + es["outbound_messages"]
            sqs += 2 * math.ceil(moved / esm_batch)  # one receive and one DeleteMessageBatch per batch
        else:
            sqs += sqs_requests(counts)
    if measured:
        wru, rru = (measured[0] + measured[1]) * units, measured[2] * units
    wru += wru_extra * units
    rru += rru_extra * units
    sqs += sqs_extra * units
    lam_req = sum(invocations.values())
    gb_s = sum(invocations[f] * durations[f] / 1000 * memory.get(f, glob_mem) / 1024 for f in invocations)
    if ddb == "on-demand":
        ddb_cost = wru * PRICES["ddb_wru"] + rru * PRICES["ddb_rru"]
    else:  # provisioned, at a steady rate with `util` of the capacity used
        ddb_cost = (wru * PRICES["ddb_wcu_hour"] + rru * PRICES["ddb_rcu_hour"]) / 3600 / util
    hook_price = PRICES[webhook_api_price or api_price]
    costs = {
        "API Gateway": (api_requests - webhook_requests) * PRICES[api_price] + webhook_requests * hook_price,
        "Lambda requests": lam_req * PRICES["lambda_request"],
        "Lambda GB-s": gb_s * PRICES["lambda_gb_s_" + arch],
        "SQS": sqs * PRICES[sqs_price],
        "DynamoDB": ddb_cost,
    }
    per_million = {k: v / units * 1e6 for k, v in costs.items()}
    return dict(name=name, units=units, wru=wru / units, rru=rru / units, measured=measured, ddb_reqs=ddb_reqs / units, sqs=sqs / units,
                api=api_requests / units, lam=lam_req / units, gb_s=gb_s / units,
                per_million=per_million, total=sum(per_million.values()), note=batch_note)

inb = r["inbound"]; out = r["outbound"]
n_in = inb["webhooks"]; n_out = out["sends"]
u = r["units"]
units_in, units_out = measured_units(u["inbound"]), measured_units(u["outbound"])
units_b = measured_units(u["outbound"], exclude=("send-api",))
# Invocations as measured (event-source batches as they happened under this light load).
inv_in = {"webhook-receive": n_in, "inbound-processor": inb["event_source"]["inbound_batches"]}
per_batch = h["processor_batch_records"]
dur_in = dict(dur_ms)
dur_in["inbound-processor"] = dur_ms["inbound-processor"]  # per batch
inbound = path_cost("inbound message", inb, n_in, n_in, inv_in, dur_in, webhook_requests=n_in, measured=units_in, batch_note=
                    f"{inb['event_source']['inbound_batches']} processor batches for {inb['event_source']['inbound_messages']} events")
# Outbound: the send, its job, the worker, and the 3 status webhooks through the inbound path.
webhooks = out["status_webhooks"]
inv_out = {"send-api": n_out, "deliver-worker": out["event_source"]["outbound_batches"],
           "webhook-receive": webhooks, "inbound-processor": out["event_source"]["inbound_batches"]}
dur_out = dict(dur_in)
dur_out["deliver-worker"] = dur_ms["send-api"]  # not measured apart: the sandbox answers at once; see the text
outbound = path_cost("outbound message + its status webhooks", out, n_out, n_out + webhooks, inv_out, dur_out,
                     webhook_requests=webhooks, measured=units_out,
                     batch_note=f"{webhooks} status webhooks for {n_out} sends; {out['event_source']['outbound_batches']} deliver batches")

# Broadcast recipient: the outbound path measured above without send-api (its API request,
# invocation, DynamoDB and SQS requests), plus the planner. The planner's requests come from the
# last run of scripts/broadcast_scale.sh (target/bench/broadcast_scale.json: planning and queuing
# a big list, counted per operation), when there is one: write units (counted by the proxy from
# each item's size; from a file without them: 1 a BatchWriteItem item, 2 a PutItem of the job),
# keys read (BatchGetItem and GetItem,
# 1 RRU each, consistent), ledger Queries (a page of 100 entries, ~5 RRU), SendMessageBatch
# requests and one step message per step; settling each recipient later reads its send and
# the send's history record, where its receipts are (+2 RRU), and rewrites its ledger page
# once more (its write units per entry, from the size of the ledger items that run left; that
# run stops at queued).
# Without the file: the design's 2 writes + 0.1 SendMessageBatch per recipient.
send_aws = out["aws"].get("send-api", {})
b_phase = {"aws": {k: v for k, v in out["aws"].items() if k != "send-api"}, "event_source": out["event_source"]}
b_inv = {k: v for k, v in inv_out.items() if k != "send-api"}
scale_file = "target/bench/broadcast_scale.json"
try:
    sc = json.load(open(scale_file, encoding="utf-8"))
except (OSError, ValueError):
    sc = None
if sc:
    ops, n_sc = sc["ops"], sc["recipients"]
    op = lambda name, k: ops.get(name, {}).get(k, 0)
    # Write units as the proxy counted them (each item by its size) when the file has them.
    units = lambda name, fallback: op(name, "write_units") or fallback
    # Settling rewrites each packed ledger page once more: its write units per entry, from the
    # ledger items the run left (an item per page of 100 entries, ~0.2 KB an entry).
    li = sc.get("ledger_items") or {}
    settle_wru = (math.ceil(li["bytes"] / max(li["items"], 1) / 1024) * li["items"] / li["entries"]
                  if li.get("entries") else 1.0)
    wru_pl = (units("dynamodb:BatchWriteItem", op("dynamodb:BatchWriteItem", "items"))
              + units("dynamodb:PutItem", 2 * op("dynamodb:PutItem", "requests"))) / n_sc + settle_wru
    rru_pl = (op("dynamodb:BatchGetItem", "items") + op("dynamodb:GetItem", "requests")
              + 5 * op("dynamodb:Query", "requests")) / n_sc + 2.0
    sqs_pl = (op("sqs:SendMessageBatch", "requests") + sc["steps"]) / n_sc
    b_name = "broadcast recipient"
    b_note = (f"the planner's requests as counted by scripts/broadcast_scale.sh on {n_sc:,} recipients (its results file written {sc.get('date', '?')}):"
              f" {wru_pl:.2f} WRU, {rru_pl:.2f} RRU, {sqs_pl:.3f} SQS requests per recipient with settling (+2 RRU for the send and its history record, from the"
              f" design, +{settle_wru:.2f} WRU for the ledger page's rewrite, from its measured size); planner invocations not counted (a step plans up to 5,000); then the outbound path measured above without send-api")
else:
    wru_pl, rru_pl, sqs_pl = 2.0, 0.0, 0.1
    b_name = "broadcast recipient (estimate)"
    b_note = ("an estimate: no target/bench/broadcast_scale.json (run scripts/broadcast_scale.sh), so 2 writes + 0.1 SendMessageBatch"
              " per recipient from the planner's design, planner invocations not counted, then the outbound path measured above without send-api")
broadcast = path_cost(b_name, b_phase, n_out, webhooks, b_inv, dur_out, webhook_requests=webhooks, batch_note=b_note,
                      wru_extra=wru_pl, rru_extra=rru_pl, sqs_extra=sqs_pl, measured=units_b)

def money(x):
    return f"${x:,.2f}" if x >= 0.01 else f"${x:,.4f}"

def ms(x):
    return f"{x:,.1f} ms"

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
head = [
    f"- command: `{env['E2E_CMD']}` (~{int(env['E2E_TOOK']) // 60 + 1} min once built), which ran `{env['E2E_TEST_CMD']}` (`tests/e2e_cost.rs`, {r['profile']} binaries)",
    f"- machine: {env['E2E_NPROC']} CPU(s), {cpu}; load average before the run {env['E2E_LOAD']}: shared with other engineers compiling,"
    " and moto, the gateway, the pollers, the sandbox and every function share these cores",
    f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {env['E2E_RUSTC']}; commit `{env['E2E_COMMIT']}`",
]

a = inb["ack_ms"]; v = r["visible"]["ms"]; hm = h["moto_ms"]; hf = h["fake_sqs_ms"]; pm = h["processor_moto_ms"]
e2e = ["### Local stack, release binaries", ""] + head + [
    "",
    "| what | n | p50 | p99 | max |",
    "| --- | ---: | ---: | ---: | ---: |",
    f"| webhook acknowledgement (signed POST /webhook through the gateway, {inb['concurrency']} clients at once) | {a['n']} | {ms(a['p50'])} | {ms(a['p99'])} | {ms(a['max'])} |",
    f"| webhook → message in `GET /v1/conversations` (one at a time, polled every 5 ms) | {v['n']} | {ms(v['p50'])} | {ms(v['p99'])} | {ms(v['max'])} |",
    f"| webhook-receive invoked directly, SQS = moto | {hm['n']} | {ms(hm['p50'])} | {ms(hm['p99'])} | {ms(hm['max'])} |",
    f"| webhook-receive invoked directly, SQS = in-process fake (no moto) | {hf['n']} | {ms(hf['p50'])} | {ms(hf['p99'])} | {ms(hf['max'])} |",
    f"| inbound-processor invoked directly on `events/inbound-processor/batch.json` ({h['processor_batch_records']} records), DynamoDB = moto | {pm['n']} | {ms(pm['p50'])} | {ms(pm['p99'])} | {ms(pm['max'])} |",
    f"| send-api through the gateway (text to an open window) | {out['send_ms']['n']} | {ms(out['send_ms']['p50'])} | {ms(out['send_ms']['p99'])} | {ms(out['send_ms']['max'])} |",
    "",
    f"{n_in} webhooks took {inb['load_secs']:.1f} s under load ({n_in / inb['load_secs']:,.0f}/s) and all were visible after {inb['all_visible_secs']:.1f} s."
    f" **How much is moto's:** webhook-receive's median invocation is {ms(hm['p50'])} with moto behind SQS and {ms(hf['p50'])}"
    f" with a fake SQS on loopback that answers at once, so about {max(0.0, 1 - hf['p50'] / hm['p50']) * 100:.0f} % of it is the SendMessageBatch"
    " round trip to moto (single-threaded Python); the handler's own work (verify, split, build the batch, the emulator's"
    " Runtime API round trip) is the rest, and the ingest bench above puts verify + split at microseconds. Webhook → visible adds"
    " the event source's poll of the FIFO queue, the processor's DynamoDB writes and the read API's query, all against moto;"
    " in AWS the SQS → Lambda hand-off alone is typically tens of milliseconds, so these figures say where time goes here, not"
    " what AWS will show.",
]

rows = [inbound, outbound, broadcast]
services = ["API Gateway", "Lambda requests", "Lambda GB-s", "SQS", "DynamoDB"]
cost = ["### AWS cost per million, from the requests counted in the run above", ""] + head + [
    f"- prices: AWS list prices, {PRICE_REGION}, on-demand, free tiers ignored, as of {PRICE_DATE}; the table `PRICES` in `scripts/e2e_cost.sh`:",
    "",
    "| item | price |",
    "| --- | ---: |",
] + [f"| `{k}` | ${v:.10g} |" for k, v in PRICES.items()] + [
    "",
    f"Lambda memory from `infra/template.yaml`: {', '.join(f'{k} {v} MB' for k, v in memory.items())}; durations: the medians measured above"
    f" (webhook-receive {ms(dur_ms['webhook-receive'])}, inbound-processor {ms(dur_ms['inbound-processor'])} per batch, send-api {ms(dur_ms['send-api'])};"
    " deliver-worker is given send-api's, since its time in AWS is mostly the Graph API's answer, which the sandbox gives at once here — at"
    " 128 MB even 300 ms costs $0.63 per million sends). Requests counted by a proxy per function in front of moto"
    f" (operation, bytes). Read and write units: measured on {u['inbound']['messages']} more inbound messages and"
    f" {u['outbound']['sends']} more sends with their webhooks, after the timed phases: each proxy read every item a write"
    " touched before and after it, and counted a write unit per started KB of the larger of the two in the table (two in a"
    " transaction) and per KB of each `gsi1` entry put or deleted when the item changed (projection ALL); reads, half a unit per"
    " started 4 KB returned (a whole one when consistent); see `tests/testkit/counting_proxy.rs`. SQS: sends, non-empty receives and deletes; the event source's empty"
    " long polls are a fixed cost per queue (about 5 pollers × 3 per minute ≈ 650,000 requests a month per queue, ~$0.33), not per message.",
    "",
    "| path (per message) | API requests | Lambda invocations | GB-s | SQS requests | DynamoDB requests | WRU | RRU | "
    + " | ".join(f"{s} $/M" for s in services) + " | **AWS $ per million** | BSP at $0.005 | target < $5 |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in services) + " | ---: | ---: | --- |",
]
for p in rows:
    cost.append(
        f"| {p['name']} | {p['api']:.2f} | {p['lam']:.2f} | {p['gb_s']:.5f} | {p['sqs']:.2f} | {p['ddb_reqs']:.2f} | {p['wru']:.2f} | {p['rru']:.2f} | "
        + " | ".join(money(p["per_million"][s]) for s in services)
        + f" | **{money(p['total'])}** | {money(TWILIO_PER_MESSAGE * 1e6)} | {'met' if p['total'] < TARGET_PER_MILLION else '**missed**'} |")
cost += ["", "Counted in the run: " + "; ".join(f"{p['name']}: {p['note']}" for p in rows) + ".", ""]

# Design choices, each changing one thing against the template's (HTTP API, FIFO, batch as measured, on-demand).
def variant(label, **kw):
    vi, vo = kw.pop("inv_in", inv_in), kw.pop("inv_out", inv_out)
    i = path_cost("inbound message", inb, n_in, n_in, vi, dur_in, "", webhook_requests=n_in, measured=units_in, **kw)
    o = path_cost("outbound", out, n_out, n_out + webhooks, vo, dur_out, "", webhook_requests=webhooks, measured=units_out, **kw)
    return (f"| {label} | {money(i['total'])} | {money(o['total'])} | {o['total'] / (TWILIO_PER_MESSAGE * 1e6) * 100:.2f} % |"
            f" {'met' if i['total'] < TARGET_PER_MILLION else '**missed**'} / {'met' if o['total'] < TARGET_PER_MILLION else '**missed**'} |")

full_in = dict(inv_in, **{"inbound-processor": math.ceil(n_in / 10)})
full_out = dict(inv_out, **{"deliver-worker": math.ceil(n_out / 10), "inbound-processor": math.ceil(webhooks / 10)})
one_in = dict(inv_in, **{"inbound-processor": n_in})
one_out = dict(inv_out, **{"deliver-worker": n_out, "inbound-processor": webhooks})
cost += [
    "**Where a design choice moves the cost** (AWS $ per million; one change at a time from the row *as built*; the"
    " processor's duration per batch is kept, which favours batch size 1 a little):",
    "",
    "| design | inbound message | outbound message + 3 webhooks | outbound as % of a BSP's $0.005 | < $5 (in / out) |",
    "| --- | ---: | ---: | ---: | --- |",
    variant("as built: HTTP API, FIFO queues, batches as they came in this run, DynamoDB on-demand"),
    variant("Lambda function URL for Meta's webhooks only (the template's `WebhookEndpoint=FunctionUrl`: signature-checked in the function anyway); client routes stay on the HTTP API",
            webhook_api_price="function_url_request"),
    variant("Lambda function URLs for every route (no per-request fee; no routes, throttling or authorizers at the edge)", api_price="function_url_request"),
    variant("API Gateway REST API instead of HTTP API", api_price="rest_api_request"),
    variant("full SQS batches of 10 for both workers (what a busy queue gives: invocations, receives and deletes per 10)",
            inv_in=full_in, inv_out=full_out, esm_batch=10),
    variant("batch size 1 (one invocation, receive and delete per event)", inv_in=one_in, inv_out=one_out, esm_batch=1),
    variant("standard queues instead of FIFO (no per-customer ordering: the domain would have to reorder)", sqs_price="sqs_standard_request"),
    variant("DynamoDB provisioned, fully used at a steady rate", ddb="provisioned", util=1.0),
    variant("DynamoDB provisioned, 30 % used (bursts, autoscaling headroom)", ddb="provisioned", util=0.3),
    variant("arm64 (Graviton) Lambdas instead of x86_64 (GB-s 20 % cheaper; the same requests)", arch="arm"),
    variant("all of: `WebhookEndpoint=FunctionUrl`, full batches of 10, arm64 (the template's default Arch; FIFO and on-demand kept)",
            webhook_api_price="function_url_request", inv_in=full_in, inv_out=full_out, esm_batch=10, arch="arm"),
    variant("all of: function URLs everywhere, full batches of 10, arm64, DynamoDB provisioned fully used",
            api_price="function_url_request", inv_in=full_in, inv_out=full_out, esm_batch=10, arch="arm", ddb="provisioned", util=1.0),
]

# Where the requests go: per message of each path, by function and operation, as counted.
def op_rows(path, phase, units, uphase):
    rows_ = []
    un = uphase.get("messages") or uphase.get("sends")
    for fn, ops in sorted(phase["aws"].items()):
        for op, c in sorted(ops.items()):
            n = c["non_empty"] if op == "sqs:ReceiveMessage" else c["requests"]
            if n == 0:
                continue
            label = op + (" (non-empty)" if op == "sqs:ReceiveMessage" else "")
            m = uphase["aws"].get(fn, {}).get(op)
            wu = f"{m['table_wru'] / un:.2f} + {m['index_wru'] / un:.2f}" if m and op.startswith("dynamodb:") else ""
            ru = f"{m['rru'] / un:.2f}" if m and op.startswith("dynamodb:") else ""
            rows_.append(f"| {path} | {fn} | `{label}` | {n / units:.2f} | {c['req_bytes'] / max(c['requests'], 1):,.0f} | {wu} | {ru} |")
    return rows_
cost += [
    "",
    "**Where the requests go** (per message, as counted in the run; `event-source-mapping` is the SQS → Lambda poller,"
    " billed like any SQS client; bytes: the mean request on the wire; write units (table + `gsi1` index) and read units"
    " per message, as measured in the units phase):",
    "",
    "| path | function | operation | requests per message | bytes per request | WRU (table + index) | RRU |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: |",
] + op_rows("inbound", inb, n_in, u["inbound"]) + op_rows("outbound + 3 webhooks", out, n_out, u["outbound"])

# The verdict, from the figures above.
best_o = path_cost("outbound", out, n_out, n_out + webhooks, full_out, dur_out, "", webhook_requests=webhooks,
                   webhook_api_price="function_url_request", esm_batch=10, arch="arm", measured=units_out)
floor_o = path_cost("outbound", out, n_out, n_out + webhooks, full_out, dur_out, "", webhook_requests=webhooks,
                    api_price="function_url_request", esm_batch=10, arch="arm", ddb="provisioned", util=1.0,
                    measured=units_out)
cost += ["", "**Verdict against the issue's \"under $5 of AWS per million messages all-in\"** (computed from the tables above):", ""]
for p in rows:
    top = sorted(p["per_million"].items(), key=lambda kv: -kv[1])
    shares = ", ".join(f"{k} {money(v)}" for k, v in top[:3])
    if p["total"] < TARGET_PER_MILLION:
        cost.append(f"- {p['name']}: {money(p['total'])} per million as built: **met** (largest shares: {shares}).")
    else:
        cost.append(f"- {p['name']}: {money(p['total'])} per million as built: **missed** (largest shares: {shares}).")
cost.append(
    f"- Why outbound misses: a send is not one message to AWS but four — the send itself and Meta's three status webhooks"
    f" (sent, delivered, read), each of which pays an API request, a Lambda invocation, a FIFO send, receive and delete, and"
    f" a DynamoDB write (the status, on the send: not indexed). Per message:"
    f" {outbound['api']:.0f} API requests, {outbound['sqs']:.1f} SQS requests, {outbound['ddb_reqs']:.1f} DynamoDB requests"
    f" ({outbound['wru']:.1f} WRU, {units_out[1]:.1f} of them index entries; {outbound['rru']:.1f} RRU)."
    f" With `WebhookEndpoint=FunctionUrl`, full batches and arm64 it is {money(best_o['total'])}"
    f" ({'met' if best_o['total'] < TARGET_PER_MILLION else 'still missed'}); with function URLs everywhere and provisioned"
    f" DynamoDB fully used as well, {money(floor_o['total'])} ({'met' if floor_o['total'] < TARGET_PER_MILLION else 'still missed'})."
    f" Either way it is {outbound['total'] / (TWILIO_PER_MESSAGE * 1e6) * 100:.2f} % of a BSP's $0.005 per message as built.")

# The floor of the outbound path: the least each step of the architecture's flow must ask of
# AWS, whatever the implementation — the send (an API request, send-api, a queued job), the
# worker (a tenth of an invocation, receive and delete in full batches; three writes: the
# send's record at send-api, the claim saved before the Graph call so two workers never both
# post it, the outcome after; one more: the message in the conversation history, which the
# read API lists), then each of the three status webhooks (an API request,
# webhook-receive, a queued event, a tenth of the processor's invocation, receive and delete;
# one write: the status). Reads, logs and GB-s beyond those measured are left out.
FLOOR_STEPS = {"api": (1, 3), "invocations": 1 + 0.1 + 3 + 3 * 0.1, "sqs": (1 + 0.2) + 3 * (1 + 0.2), "wru": 3 + 1 + 3}
def floor_cost(api_price, webhook_api_price, ddb="on-demand", util=1.0, sqs_price="sqs_fifo_request", arch="arm"):
    send_api, hooks = FLOOR_STEPS["api"]
    wru = FLOOR_STEPS["wru"]
    ddb_cost = wru * (PRICES["ddb_wru"] if ddb == "on-demand" else PRICES["ddb_wcu_hour"] / 3600 / util)
    return 1e6 * (send_api * PRICES[api_price] + hooks * PRICES[webhook_api_price]
                  + FLOOR_STEPS["invocations"] * PRICES["lambda_request"]
                  + outbound["gb_s"] * PRICES["lambda_gb_s_" + arch]
                  + FLOOR_STEPS["sqs"] * PRICES[sqs_price] + ddb_cost)
# FIFO queues throughout: the architecture's (one customer's events and sends in order).
floors = [
    ("HTTP API, DynamoDB on-demand (as built)", floor_cost("http_api_request", "http_api_request")),
    ("`WebhookEndpoint=FunctionUrl`, on-demand", floor_cost("http_api_request", "function_url_request")),
    ("function URLs everywhere, on-demand", floor_cost("function_url_request", "function_url_request")),
    ("function URLs everywhere, DynamoDB provisioned, 30 % used", floor_cost("function_url_request", "function_url_request", ddb="provisioned", util=0.3)),
    ("function URLs everywhere, DynamoDB provisioned, fully used", floor_cost("function_url_request", "function_url_request", ddb="provisioned")),
]
cost += [
    "",
    "**The floor of the outbound path** (the least the architecture's flow asks of AWS per outbound message, whatever the"
    f" implementation: {FLOOR_STEPS['api'][0] + FLOOR_STEPS['api'][1]} API requests, {FLOOR_STEPS['invocations']:.1f} Lambda"
    f" invocations in full batches, {FLOOR_STEPS['sqs']:.1f} FIFO requests, {FLOOR_STEPS['wru']} write units: the send's record, the"
    " worker's claim before the Graph call and its outcome after, the message's entry in the conversation history, one status"
    " write per webhook, none of them rewriting an index entry; reads left out; GB-s as measured;"
    " arm64). Ventana as built, against it: "
    f"{outbound['api']:.0f} API requests, {outbound['lam']:.1f} invocations, {outbound['sqs']:.1f} SQS requests, {outbound['wru']:.1f} WRU.",
    "",
    "| configuration | floor, AWS $ per million outbound messages + 3 webhooks | < $5 |",
    "| --- | ---: | --- |",
] + [f"| {label} | {money(v)} | {'reachable' if v < TARGET_PER_MILLION else '**out of reach**'} |" for label, v in floors]
e2e_s, cost_s = "\n".join(e2e), "\n".join(cost)
print(e2e_s); print(); print(cost_s)
if env["E2E_WRITE"] == "1":
    write_section("e2e:local-stack", "End to end on the local stack", e2e_s)
    write_section("cost:per-million", "Cost per million messages", cost_s)
PY
