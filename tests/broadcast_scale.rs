//! The 100,000-recipient broadcast (issue 4, performance): how long planning and queuing a big
//! broadcast takes on the local stack (moto), what it costs in DynamoDB and SQS requests per
//! recipient, and whether the planner's memory stays flat. Run by `scripts/broadcast_scale.sh`
//! (part of `make bench`), which writes the `broadcast-scale` section of docs/benchmarks.md.
//!
//! How it is driven: the planner's [`step`] is called **in-process**, one step after the other
//! as the step queue would deliver them (`Again { after_secs: 0 }` at once), with the real
//! adapters — `wa_dynamodb::DynamoStore` (broadcast, ledger, audience, duplicate check, sends, limit,
//! templates) and `wa_sqs::SqsOutboundQueue` (`SendMessageBatch` onto a FIFO outbound queue) —
//! whose SDK clients talk to moto through a [`CountingProxy`] (requests, items and moto's time
//! by operation). The recipients are a CSV list in moto's S3, read in pages by the planner's
//! own `wa_s3::S3RecipientSource` (ranged GETs, counted too), as an upload through
//! `POST /v1/broadcasts/uploads` would be. The broadcast is all at once, on an unlimited tier
//! (no limit reservations).
//!
//! Reported (`BROADCAST_SCALE_JSON {…}` on stdout): the wall time until every recipient is
//! queued (import + plan), recipients/s, requests and items per recipient by operation with
//! moto's share of the time, and the process's `VmRSS` at every step (`VmHWM` at the end),
//! with the queue depth, so that growth with the list or with moto's FIFO queue shows, and
//! the CPU time this process (the planner, the proxy, the SDK) and moto used during the run;
//! then the floor ([`floor`]): moto's CPU for only a send item and a queue message per
//! recipient, measured after the run on the same moto.
//!
//! Without `VENTANA_BROADCAST_SCALE` (the number of recipients) the test returns at once:
//! `make test` runs ignored tests too.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test file: helpers panic with the reason

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};
use wa_domain::broadcast::planner::{Deps, PlannerConfig, StepResult, step};
use wa_domain::broadcast::{
    Broadcast, BroadcastId, BroadcastState, BroadcastStore, Counts, OutboundBatch, RecipientList,
    Release, TemplateRef,
};
use wa_domain::model::MessagingLimit;
use wa_domain::outbound::{SendId, SendRecord};
use wa_domain::ports::Clock;
use wa_domain::ports::SendJob;
use wa_dynamodb::DynamoStore;
use wa_tests::counting_proxy::{CountingProxy, OpCount, diff};
use wa_tests::{config_for, fresh_outbound_queue, fresh_table, moto_endpoint};

const PN: &str = "106540352242922";
struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        wa_domain::clock::unix_now_ms()
    }

    async fn sleep_until(&self, until_ms: i64) {
        let wait = until_ms.saturating_sub(self.now_ms());
        if wait > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(wait.unsigned_abs())).await;
        }
    }
}

/// `(VmRSS, VmHWM)` of this process in KiB.
/// CPU seconds (user + system) used so far by process `pid` (`self` for this one), from
/// `/proc/<pid>/stat` at Linux's 100 ticks a second; `None` when it cannot be read.
fn cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The recipient list: `to,body.1`, one row per customer.
fn list(n: usize) -> Vec<u8> {
    let mut csv = b"to,body.1\n".to_vec();
    for i in 0..n {
        csv.extend_from_slice(format!("1555{i:07},Customer {i}\n").as_bytes());
    }
    csv
}

fn total(ops: &BTreeMap<String, OpCount>, prefix: &str) -> OpCount {
    ops.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .fold(OpCount::default(), |a, (_, c)| OpCount {
            requests: a.requests + c.requests,
            items: a.items + c.items,
            upstream_us: a.upstream_us + c.upstream_us,
            ..a
        })
}

/// The floor of planning on this moto: only what no design of the planner can leave out —
/// one send item and one queue message per recipient — written in full batches through the
/// same adapters, after the run, on the same moto (its table and queue as the run left
/// them). `n` sends shaped like the broadcast's first ones (fresh ids), three times; moto's
/// least CPU over the rounds for each part.
async fn floor(
    store: &DynamoStore,
    outbound: &wa_sqs::SqsOutboundQueue,
    id: &BroadcastId,
    n: usize,
    moto_pid: &str,
) -> Value {
    let ids: Vec<SendId> = store
        .entries(id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.send_id)
        .collect();
    let models: Vec<SendRecord> = store
        .get_sends(&ids)
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert!(!models.is_empty(), "the run's sends are readable");
    // Three rounds of `n` fresh sends each; the least CPU of the rounds is the floor (load
    // from other work on this shared machine only ever adds to it).
    let mut best: Option<(f64, f64)> = None;
    let mut rounds = Vec::new();
    for round in 0..3u8 {
        let now_ms = SystemClock.now_ms();
        let sends: Vec<SendRecord> = (0..n)
            .map(|k| {
                let mut rnd = [0xF0 | round; 10];
                rnd[..8].copy_from_slice(&(k as u64).to_be_bytes());
                SendRecord {
                    id: SendId::new(now_ms, rnd),
                    ..models[k % models.len()].clone()
                }
            })
            .collect();
        let c0 = cpu_s(moto_pid);
        for page in sends.chunks(100) {
            store.create_sends(page, true).await.unwrap();
        }
        let c1 = cpu_s(moto_pid);
        for page in sends.chunks(100) {
            let jobs: Vec<SendJob> = page.iter().map(SendJob::for_send).collect();
            outbound.enqueue_batch(&jobs).await.unwrap();
        }
        let c2 = cpu_s(moto_pid);
        let (Some(c0), Some(c1), Some(c2)) = (c0, c1, c2) else {
            return json!({"n": n});
        };
        rounds.push(json!({"sends_cpu_s": c1 - c0, "jobs_cpu_s": c2 - c1}));
        best = Some(best.map_or((c1 - c0, c2 - c1), |(s, j)| {
            (s.min(c1 - c0), j.min(c2 - c1))
        }));
    }
    json!({
        "n": n, "rounds": rounds,
        "sends_cpu_s": best.map(|b| b.0), "jobs_cpu_s": best.map(|b| b.1),
    })
}

/// The ledger's first partition as stored: its items, the entries they hold and their size
/// (attribute names and string values, as DynamoDB counts them, near enough), so what a
/// page write costs in write units is known (settling rewrites each page once more).
async fn ledger_item_sizes(raw: &aws_sdk_dynamodb::Client, table: &str, id: &BroadcastId) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue;
    let r = raw
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("BCASTL#{id}#0")))
        .send()
        .await
        .unwrap();
    let items = r.items.unwrap_or_default();
    let bytes: usize = items
        .iter()
        .flat_map(|i| i.iter())
        .map(|(k, v)| k.len() + v.as_s().map_or(8, String::len))
        .sum();
    let entries: u64 = items
        .iter()
        .map(|i| {
            i.get("count")
                .and_then(|c| c.as_n().ok())
                .and_then(|c| c.parse::<u64>().ok())
                .unwrap_or(1)
        })
        .sum();
    json!({"items": items.len(), "entries": entries, "bytes": bytes})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/broadcast_scale.sh (needs moto)"]
async fn a_big_broadcast_is_planned_and_queued_with_flat_memory() {
    let Some(n) = std::env::var("VENTANA_BROADCAST_SCALE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        eprintln!(
            "skipped: a benchmark run by scripts/broadcast_scale.sh (VENTANA_BROADCAST_SCALE unset)"
        );
        return;
    };
    let csv = list(n);
    let csv_bytes = csv.len() as u64;

    let (observer, raw, table) = fresh_table().await;
    let q = fresh_outbound_queue().await;
    let proxy = CountingProxy::start(&moto_endpoint()).await;
    let counted = config_for(&proxy.endpoint).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&counted), &table);
    let outbound = wa_sqs::SqsOutboundQueue::new(aws_sdk_sqs::Client::new(&counted), &q.url);
    // The list in moto's S3 (put uncounted), read by the planner's S3 source through the proxy.
    let s3_setup = wa_s3::client(&config_for(&moto_endpoint()).await);
    let bucket = wa_tests::aws::unique_name("scale")
        .to_ascii_lowercase()
        .replace('_', "-");
    s3_setup
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let key = format!("uploads/{PN}/recipients.csv");
    s3_setup
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .body(aws_sdk_s3::primitives::ByteStream::from(csv))
        .send()
        .await
        .unwrap();
    let source = wa_s3::S3RecipientSource::new(wa_s3::client(&counted));
    let clock = SystemClock;
    let deps = Deps {
        store: &store,
        limits: &store,
        templates: &store,
        source: &source,
        outbound: &outbound,
        clock: &clock,
    };
    // Unpaced: how fast the planner itself can plan and queue (by default a job queues only
    // 30 s of its number's sending ahead, 80 a second: 100,000 would take 21 minutes).
    let cfg = PlannerConfig {
        default_tier: MessagingLimit::Unlimited,
        queue_ahead_secs: 0,
        ..PlannerConfig::default()
    };

    let now_ms = clock.now_ms();
    let id = BroadcastId::new(now_ms, [7; 10]);
    let b = Broadcast {
        id: id.clone(),
        phone_number_id: PN.into(),
        waba_id: format!("pn:{PN}"),
        template: TemplateRef {
            name: "summer_sale".into(),
            language: "en_US".into(),
        },
        require_opt_in: false,
        release: Release::ALL_AT_ONCE,
        state: BroadcastState::Running,
        source: Some(RecipientList { bucket, key }),
        import_cursor: None,
        imported: false,
        total: 0,
        released: 0,
        next_release_at: now_ms / 1000,
        cursor: 0,
        limit_wait_until: None,
        settled: 0,
        counts: Counts::default(),
        chain: 1,
        page_claim: None,
        paced_until_ms: 0,
        created_at_ms: now_ms,
        completed_at: None,
        expires_at: now_ms / 1000 + 86_400,
        version: 0,
    };
    observer.create_broadcast(&b).await.unwrap();

    // With VENTANA_BROADCAST_SCALE_DRAIN set, a consumer (standing in for the deliver-worker's
    // event source mapping) receives and deletes the outbound messages as they come, on its
    // own uncounted client: moto scans the whole FIFO queue for every message it accepts
    // (deduplication), so a queue left to fill slows down with its depth; real SQS does not.
    let drain = std::env::var_os("VENTANA_BROADCAST_SCALE_DRAIN").is_some();
    let drained = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let cancel = tokio_util::sync::CancellationToken::new();
    let drainer = drain.then(|| {
        let (client, url, drained, cancel) = (
            q.client.clone(),
            q.url.clone(),
            drained.clone(),
            cancel.clone(),
        );
        tokio::spawn(async move {
            while !cancel.is_cancelled() {
                let r = client
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .send()
                    .await
                    .unwrap();
                let msgs = r.messages.unwrap_or_default();
                if msgs.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
                let entries = msgs
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                            .build()
                            .unwrap()
                    })
                    .collect::<Vec<_>>();
                client
                    .delete_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .unwrap();
                drained.fetch_add(msgs.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        })
    });

    let rss_start = rss_kib();
    let moto_pid = std::env::var("VENTANA_MOTO_PID").unwrap_or_default();
    let cpu_start = (cpu_s("self"), cpu_s(&moto_pid));
    let started = Instant::now();
    let mut import_s = None;
    let mut samples = Vec::new();
    let mut before = proxy.snapshot();
    let mut chain = 1;
    let mut steps = 0;
    loop {
        let t = Instant::now();
        let r = step(&deps, &cfg, &id, chain).await.unwrap();
        steps += 1;
        let step_s = t.elapsed().as_secs_f64();
        let b = observer.get_broadcast(&id).await.unwrap().unwrap();
        let now = proxy.snapshot();
        let mut d = BTreeMap::new();
        for (op, c) in &now {
            d.insert(
                op.clone(),
                c.minus(&before.get(op).copied().unwrap_or_default()),
            );
        }
        before = now;
        let (rss, hwm) = rss_kib();
        let batch = d.get("sqs:SendMessageBatch").copied().unwrap_or_default();
        let ddb = total(&d, "dynamodb:");
        samples.push(json!({
            "t_s": started.elapsed().as_secs_f64(), "step_s": step_s,
            "imported": b.total, "queued": b.counts.queued, "cursor": b.cursor,
            "drained": drained.load(std::sync::atomic::Ordering::Relaxed),
            "rss_kib": rss, "hwm_kib": hwm,
            "sqs_batches": batch.requests, "sqs_ms": batch.upstream_us as f64 / 1e3,
            "ddb_requests": ddb.requests, "ddb_ms": ddb.upstream_us as f64 / 1e3,
        }));
        eprintln!(
            "step {steps}: {:.1} s, total {}, cursor {}, queued {}, RSS {} KiB, SendMessageBatch {:.1} ms/req, DynamoDB {:.1} ms/req",
            started.elapsed().as_secs_f64(),
            b.total,
            b.cursor,
            b.counts.queued,
            rss,
            batch.upstream_us as f64 / 1e3 / batch.requests.max(1) as f64,
            ddb.upstream_us as f64 / 1e3 / ddb.requests.max(1) as f64,
        );
        if b.imported && import_s.is_none() {
            import_s = Some(started.elapsed().as_secs_f64());
        }
        if b.imported && b.cursor >= b.total {
            break;
        }
        match r {
            StepResult::Again {
                after_secs,
                chain: c,
            } => {
                assert_eq!(
                    after_secs, 0,
                    "an all-at-once unlimited broadcast never waits"
                );
                chain = c;
            }
            StepResult::Idle => panic!("the planner went idle before every recipient was planned"),
        }
    }
    let wall_s = started.elapsed().as_secs_f64();
    let cpu_end = (cpu_s("self"), cpu_s(&moto_pid));
    let (rss_end, hwm_end) = rss_kib();
    let ops = proxy.snapshot();
    cancel.cancel();
    if let Some(d) = drainer {
        d.await.unwrap();
    }
    let drained = drained.load(std::sync::atomic::Ordering::Relaxed);

    // What was planned is what was asked: every recipient queued once, the queue holds them.
    let b = observer.get_broadcast(&id).await.unwrap().unwrap();
    assert_eq!(b.total, n as u64);
    assert_eq!(b.counts.queued, n as u64, "counts: {:?}", b.counts);
    let depth: u64 = q
        .client
        .get_queue_attributes()
        .queue_url(&q.url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default()
        .values()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(depth + drained, n as u64, "outbound queue depth + drained");
    let tail = observer.entries(&id, n as u64 - 3, 10).await.unwrap();
    assert_eq!(tail.len(), 3);
    assert!(tail.iter().all(|e| e.send_id.is_some()));

    let floor = floor(&store, &outbound, &id, n.min(10_000), &moto_pid).await;
    let ledger = ledger_item_sizes(&raw, &table, &id).await;

    let per_op: serde_json::Map<String, Value> = diff(&ops, &BTreeMap::new())
        .as_object()
        .cloned()
        .unwrap_or_default();
    let ddb = total(&ops, "dynamodb:");
    let sqs = total(&ops, "sqs:");
    let out = json!({
        "recipients": n, "csv_bytes": csv_bytes, "steps": steps,
        "config": {"page": cfg.page, "import_page": cfg.import_page, "pages_per_step": cfg.pages_per_step, "queue_ahead_secs": cfg.queue_ahead_secs},
        "wall_s": wall_s, "import_s": import_s.unwrap_or(wall_s), "plan_s": wall_s - import_s.unwrap_or(wall_s),
        "recipients_per_s": n as f64 / wall_s,
        "moto_ms": {"dynamodb": ddb.upstream_us as f64 / 1e3, "sqs": sqs.upstream_us as f64 / 1e3},
        "ops": per_op,
        "rss_start_kib": rss_start.0, "rss_end_kib": rss_end, "hwm_start_kib": rss_start.1, "hwm_end_kib": hwm_end,
        "queue_depth": depth, "drained": drained, "drain": drain,
        "cpu_s": {
            "planner": cpu_end.0.zip(cpu_start.0).map(|(e, s)| e - s),
            "moto": cpu_end.1.zip(cpu_start.1).map(|(e, s)| e - s),
        },
        "samples": samples,
        "floor": floor,
        "ledger_items": ledger,
    });
    println!("BROADCAST_SCALE_JSON {out}");
}
