//! The 100,000-recipient broadcast (issue 4, performance): how long planning and queuing a big
//! broadcast takes on the local stack (moto), what it costs in DynamoDB and SQS requests per
//! recipient, and whether the planner's memory stays flat. Run by `scripts/broadcast_scale.sh`
//! (part of `make bench`), which writes the `broadcast-scale` section of docs/benchmarks.md.
//!
//! How it is driven: the planner's [`step`] is called **in-process**, one step after the other
//! as the step queue would deliver them (`Again { after_secs: 0 }` at once), with the real
//! adapters — `wa_dynamodb::DynamoStore` (broadcast, ledger, claims, audience, sends, limit,
//! templates) and `wa_sqs::SqsOutboundQueue` (`SendMessageBatch` onto a FIFO outbound queue) —
//! whose SDK clients talk to moto through a [`CountingProxy`] (requests, items and moto's time
//! by operation). The recipients come from a CSV file on local disk read in pages by the
//! domain's CSV [`Decoder`] from a byte-offset cursor (a [`RecipientSource`] standing in for
//! the S3 source, which was not on main when this was written). The broadcast is all at once,
//! on an unlimited tier (no limit reservations).
//!
//! Reported (`BROADCAST_SCALE_JSON {…}` on stdout): the wall time until every recipient is
//! queued (import + plan), recipients/s, requests and items per recipient by operation with
//! moto's share of the time, and the process's `VmRSS` at every step (`VmHWM` at the end),
//! with the queue depth, so that growth with the list or with moto's FIFO queue shows.
//!
//! Without `VENTANA_BROADCAST_SCALE` (the number of recipients) the test returns at once:
//! `make test` runs ignored tests too.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test file: helpers panic with the reason

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};
use wa_domain::broadcast::csv::{Decoder, Position};
use wa_domain::broadcast::planner::{Deps, PlannerConfig, StepResult, step};
use wa_domain::broadcast::{
    Broadcast, BroadcastId, BroadcastState, BroadcastStore, Counts, RecipientList, RecipientPage,
    RecipientSource, Release, TemplateRef,
};
use wa_domain::model::MessagingLimit;
use wa_domain::ports::{Clock, StoreError};
use wa_dynamodb::DynamoStore;
use wa_tests::counting_proxy::{CountingProxy, OpCount, diff};
use wa_tests::{config_for, fresh_outbound_queue, fresh_table, moto_endpoint};

const PN: &str = "106540352242922";
/// Bytes read from the file at a time.
const READ_CHUNK: usize = 64 * 1024;

/// A recipient list in a local CSV file, read in pages from a `"{offset}:{line}"` cursor.
struct CsvFileSource {
    path: PathBuf,
}

fn unreadable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("recipient file: {e}"))
}

impl CsvFileSource {
    fn page_sync(
        &self,
        cursor: Option<&str>,
        max_rows: usize,
    ) -> Result<RecipientPage, StoreError> {
        let mut file = std::fs::File::open(&self.path).map_err(unreadable)?;
        let mut buf = vec![0u8; READ_CHUNK];
        // The header is read again from the start of the file each page: a cursor is only a
        // position, as it would be in S3.
        let mut dec = Decoder::new();
        let mut eof = false;
        let mut first = None;
        while dec.header().is_none() && !eof {
            let n = file.read(&mut buf).map_err(unreadable)?;
            eof = n == 0;
            dec.feed(&buf[..n]);
            if let Some(r) = dec.next_row(eof).map_err(unreadable)? {
                first = Some(r.row);
            }
        }
        let header = dec
            .header()
            .cloned()
            .ok_or_else(|| unreadable("no header"))?;
        let mut rows = Vec::with_capacity(max_rows);
        if let Some(c) = cursor {
            let pos = Position::from_cursor(c).ok_or_else(|| unreadable("bad cursor"))?;
            dec = Decoder::resume(header, pos);
            file.seek(SeekFrom::Start(pos.offset)).map_err(unreadable)?;
            eof = false;
        } else if let Some(r) = first {
            rows.push(r);
        }
        while rows.len() < max_rows {
            match dec.next_row(eof).map_err(unreadable)? {
                Some(r) => rows.push(r.row),
                None if eof => break,
                None => {
                    let n = file.read(&mut buf).map_err(unreadable)?;
                    eof = n == 0;
                    dec.feed(&buf[..n]);
                }
            }
        }
        let next_cursor = (rows.len() == max_rows).then(|| dec.position().to_cursor());
        Ok(RecipientPage { rows, next_cursor })
    }
}

impl RecipientSource for CsvFileSource {
    async fn page(
        &self,
        _list: &RecipientList,
        cursor: Option<&str>,
        max_rows: usize,
    ) -> Result<RecipientPage, StoreError> {
        self.page_sync(cursor, max_rows)
    }
}

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

fn write_list(path: &PathBuf, n: usize) {
    let mut w = BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(w, "to,body.1").unwrap();
    for i in 0..n {
        writeln!(w, "1555{i:07},Customer {i}").unwrap();
    }
    w.flush().unwrap();
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
    let dir = std::env::temp_dir().join(format!("ventana-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("recipients.csv");
    write_list(&csv, n);
    let csv_bytes = std::fs::metadata(&csv).unwrap().len();

    let (observer, _, table) = fresh_table().await;
    let q = fresh_outbound_queue().await;
    let proxy = CountingProxy::start(&moto_endpoint()).await;
    let counted = config_for(&proxy.endpoint).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&counted), &table);
    let outbound = wa_sqs::SqsOutboundQueue::new(aws_sdk_sqs::Client::new(&counted), &q.url);
    let source = CsvFileSource { path: csv.clone() };
    let clock = SystemClock;
    let deps = Deps {
        store: &store,
        limits: &store,
        templates: &store,
        source: &source,
        outbound: &outbound,
        clock: &clock,
    };
    let cfg = PlannerConfig {
        default_tier: MessagingLimit::Unlimited,
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
        source: Some(RecipientList {
            bucket: "local".into(),
            key: csv.display().to_string(),
        }),
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

    let per_op: serde_json::Map<String, Value> = diff(&ops, &BTreeMap::new())
        .as_object()
        .cloned()
        .unwrap_or_default();
    let ddb = total(&ops, "dynamodb:");
    let sqs = total(&ops, "sqs:");
    let out = json!({
        "recipients": n, "csv_bytes": csv_bytes, "steps": steps,
        "config": {"page": cfg.page, "import_page": cfg.import_page, "pages_per_step": cfg.pages_per_step},
        "wall_s": wall_s, "import_s": import_s.unwrap_or(wall_s), "plan_s": wall_s - import_s.unwrap_or(wall_s),
        "recipients_per_s": n as f64 / wall_s,
        "moto_ms": {"dynamodb": ddb.upstream_us as f64 / 1e3, "sqs": sqs.upstream_us as f64 / 1e3},
        "ops": per_op,
        "rss_start_kib": rss_start.0, "rss_end_kib": rss_end, "hwm_start_kib": rss_start.1, "hwm_end_kib": hwm_end,
        "queue_depth": depth, "drained": drained, "drain": drain,
        "samples": samples,
    });
    println!("BROADCAST_SCALE_JSON {out}");
    std::fs::remove_dir_all(&dir).ok();
}
