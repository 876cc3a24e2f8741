//! Two (and four) deliver-workers together never exceed the number's rate, measured where
//! Meta would count it: at the Graph API.
//!
//! Each worker is an independent `wa_domain::outbound::deliver::Deliverer` with its own
//! `Pacer` (its own token cache, pace estimate and back-off), as separate Lambda processes
//! are. They share what the processes share in AWS: the send store (one
//! `wa_domain::testing::InMemoryStore` behind [`SharedStore`]) and the pacing store (one
//! `InMemoryPacingStore`, whose conditional lease is atomic like DynamoDB's). Not moto: its
//! conditional writes are not atomic under concurrent requests (two workers racing for the
//! same slot can both be granted), which would test moto rather than the pacer;
//! `tests/pacer.rs` covers the DynamoDB adapter with requests serialized.
//!
//! The real `wa_graph::GraphClient` posts to a `wa-sandbox` on loopback (20 ms latency) on a
//! real clock. Each worker keeps 16 `deliver()` calls in flight over a shared backlog of sends
//! to distinct customers (so no pair-rate waits), for 9 s, at limit L = 20 mps. The sandbox's
//! `received_at_ms` of each send gives: the most sends in any 1,000 ms window (contract:
//! ≤ 1.1 × L = 22) and the achieved rate after the first second (85–105 % of L).

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deliver_worker::clock::SystemClock;
use secrecy::SecretString;
use wa_domain::customer::CustomerRef;
use wa_domain::outbound::accept::{AcceptConfig, SendCall, accept};
use wa_domain::outbound::deliver::{DeliverConfig, Deliverer, JobOutcome};
use wa_domain::pacing::PacerConfig;
use wa_domain::pacing::memory::InMemoryPacingStore;
use wa_domain::pacing::pair::PairPolicy;
use wa_domain::ports::{InboundStore, SendJob};
use wa_domain::testing::{InMemoryStore, RecordingOutbound};
use wa_domain::window::WindowUpdate;
use wa_graph::{GraphClient, Timeouts};
use wa_sandbox::{Sandbox, SandboxConfig, SendOutcome};
use wa_tests::SharedStore;

const PNID: &str = "106540352242922";
const TOKEN: &str = "rate-test-token";
/// The number's limit (messages per second).
const LIMIT: u32 = 20;
/// How long the workers take new sends.
const RUN: Duration = Duration::from_secs(9);
/// `deliver()` calls each worker keeps in flight.
const IN_FLIGHT: usize = 16;
/// Sends queued: more than the run can deliver, so demand stays above L throughout.
const SENDS: usize = 320;
/// The backlog a worker reports (a batch of 10, as the SQS event source gives it).
const BACKLOG: u32 = 10;
/// The span measured for the achieved rate, after the first second.
const MEASURE_MS: u64 = 7_000;

type Engine = Deliverer<
    SharedStore<InMemoryStore>,
    Arc<InMemoryPacingStore>,
    Arc<InMemoryPacingStore>,
    GraphClient,
    SystemClock,
>;

/// What one run measured.
#[derive(Debug)]
struct Measured {
    sends: usize,
    max_in_any_second: usize,
    rate_after_first_second: f64,
    dead_lettered: usize,
}

/// N customers who wrote just now, each with one text send accepted and queued.
async fn seed(store: &SharedStore<InMemoryStore>) -> VecDeque<SendJob> {
    let now_ms = wa_domain::clock::unix_now_ms();
    let queue = RecordingOutbound::default();
    for i in 0..SENDS {
        let phone = format!("1555{:07}", 1_000_000 + i);
        let who = CustomerRef::new(None, Some(&phone)).unwrap();
        let key = store.resolve_customer(PNID, &who).await.unwrap();
        store
            .advance_window(
                PNID,
                &key,
                &who,
                &WindowUpdate::for_message(now_ms / 1000, false),
                None,
            )
            .await
            .unwrap();
        let body = serde_json::json!({
            "messaging_product": "whatsapp", "to": phone, "type": "text",
            "text": {"body": format!("rate test {i}")}
        })
        .to_string();
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let answer = accept(
            store,
            &queue,
            &AcceptConfig::default(),
            SendCall {
                phone_number_id: PNID,
                body: body.as_bytes(),
                idempotency_key: None,
                api_key_hash: "rate-test",
                now_ms,
                random,
                trace_id: "rate-test",
            },
        )
        .await
        .unwrap();
        assert_eq!(answer.http_status, 200, "{}", answer.body);
    }
    let jobs: VecDeque<SendJob> = queue.jobs().into();
    assert_eq!(jobs.len(), SENDS);
    jobs
}

/// The most values of sorted `times` in any half-open window `[t, t + width)`.
fn max_in_window(times: &[u64], width: u64) -> usize {
    let mut best = 0;
    let mut end = 0;
    for (start, &t) in times.iter().enumerate() {
        while end < times.len() && times[end] < t + width {
            end += 1;
        }
        best = best.max(end - start);
    }
    best
}

/// One worker's `IN_FLIGHT` loops: take a send, deliver it, put a deferred one back after its
/// delay (as SQS makes it visible again), until `stop_at`.
async fn worker(
    engine: Arc<Engine>,
    jobs: Arc<Mutex<VecDeque<SendJob>>>,
    dead: Arc<Mutex<Vec<String>>>,
    stop_at: tokio::time::Instant,
) {
    let mut loops = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (engine, jobs, dead) = (engine.clone(), jobs.clone(), dead.clone());
        loops.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < stop_at {
                let next = jobs.lock().unwrap().pop_front();
                let Some(job) = next else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                match engine.deliver(&job, BACKLOG).await.unwrap() {
                    JobOutcome::Done => {}
                    JobOutcome::Defer { delay_ms } => {
                        let jobs = jobs.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(delay_ms.unsigned_abs()))
                                .await;
                            jobs.lock().unwrap().push_back(job);
                        });
                    }
                    JobOutcome::DeadLetter { reason } | JobOutcome::StopSending { reason, .. } => {
                        dead.lock().unwrap().push(reason)
                    }
                }
            }
        }));
    }
    for l in loops {
        l.await.unwrap();
    }
}

/// Whether the workers share one pacing store (as they share one DynamoDB table), or each
/// has its own (the mistake the contract is about: each would keep the whole limit).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pacing {
    Shared,
    PerWorker,
}

async fn run(workers: usize, pacing_kind: Pacing, run_for: Duration) -> Measured {
    let sandbox = Sandbox::start(SandboxConfig {
        access_token: SecretString::from(TOKEN),
        latency: Duration::from_millis(20),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let store = SharedStore::new(InMemoryStore::default());
    let jobs = Arc::new(Mutex::new(seed(&store).await));
    let pacing = Arc::new(InMemoryPacingStore::default());
    let config = DeliverConfig {
        default_limit: LIMIT,
        ..DeliverConfig::default()
    };
    let dead = Arc::new(Mutex::new(Vec::new()));
    let stop_at = tokio::time::Instant::now() + run_for;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let graph = GraphClient::new(
            sandbox.url(),
            "v25.0",
            SecretString::from(TOKEN),
            Timeouts::default(),
        )
        .unwrap();
        let leases = match pacing_kind {
            Pacing::Shared => pacing.clone(),
            Pacing::PerWorker => Arc::new(InMemoryPacingStore::default()),
        };
        let engine: Arc<Engine> = Arc::new(Deliverer::new(
            store.clone(),
            leases,
            pacing.clone(),
            graph,
            SystemClock,
            config.clone(),
            PacerConfig::default(),
            PairPolicy::default(),
            0x5eed_0000 + w as u64,
        ));
        tasks.push(tokio::spawn(worker(
            engine,
            jobs.clone(),
            dead.clone(),
            stop_at,
        )));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let sends = sandbox.sends();
    let mut ids = HashSet::new();
    for s in &sends {
        assert!(
            matches!(s.outcome, SendOutcome::Accepted { .. }),
            "every send is accepted: {:?}",
            s.outcome
        );
        let id = s.callback_data().expect("callback data is the send id");
        assert!(ids.insert(id.to_owned()), "{id} posted twice");
    }
    let mut times: Vec<u64> = sends.iter().map(|s| s.received_at_ms).collect();
    times.sort_unstable();
    let first = times[0];
    let from = first + 1_000;
    let in_span = times
        .iter()
        .filter(|&&t| t >= from && t < from + MEASURE_MS)
        .count();
    sandbox.shutdown().await;
    Measured {
        sends: times.len(),
        max_in_any_second: max_in_window(&times, 1_000),
        rate_after_first_second: in_span as f64 * 1000.0 / MEASURE_MS as f64,
        dead_lettered: dead.lock().unwrap().len(),
    }
}

fn check(workers: usize, m: &Measured) {
    println!(
        "{workers} workers, L = {LIMIT} mps, {IN_FLIGHT} in flight each, {} s: {} sends; most in any 1,000 ms window: {} (bound {}); achieved rate after the first second: {:.2} mps ({:.0} % of L)",
        RUN.as_secs(),
        m.sends,
        m.max_in_any_second,
        wa_domain::pacing::window_budget(LIMIT),
        m.rate_after_first_second,
        m.rate_after_first_second * 100.0 / f64::from(LIMIT),
    );
    assert_eq!(m.dead_lettered, 0, "nothing is dead-lettered");
    assert!(
        m.max_in_any_second as u64 <= wa_domain::pacing::window_budget(LIMIT),
        "{m:?}"
    );
    let (low, high) = (0.85 * f64::from(LIMIT), 1.05 * f64::from(LIMIT));
    assert!(
        (low..=high).contains(&m.rate_after_first_second),
        "achieved rate out of 85–105 % of L: {m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_together_never_exceed_the_numbers_rate() {
    let m = run(2, Pacing::Shared, RUN).await;
    check(2, &m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_together_never_exceed_the_numbers_rate() {
    let m = run(4, Pacing::Shared, RUN).await;
    check(4, &m);
}

/// The measurement can fail: two workers that do not share their slot counters each keep
/// the whole limit, and the sandbox sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_that_do_not_share_the_pacing_store_are_caught_exceeding_it() {
    let m = run(2, Pacing::PerWorker, Duration::from_secs(3)).await;
    println!(
        "control, 2 workers with a pacing store each: most in any 1,000 ms window: {}",
        m.max_in_any_second
    );
    assert!(
        m.max_in_any_second as u64 > wa_domain::pacing::window_budget(LIMIT),
        "{m:?}"
    );
}

#[test]
fn the_window_count_sees_every_sliding_window() {
    assert_eq!(max_in_window(&[], 1_000), 0);
    assert_eq!(max_in_window(&[0, 999, 1_000, 1_999], 1_000), 2);
    assert_eq!(max_in_window(&[0, 500, 999, 1_000, 1_001], 1_000), 4);
}
