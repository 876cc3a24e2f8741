//! Outbound performance (issue 3), measured on what the Lambdas run:
//!
//! 1. **Throughput of the deliver-worker engine**: [`Deliverer`] (the engine of
//!    `functions/deliver-worker`) with the real [`GraphClient`] against a `wa-sandbox` on
//!    loopback that answers in 50 ms, at a limit of 1,000 messages/s, distinct customers (the
//!    pair rate never binds); once as one engine with many deliveries in flight, once as a
//!    fleet of engines with a batch of 10 each (what Lambda instances are).
//! 2. **Pacing accuracy** at 80 messages/s with 1, 2 and 4 engines sharing one pacing store:
//!    the achieved rate and the most sends the sandbox received in any 1-second window.
//! 3. **send-api's handler latency**: `send_api::handler::handle` on API Gateway events built
//!    from `events/send-api/text.json`, without and with an `Idempotency-Key`.
//!
//! The stores are the in-memory fakes (`InMemoryStore`, `InMemoryPacingStore`, and
//! `RecordingOutbound` for send-api): DynamoDB under moto would measure moto (a
//! single-threaded Python server), not Ventana. Status webhooks are off.
//!
//! `scripts/bench.sh --outbound` runs it (`cargo bench -p wa-tests --bench outbound`) and
//! writes the report it prints between `=== outbound report begin/end ===` into
//! `docs/benchmarks.md`. `VENTANA_BENCH_QUICK=1`: 10 s pacing runs instead of 60 s, and
//! fewer send-api requests.

use std::error::Error;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deliver_worker::clock::SystemClock;
use lambda_http::Body;
use secrecy::SecretString;
use send_api::handler::{Deps, handle};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use wa_domain::auth::hash_key;
use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::outbound::GraphOutcome;
use wa_domain::outbound::accept::{AcceptConfig, SendCall, accept};
use wa_domain::outbound::deliver::{DeliverConfig, Deliverer, JobOutcome};
use wa_domain::pacing::memory::InMemoryPacingStore;
use wa_domain::pacing::pair::PairPolicy;
use wa_domain::pacing::{PacerConfig, PacerStats, window_budget};
use wa_domain::ports::{
    ApiKeyStore, GraphSender, InboundStore, KeyScope, OutboundQueue, QueueError, SendJob,
};
use wa_domain::testing::{InMemoryStore, RecordingOutbound};
use wa_domain::window::WindowUpdate;
use wa_graph::{GraphClient, Timeouts};
use wa_sandbox::{Sandbox, SandboxConfig, SandboxHandle, SendOutcome};

type BoxError = Box<dyn Error + Send + Sync>;

/// The business number every send goes out from (the one in `events/send-api/*.json`).
const PNID: &str = "106540352242922";
const TOKEN: &str = "bench-access-token";
const API_KEY: &str = "test-api-key";
/// How long the sandbox takes to answer a send (about what Meta takes).
const GRAPH_LATENCY: Duration = Duration::from_millis(50);
/// What a Lambda instance of the deliver-worker holds at once: one SQS batch.
const LAMBDA_BATCH: usize = 10;
/// Sends delivered before the measured window opens (connections, pacer's pace estimate).
const WARM_UP: Duration = Duration::from_secs(1);

/// The real Graph client, with the time of each call added up (two `Instant::now()` per call).
struct Timed {
    client: GraphClient,
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl GraphSender for Timed {
    async fn post_message(&self, phone_number_id: &str, body: &Value) -> GraphOutcome {
        let start = Instant::now();
        let outcome = self.client.post_message(phone_number_id, body).await;
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(ns, Ordering::Relaxed);
        outcome
    }
}

/// A queue that keeps every job, for preparing sends (`RecordingOutbound` deduplicates with
/// a linear scan, quadratic over thousands of sends).
#[derive(Default)]
struct Collect(Mutex<Vec<SendJob>>);

impl OutboundQueue for Collect {
    async fn enqueue(&self, job: &SendJob) -> Result<(), QueueError> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(job.clone());
        Ok(())
    }
}

type Engine = Deliverer<
    InMemoryStore,
    Arc<InMemoryPacingStore>,
    Arc<InMemoryPacingStore>,
    Timed,
    SystemClock,
>;

/// SplitMix64: distinct, well-spread 80-bit ids without a dependency.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> [u8; 10] {
        let mut out = [0u8; 10];
        for chunk in out.chunks_mut(5) {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_be_bytes()[..chunk.len()]);
        }
        out
    }
}

fn customer_phone(n: usize) -> String {
    format!("5511{n:08}")
}

fn graph_client(sandbox: &SandboxHandle) -> Result<GraphClient, BoxError> {
    Ok(GraphClient::new(
        sandbox.url(),
        "v25.0",
        SecretString::from(TOKEN),
        Timeouts::default(),
    )?)
}

fn new_engine(
    sandbox: &SandboxHandle,
    pacing: &Arc<InMemoryPacingStore>,
    limit: u32,
    seed: u64,
) -> Result<Engine, BoxError> {
    Ok(Deliverer::new(
        InMemoryStore::default(),
        Arc::clone(pacing),
        Arc::clone(pacing),
        Timed {
            client: graph_client(sandbox)?,
            calls: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        },
        SystemClock,
        DeliverConfig {
            default_limit: limit,
            ..DeliverConfig::default()
        },
        PacerConfig::default(),
        PairPolicy::default(),
        seed,
    ))
}

/// `count` text sends to distinct customers (`first..first + count`), each with an open
/// window, accepted as send-api accepts them, in the engine's store.
async fn prepare(
    engine: &Engine,
    first: usize,
    count: usize,
    ids: &mut Ids,
) -> Result<Vec<SendJob>, BoxError> {
    let store = engine.store();
    let queue = Collect::default();
    let now_ms = wa_domain::clock::unix_now_ms();
    let config = AcceptConfig::default();
    for n in first..first + count {
        let phone = customer_phone(n);
        let who = CustomerRef::new(None, Some(&phone)).ok_or("no customer ref")?;
        store
            .advance_window(
                PNID,
                &CustomerKey::Phone(phone.clone()),
                &who,
                &WindowUpdate::for_message(now_ms / 1000 - 60, false),
                None,
            )
            .await?;
        let body = serde_json::to_vec(&json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": phone,
            "type": "text", "text": {"preview_url": false, "body": "Your order shipped."}
        }))?;
        let answer = accept(
            store,
            &queue,
            &config,
            SendCall {
                phone_number_id: PNID,
                body: &body,
                idempotency_key: None,
                api_key_hash: "bench",
                now_ms,
                random: ids.next(),
                trace_id: "bench",
            },
        )
        .await?;
        if answer.http_status != 200 {
            return Err(format!("send {n} not accepted: {}", answer.body).into());
        }
    }
    Ok(std::mem::take(
        &mut *queue.0.lock().unwrap_or_else(PoisonError::into_inner),
    ))
}

/// What the deliveries of one run answered.
#[derive(Debug, Default)]
struct Tally {
    done: u64,
    deferred: u64,
    dead_lettered: u64,
    store_errors: u64,
    /// Tasks that found no send left to deliver (the run was under-provisioned).
    ran_out: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.done += o.done;
        self.deferred += o.deferred;
        self.dead_lettered += o.dead_lettered;
        self.store_errors += o.store_errors;
        self.ran_out += o.ran_out;
    }
}

/// One delivery run and what the sandbox saw of it.
struct Run {
    engines: usize,
    in_flight: usize,
    measured: Duration,
    /// Accepted sends received within the measured window.
    measured_sends: usize,
    /// Every accepted send of the run (warm-up included).
    all_sends: usize,
    /// Requests the sandbox did not accept (should be none).
    other_outcomes: usize,
    max_in_1s: usize,
    pacer: PacerStats,
    store_requests: u64,
    graph_rtt_ms: f64,
    tally: Tally,
}

impl Run {
    fn rate(&self) -> f64 {
        self.measured_sends as f64 / self.measured.as_secs_f64()
    }
}

/// Runs `engines` engines of limit `limit`, sharing one pacing store, each with `in_flight`
/// concurrent `deliver()` calls passing `backlog`, for [`WARM_UP`] then `measured`.
async fn run(
    sandbox: &SandboxHandle,
    engines: usize,
    in_flight: usize,
    backlog: u32,
    limit: u32,
    measured: Duration,
    first_customer: usize,
) -> Result<Run, BoxError> {
    let pacing = Arc::new(InMemoryPacingStore::default());
    let total = WARM_UP + measured;
    // Each engine can post at most in_flight / latency sends per second, and the fleet at
    // most the window budget: enough sends for that, plus a fifth.
    let per_engine_rate =
        (in_flight as f64 / GRAPH_LATENCY.as_secs_f64()).min(window_budget(limit) as f64 * 1.1);
    let per_engine = (per_engine_rate * total.as_secs_f64() * 1.2).ceil() as usize;
    let mut ids = Ids(first_customer as u64 ^ 0x5EED);
    let mut prepared = Vec::new();
    for e in 0..engines {
        let engine = new_engine(sandbox, &pacing, limit, 17 + e as u64)?;
        let jobs = prepare(
            &engine,
            first_customer + e * per_engine,
            per_engine,
            &mut ids,
        )
        .await?;
        prepared.push((Arc::new(engine), Arc::new(jobs)));
    }
    sandbox.clear_sends();
    let start = Instant::now();
    let start_ms = wa_domain::clock::unix_now_ms();
    let stop = start + total;
    let mut tasks = JoinSet::new();
    for (engine, jobs) in &prepared {
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..in_flight {
            let (engine, jobs, next) = (Arc::clone(engine), Arc::clone(jobs), Arc::clone(&next));
            tasks.spawn(async move {
                let mut t = Tally::default();
                while Instant::now() < stop {
                    let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        t.ran_out += 1;
                        break;
                    };
                    match engine.deliver(job, backlog).await {
                        Ok(JobOutcome::Done) => t.done += 1,
                        Ok(JobOutcome::Defer { .. }) => t.deferred += 1,
                        Ok(JobOutcome::DeadLetter { .. } | JobOutcome::StopSending { .. }) => {
                            t.dead_lettered += 1
                        }
                        Err(_) => t.store_errors += 1,
                    }
                }
                t
            });
        }
    }
    let mut tally = Tally::default();
    while let Some(t) = tasks.join_next().await {
        tally.add(&t?);
    }
    let window_start = start_ms + i64::try_from(WARM_UP.as_millis())?;
    let window_end = start_ms + i64::try_from(total.as_millis())?;
    let mut times = Vec::new();
    let mut other_outcomes = 0;
    for s in sandbox.sends() {
        match s.outcome {
            SendOutcome::Accepted { .. } => times.push(i64::try_from(s.received_at_ms)?),
            _ => other_outcomes += 1,
        }
    }
    times.sort_unstable();
    let measured_sends = times
        .iter()
        .filter(|&&t| t >= window_start && t < window_end)
        .count();
    let mut pacer = PacerStats::default();
    let (mut calls, mut nanos) = (0u64, 0u64);
    for (engine, _) in &prepared {
        let s = engine.pacer().stats();
        pacer.requests += s.requests;
        pacer.refused += s.refused;
        pacer.leased += s.leased;
        pacer.permits += s.permits;
        calls += engine.graph().calls.load(Ordering::Relaxed);
        nanos += engine.graph().nanos.load(Ordering::Relaxed);
    }
    Ok(Run {
        engines,
        in_flight,
        measured,
        measured_sends,
        all_sends: times.len(),
        other_outcomes,
        max_in_1s: max_in_window(&times, 1000),
        pacer,
        store_requests: pacing.requests(),
        graph_rtt_ms: nanos as f64 / calls.max(1) as f64 / 1e6,
        tally,
    })
}

/// The most instants of sorted `times` (ms) in any window `[t, t + width)`.
fn max_in_window(times: &[i64], width: i64) -> usize {
    let mut best = 0;
    let mut j = 0;
    for (i, &t) in times.iter().enumerate() {
        while j < times.len() && times[j] < t + width {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

/// Latency percentiles of send-api's handler, in µs.
struct Latency {
    requests: usize,
    p50: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

/// `requests` timed calls of send-api's handler (after `requests / 20` untimed ones), each a
/// new send with a fresh id, from `events/send-api/text.json` (with a distinct
/// `Idempotency-Key` each when `idempotent`).
async fn send_api_latency(requests: usize, idempotent: bool) -> Result<Latency, BoxError> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/send-api/text.json");
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let store = InMemoryStore::default();
    store
        .put_key(
            &hash_key(API_KEY),
            &KeyScope::Numbers(vec![PNID.into()]),
            "bench",
        )
        .await?;
    let who = CustomerRef::new(None, Some("16505551234")).ok_or("no customer ref")?;
    let now_s = wa_domain::clock::unix_now_ms() / 1000;
    store
        .advance_window(
            PNID,
            &CustomerKey::Phone("16505551234".into()),
            &who,
            &WindowUpdate::for_message(now_s - 3600, false),
            None,
        )
        .await?;
    let mut deps = Deps {
        store,
        queue: RecordingOutbound::default(),
        config: AcceptConfig::default(),
    };
    let warm_up = requests / 20;
    let mut ids = Ids(if idempotent { 2 } else { 1 });
    let mut micros = Vec::with_capacity(requests);
    let mut made = 0;
    // Requests are built (and the queue emptied) a thousand at a time, outside the timing.
    while made < warm_up + requests {
        let chunk = 1000.min(warm_up + requests - made);
        let mut batch = Vec::with_capacity(chunk);
        for i in made..made + chunk {
            let mut ev = event.clone();
            if idempotent {
                ev["headers"]["idempotency-key"] = json!(format!("bench-key-{i}"));
            }
            batch.push(lambda_http::request::from_str(&ev.to_string())?);
        }
        deps.queue = RecordingOutbound::default();
        for (i, req) in (made..).zip(batch) {
            let random = ids.next();
            let start = Instant::now();
            let res = handle(&deps, req, wa_domain::clock::unix_now_ms(), random).await;
            let took = start.elapsed();
            if res.status().as_u16() != 200 {
                let body = match res.body() {
                    Body::Text(t) => t.clone(),
                    _ => String::new(),
                };
                return Err(format!("request {i}: {} {body}", res.status()).into());
            }
            if i >= warm_up {
                micros.push(took.as_secs_f64() * 1e6);
            }
        }
        made += chunk;
    }
    micros.sort_unstable_by(f64::total_cmp);
    let at =
        |q: f64| micros[((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len()) - 1];
    Ok(Latency {
        requests: micros.len(),
        p50: at(0.50),
        p99: at(0.99),
        max: micros.last().copied().unwrap_or_default(),
        mean: micros.iter().sum::<f64>() / micros.len().max(1) as f64,
    })
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn per_send(n: u64, sends: usize) -> String {
    format!("{:.3}", n as f64 / sends.max(1) as f64)
}

/// The share of leased tokens no permit was made of (they expired with their slot).
fn unused(p: &PacerStats) -> String {
    let lost = p.leased.saturating_sub(p.permits);
    format!("{:.1} %", 100.0 * lost as f64 / p.leased.max(1) as f64)
}

fn problems(r: &Run) -> String {
    let t = &r.tally;
    let mut p = Vec::new();
    for (n, what) in [
        (t.deferred, "deferred"),
        (t.dead_lettered, "dead-lettered"),
        (t.store_errors, "store errors"),
        (t.ran_out, "workers out of sends"),
        (r.other_outcomes as u64, "sends not accepted"),
    ] {
        if n > 0 {
            p.push(format!("{n} {what}"));
        }
    }
    if p.is_empty() {
        "none".into()
    } else {
        p.join(", ")
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let quick = std::env::var_os("VENTANA_BENCH_QUICK").is_some_and(|v| v != "0");
    let throughput_secs = Duration::from_secs(10);
    let pacing_secs = Duration::from_secs(if quick { 10 } else { 60 });
    let api_requests = if quick { 5_000 } else { 20_000 };

    let sandbox = Sandbox::start(SandboxConfig {
        access_token: SecretString::from(TOKEN),
        webhook_url: None,
        latency: GRAPH_LATENCY,
        max_recorded: 200_000,
        ..SandboxConfig::default()
    })
    .await?;
    sandbox.set_latency(GRAPH_LATENCY);

    // 1. Throughput at 1,000/s: one engine with 100 deliveries in flight, then a fleet of
    //    Lambda-sized engines (10 in flight each) as large as Little's law says 1,000/s needs.
    let limit = 1000;
    let granted = window_budget(limit) as f64 * 10.0 / 11.0;
    eprintln!("outbound: 1 engine x 100 in flight at {limit}/s for {throughput_secs:?}");
    let one = run(
        &sandbox,
        1,
        100,
        LAMBDA_BATCH as u32,
        limit,
        throughput_secs,
        0,
    )
    .await?;
    let in_flight_needed = f64::from(limit) * one.graph_rtt_ms / 1000.0;
    let instances = (in_flight_needed / LAMBDA_BATCH as f64).ceil() as usize;
    let mut fleets = Vec::new();
    for (k, size) in [instances, 2 * instances].into_iter().enumerate() {
        eprintln!("outbound: {size} engines x {LAMBDA_BATCH} in flight at {limit}/s");
        fleets.push(
            run(
                &sandbox,
                size,
                LAMBDA_BATCH,
                LAMBDA_BATCH as u32,
                limit,
                throughput_secs,
                1_000_000 + k * 500_000,
            )
            .await?,
        );
    }

    // 2. Pacing accuracy at 80/s with 1, 2 and 4 engines, a batch of 10 in flight each.
    let mut pacing = Vec::new();
    for (k, workers) in [1usize, 2, 4].into_iter().enumerate() {
        eprintln!("outbound: pacing, {workers} engine(s) at 80/s for {pacing_secs:?}");
        pacing.push(
            run(
                &sandbox,
                workers,
                LAMBDA_BATCH,
                LAMBDA_BATCH as u32,
                80,
                pacing_secs,
                2_000_000 + k * 1_000_000,
            )
            .await?,
        );
    }
    sandbox.shutdown().await;

    // 3. send-api's handler.
    eprintln!("outbound: send-api handler, {api_requests} requests, twice");
    let plain = send_api_latency(api_requests, false).await?;
    let keyed = send_api_latency(api_requests, true).await?;

    let mut out = Vec::new();
    out.push(format!(
        "**1. deliver-worker engine at a limit of {limit}/s** (the pacer grants {} sends/s in the long run; \
         target: ≥ 0.95 of it), Graph API answering in {} ms, distinct customers; {} s measured after {} s of warm-up",
        thousands(granted),
        GRAPH_LATENCY.as_millis(),
        throughput_secs.as_secs(),
        WARM_UP.as_secs()
    ));
    out.push(String::new());
    out.push("| engines × deliveries in flight | sends/s | ratio to the pacer's rate | most sends in any 1 s (≤ 1,100) | lease requests / send | pacing-store requests / send | leased tokens never used | mean Graph API round trip | not done | target |".into());
    out.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |".into());
    for r in std::iter::once(&one).chain(&fleets) {
        let ratio = r.rate() / granted;
        out.push(format!(
            "| {} × {} | {} | {:.3} | {} | {} | {} | {} | {:.1} ms | {} | {} |",
            r.engines,
            r.in_flight,
            thousands(r.rate()),
            ratio,
            thousands(r.max_in_1s as f64),
            per_send(r.pacer.requests, r.all_sends),
            per_send(r.store_requests, r.all_sends),
            unused(&r.pacer),
            r.graph_rtt_ms,
            problems(r),
            met(ratio >= 0.95 && r.max_in_1s as u64 <= window_budget(limit)),
        ));
    }
    out.push(String::new());
    out.push(format!(
        "Every `deliver()` passes a backlog of {LAMBDA_BATCH} (what the deliver-worker passes for a full batch of one number). \
         The first row is one engine with {} deliveries in flight: in AWS that concurrency comes from several instances, \
         since a Lambda instance handles one batch at a time, and each instance has its own engine and pacer cache. \
         Lambda instances for {limit}/s: Little's law gives {limit}/s × {:.1} ms (the first row's mean Graph API round trip) \
         = {:.1} sends in flight; a deliver-worker instance handles one SQS batch (≤ {LAMBDA_BATCH}) at a time, \
         so at least **{instances} instances**. The last two rows run fleets of {instances} and {} such engines \
         (a batch of {LAMBDA_BATCH} in flight each, one pacing store); a send also waits for its slot of the pacer, \
         which this minimum leaves out. With DynamoDB instead of the in-memory store each send also waits for its store round trips, and needs proportionally more.",
        one.in_flight,
        one.graph_rtt_ms,
        in_flight_needed,
        2 * instances
    ));
    out.push(String::new());
    out.push(format!(
        "**2. Pacing accuracy at 80/s** (target: within ±5 % of 80, at most {} sends in any 1-second window), \
         engines with a batch of {LAMBDA_BATCH} in flight each sharing one pacing store, Graph API answering in {} ms; \
         {} s measured after {} s of warm-up; the 1-second windows slide over the sandbox's `received_at_ms` of every send of the run",
        window_budget(80),
        GRAPH_LATENCY.as_millis(),
        pacing_secs.as_secs(),
        WARM_UP.as_secs()
    ));
    out.push(String::new());
    out.push("| engines | sends measured | achieved /s | ratio to 80 | most sends in any 1 s | lease requests / send | pacing-store requests / send | leased tokens never used | not done | target |".into());
    out.push("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |".into());
    for r in &pacing {
        let ratio = r.rate() / 80.0;
        out.push(format!(
            "| {} | {} | {:.2} | {:.3} | {} | {} | {} | {} | {} | {} |",
            r.engines,
            thousands(r.measured_sends as f64),
            r.rate(),
            ratio,
            r.max_in_1s,
            per_send(r.pacer.requests, r.all_sends),
            per_send(r.store_requests, r.all_sends),
            unused(&r.pacer),
            problems(r),
            met((0.95..=1.05).contains(&ratio) && r.max_in_1s as u64 <= window_budget(80)),
        ));
    }
    out.push(String::new());
    out.push(
        "**3. send-api handler latency** (`send_api::handler::handle`, in-process: no API Gateway, no Lambda runtime, \
         no DynamoDB or SQS round trips; target p99 < 5 ms), each request a new text send to a customer whose window is open"
            .into(),
    );
    out.push(String::new());
    out.push("| request | timed requests | p50 | p99 | max | mean | target |".into());
    out.push("| --- | ---: | ---: | ---: | ---: | ---: | --- |".into());
    for (what, l) in [
        ("`text.json`", &plain),
        ("`text.json` + a new `Idempotency-Key`", &keyed),
    ] {
        out.push(format!(
            "| {what} | {} | {:.1} µs | {:.1} µs | {} µs | {:.1} µs | {} |",
            thousands(l.requests as f64),
            l.p50,
            l.p99,
            thousands(l.max),
            l.mean,
            met(l.p99 < 5_000.0),
        ));
    }
    println!("=== outbound report begin ===");
    for line in out {
        println!("{line}");
    }
    println!("=== outbound report end ===");
    Ok(())
}
