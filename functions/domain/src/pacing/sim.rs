//! A deterministic simulation of deliver-workers sharing one number's limit through the
//! in-memory store: discrete events in simulated milliseconds, a seeded generator for store
//! latencies and per-send work, every send's instant recorded and every sliding 1-second
//! window counted.
//!
//! A worker is one process (one [`Pacer`], so one local cache) that sends as fast as its
//! permits allow: after each permit it spends `gap` ms before asking again (handing the send
//! to a concurrent task); each store request the pacer made delays the permit by a latency
//! drawn from `latency`. A permit whose slot ended during that delay is void (counted as
//! `late`) and the worker asks again, as a real worker must (see [`Permit::use_before_ms`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use proptest::prelude::*;

use super::memory::InMemoryPacingStore;
use super::*;

/// Runs a future that never waits (the in-memory stores never do) to completion.
pub(crate) fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("an in-memory future waited"),
    }
}

/// SplitMix64: small, seeded, good enough for arrival patterns.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, (lo, hi): (i64, i64)) -> i64 {
        lo + (self.next() % ((hi - lo).max(0) as u64 + 1)) as i64
    }
}

const T0: i64 = 1_763_892_000_000;
const PNID: &str = "106540352242922";

#[derive(Debug, Clone, Copy)]
struct Worker {
    start_ms: i64,
    stop_ms: i64,
    /// Work between two sends (ms).
    gap_ms: (i64, i64),
    /// The backlog the worker tells the pacer (1: it says nothing).
    backlog: Option<u32>,
}

#[derive(Debug, Clone)]
struct Sim {
    limit: u32,
    config: PacerConfig,
    workers: Vec<Worker>,
    /// Latency of one store request (ms).
    latency_ms: (i64, i64),
    seed: u64,
}

#[derive(Debug)]
struct Outcome {
    /// Send instants, sorted.
    sends: Vec<i64>,
    requests: u64,
    refused: u64,
    leased: u64,
    late: u64,
    /// The longest wait a worker was told to do.
    longest_wait: i64,
}

impl Sim {
    fn new(limit: u32, workers: usize, gap_ms: (i64, i64), duration_ms: i64) -> Self {
        Self {
            limit,
            config: PacerConfig::default(),
            workers: vec![
                Worker {
                    start_ms: 0,
                    stop_ms: duration_ms,
                    gap_ms,
                    backlog: None,
                };
                workers
            ],
            latency_ms: (2, 8),
            seed: 7,
        }
    }

    fn run(&self) -> Outcome {
        let store = InMemoryPacingStore::default();
        let pacers: Vec<_> = (0..self.workers.len() as u64)
            .map(|i| Pacer::with_config(&store, i * 7919, self.config))
            .collect();
        let mut rng = Rng(self.seed);
        let mut events: BinaryHeap<Reverse<(i64, usize)>> = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| Reverse((T0 + w.start_ms, i)))
            .collect();
        let mut out = Outcome {
            sends: vec![],
            requests: 0,
            refused: 0,
            leased: 0,
            late: 0,
            longest_wait: 0,
        };
        while let Some(Reverse((t, i))) = events.pop() {
            let w = self.workers[i];
            if t >= T0 + w.stop_ms {
                continue;
            }
            let before = store.requests();
            let answer = match w.backlog {
                Some(b) => now(pacers[i].acquire_for(PNID, self.limit, b, t)),
                None => now(pacers[i].acquire(PNID, self.limit, t)),
            }
            .unwrap_or_else(|e| panic!("store failed: {e}"));
            let mut ready = t;
            for _ in before..store.requests() {
                ready += rng.range(self.latency_ms);
            }
            match answer {
                Acquire::Permit(p) if ready < p.use_before_ms => {
                    assert_eq!(slot_of(ready), p.slot);
                    out.sends.push(ready);
                    events.push(Reverse((ready + rng.range(w.gap_ms), i)));
                }
                Acquire::Permit(_) => {
                    out.late += 1;
                    events.push(Reverse((ready, i)));
                }
                Acquire::Wait { until_ms } => {
                    assert!(until_ms > t, "a wait must move time forward");
                    out.longest_wait = out.longest_wait.max(until_ms - t);
                    events.push(Reverse((until_ms.max(ready), i)));
                }
            }
        }
        out.sends.sort_unstable();
        out.requests = store.requests();
        out.leased = pacers.iter().map(|p| p.stats().leased).sum();
        out.refused = pacers.iter().map(|p| p.stats().refused).sum();
        out
    }
}

/// The most sends in any window `[t, t + len)`: the maximum is reached by a window starting
/// at a send, so checking those covers every window (every millisecond and in between).
fn max_in_window(sorted: &[i64], len: i64) -> usize {
    let mut j = 0;
    let mut best = 0;
    for i in 0..sorted.len() {
        while j < sorted.len() && sorted[j] < sorted[i] + len {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

/// Checks the contract and the rate, and prints the figures for the report.
fn check(name: &str, sim: &Sim, duration_ms: i64, min_utilisation: f64) -> Outcome {
    let out = sim.run();
    let limit = f64::from(sim.limit);
    let worst = max_in_window(&out.sends, 1000);
    let rate = out.sends.len() as f64 * 1000.0 / duration_ms as f64;
    eprintln!(
        "{name}: L={} workers={} shards={} batch={}%: {} sends, max 1-s window {worst} ({:.3} L), \
         {rate:.1}/s ({:.1}% of L), {} requests ({:.3}/send, {} refused), {} leased tokens unused ({:.2}%, of which {} late permits)",
        sim.limit,
        sim.workers.len(),
        sim.config.shards,
        sim.config.max_batch_percent,
        out.sends.len(),
        worst as f64 / limit,
        100.0 * rate / limit,
        out.requests,
        out.requests as f64 / out.sends.len().max(1) as f64,
        out.refused,
        out.leased.saturating_sub(out.sends.len() as u64),
        100.0 * out.leased.saturating_sub(out.sends.len() as u64) as f64 / out.leased.max(1) as f64,
        out.late,
    );
    assert!(
        worst as u64 <= window_budget(sim.limit),
        "{name}: {worst} sends in one second, limit {}",
        sim.limit
    );
    assert!(
        rate >= min_utilisation * limit,
        "{name}: only {rate:.1}/s of {}",
        sim.limit
    );
    out
}

const MINUTE: i64 = 60_000;

#[test]
fn sixty_seconds_at_80_per_second() {
    check("L=80", &Sim::new(80, 4, (0, 3), MINUTE), MINUTE, 0.95);
}

#[test]
fn sixty_seconds_at_1000_per_second() {
    check("L=1000", &Sim::new(1000, 8, (0, 3), MINUTE), MINUTE, 0.95);
}

#[test]
fn sixty_seconds_at_20_per_second() {
    check("L=20", &Sim::new(20, 3, (0, 3), MINUTE), MINUTE, 0.95);
}

#[test]
fn sixty_seconds_at_1000_over_four_shards() {
    let mut sim = Sim::new(1000, 8, (0, 3), MINUTE);
    sim.config.shards = 4;
    check("L=1000 sharded", &sim, MINUTE, 0.95);
}

#[test]
fn sixty_seconds_at_1000_with_fifty_workers() {
    // Dozens of Lambda instances at once, each with a slower send loop.
    check(
        "L=1000 many",
        &Sim::new(1000, 50, (5, 40), MINUTE),
        MINUTE,
        0.95,
    );
}

#[test]
fn sixty_seconds_at_1000_with_known_backlogs() {
    // deliver-worker knows its SQS batch: it says how many sends it has ready.
    let mut sim = Sim::new(1000, 20, (0, 1), MINUTE);
    for w in &mut sim.workers {
        w.backlog = Some(10);
    }
    check("L=1000 backlog", &sim, MINUTE, 0.95);
}

#[test]
fn slow_store_still_reaches_the_rate() {
    // Store requests of 10-40 ms (moto-like), at the standard limit.
    let mut sim = Sim::new(80, 4, (0, 3), MINUTE);
    sim.latency_ms = (10, 40);
    check("L=80 slow store", &sim, MINUTE, 0.95);
}

#[test]
fn odd_limits_hold_the_bound() {
    for limit in [1, 7, 25, 133, 999] {
        let sim = Sim::new(limit, 5, (0, 2), 20_000);
        check(&format!("L={limit}"), &sim, 20_000, 0.9);
    }
}

#[test]
fn zero_latency_bursts_at_every_boundary_hold_the_bound() {
    // Workers with no work between sends and an instant store: every token of a slot goes in
    // its first millisecond, the worst case for unaligned windows.
    let mut sim = Sim::new(80, 6, (0, 0), 10_000);
    sim.latency_ms = (0, 0);
    let out = check("L=80 instant", &sim, 10_000, 0.99);
    assert!(out.sends.iter().all(|t| t.rem_euclid(SLOT_MS) == 0));
    // Sends on slot starts only: a half-open second holds ten of them.
    assert_eq!(max_in_window(&out.sends, 1000), 80);
}

#[test]
fn below_the_limit_nobody_waits_longer_than_the_lead() {
    // 2 workers, one send per ~100 ms each: 20/s against L = 80.
    let sim = Sim::new(80, 2, (95, 105), MINUTE);
    let out = check("L=80 light", &sim, MINUTE, 0.0);
    assert!(out.sends.len() > 2 * 570, "{} sends", out.sends.len());
    assert!(
        out.longest_wait <= sim.config.lead_ms,
        "{}",
        out.longest_wait
    );
}

#[test]
fn max_in_window_counts_half_open_windows() {
    assert_eq!(max_in_window(&[0, 999, 1000, 1999], 1000), 2);
    assert_eq!(max_in_window(&[0, 1, 2, 500, 1001], 1000), 4);
    assert_eq!(max_in_window(&[], 1000), 0);
}

fn arb_worker() -> impl Strategy<Value = Worker> {
    (
        0i64..4_000,
        1i64..6_000,
        0i64..30,
        0i64..30,
        proptest::option::of(1u32..30),
    )
        .prop_map(|(start, len, g0, g1, backlog)| Worker {
            start_ms: start,
            stop_ms: start + len,
            gap_ms: (g0.min(g1), g0.max(g1)),
            backlog,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the workers' arrivals, speeds, batches, shards and the store's latency,
    /// no 1-second window ever holds more than ⌊1.1 L⌋ sends.
    #[test]
    fn no_arrival_pattern_breaks_the_bound(
        limit in prop_oneof![Just(1u32), Just(20), 1u32..200, Just(80), Just(1000)],
        workers in proptest::collection::vec(arb_worker(), 1..12),
        shards in 1u32..5,
        batch in 1u32..101,
        lead in 0i64..40,
        l0 in 0i64..30,
        l1 in 0i64..30,
        seed in any::<u64>(),
    ) {
        let sim = Sim {
            limit,
            config: PacerConfig {
                shards,
                max_batch_percent: batch,
                lead_ms: lead,
                ..PacerConfig::default()
            },
            workers,
            latency_ms: (l0.min(l1), l0.max(l1)),
            seed,
        };
        let out = sim.run();
        let worst = max_in_window(&out.sends, 1000);
        prop_assert!(worst as u64 <= window_budget(limit), "{worst} > 1.1 × {limit}");
    }
}

/// The table behind [`PacerConfig`]'s defaults: batch size and back-off against cost and
/// rate, for a few fleets.
#[test]
#[ignore = "a tuning table, not a check: cargo test -p wa-domain pacing::sim::tuning_table -- --ignored --nocapture"]
fn tuning_table() {
    for (name, limit, workers, gap) in [
        ("80x4", 80, 4, (0, 3)),
        ("20x3", 20, 3, (0, 3)),
        ("1000x8", 1000, 8, (0, 3)),
        ("1000x50", 1000, 50, (5, 40)),
        ("80x20", 80, 20, (5, 40)),
    ] {
        for batch in [25, 50] {
            for backoff in [1, 4, 8, 16] {
                for backlog in [None, Some(10)] {
                    let mut sim = Sim::new(
                        limit,
                        workers,
                        if backlog.is_some() { (0, 1) } else { gap },
                        MINUTE,
                    );
                    for w in &mut sim.workers {
                        w.backlog = backlog;
                    }
                    sim.config.max_batch_percent = batch;
                    sim.config.max_backoff_slots = backoff;
                    let o = sim.run();
                    eprintln!(
                        "{name} batch={batch} backoff={backoff} backlog={backlog:?}: {:.3} L max, {:.1}% util, {:.3} req/send ({:.3} refused/send)",
                        max_in_window(&o.sends, 1000) as f64 / f64::from(limit),
                        100.0 * o.sends.len() as f64 / 60.0 / f64::from(limit),
                        o.requests as f64 / o.sends.len() as f64,
                        o.refused as f64 / o.sends.len() as f64,
                    );
                }
            }
        }
    }
}
