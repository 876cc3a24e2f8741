//! The outbound pacer on `wa-dynamodb` against moto: slot counters that never overrun under
//! concurrent leases, workers (tokio tasks, each with its own `Pacer` and cache) that together
//! hold a number's limit in every sliding second of real time, and pair-rate state under
//! racing writers. Each test makes its own table. Run with moto on `$AWS_ENDPOINT_URL`
//! (`scripts/with-moto.sh cargo test -p wa-tests --test pacer -- --include-ignored`).
//!
//! moto is slow (milliseconds per request) so the limit here is small (L = 20); large limits
//! are the in-memory simulation's job (`wa_domain::pacing`).
//!
//! moto's conditional writes are not atomic across its request threads, as DynamoDB's are:
//! 8 concurrent leases of one token on a 2-token slot counter granted 3 or 4 tokens in 6 of
//! 40 rounds (moto 5.2.5, werkzeug `threaded=True`, no switch). The workers here therefore
//! reach moto through [`OneAtATime`], which sends one request at a time: the workers'
//! leases, reads and version checks still interleave request by request (the races the
//! pacer and the pair gate must handle), and each conditional write is atomic as in
//! DynamoDB. Atomicity of a single conditional write is DynamoDB's guarantee, not ours to
//! test.
// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use wa_domain::customer::CustomerKey;
use wa_domain::pacing::pair::{PairGate, PairPolicy, PairState, PairStore};
use wa_domain::pacing::{
    Acquire, Lease, LeaseStore, Pacer, PacerStats, ShardKey, slot_of, window_budget,
};
use wa_domain::ports::StoreError;
use wa_dynamodb::DynamoStore;
use wa_tests::{fresh_table, unique_name};

/// The store, reached one request at a time (see the file's docs for why).
#[derive(Clone)]
struct OneAtATime {
    store: DynamoStore,
    busy: Arc<AtomicBool>,
}

/// The right to send the next request; given back when dropped.
struct Turn<'a>(&'a AtomicBool);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl OneAtATime {
    fn new(store: DynamoStore) -> Self {
        Self {
            store,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    async fn turn(&self) -> Turn<'_> {
        loop {
            if self
                .busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Turn(&self.busy);
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
}

impl LeaseStore for OneAtATime {
    async fn try_lease(
        &self,
        key: &ShardKey<'_>,
        count: u32,
        capacity: u32,
        expires_at: i64,
    ) -> Result<Lease, StoreError> {
        let _turn = self.turn().await;
        self.store.try_lease(key, count, capacity, expires_at).await
    }
}

impl PairStore for OneAtATime {
    async fn pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        consistent: bool,
    ) -> Result<Option<PairState>, StoreError> {
        let _turn = self.turn().await;
        self.store
            .pair_state(phone_number_id, customer, consistent)
            .await
    }

    async fn put_pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        state: &PairState,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.turn().await;
        self.store
            .put_pair_state(phone_number_id, customer, state, expires_at)
            .await
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap())
        .unwrap()
}

/// The most instants in any window `[t, t + len)` (a maximal window starts at an instant).
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

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_slot_counter_never_goes_past_its_capacity() {
    let (store, client, table) = fresh_table().await;
    let slot = ShardKey {
        phone_number_id: "106540352242922",
        slot: 17_638_920_001,
        shard: 0,
    };
    let before = store.metrics().snapshot();
    let lease = |n| store.try_lease(&slot, n, 5, 1_763_892_061);
    assert_eq!(
        lease(3).await.unwrap(),
        Lease {
            granted: 3,
            used: Some(3)
        }
    );
    // Refused, not an error, and the counter comes back with the refusal.
    assert_eq!(
        lease(3).await.unwrap(),
        Lease {
            granted: 0,
            used: Some(3)
        }
    );
    assert_eq!(
        lease(2).await.unwrap(),
        Lease {
            granted: 2,
            used: Some(5)
        }
    );
    assert_eq!(lease(1).await.unwrap().granted, 0);
    // Asking for more than the capacity costs nothing.
    assert_eq!(lease(6).await.unwrap().granted, 0);
    let used = store.metrics().snapshot().since(before);
    assert_eq!((used.reads, used.writes), (0, 4), "one write per lease");

    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            AttributeValue::S("PACE#106540352242922#17638920001#0".into()),
        )
        .key("sk", AttributeValue::S("PACE".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["used"], AttributeValue::N("5".into()));
    assert_eq!(item["ttl"], AttributeValue::N("1763892061".into()));
}

/// What `workers` concurrent workers achieved under `limit` for `duration`.
struct Run {
    grants: Vec<i64>,
    stats: PacerStats,
    writes: u64,
}

/// `workers` tokio tasks, each a worker with its own pacer (own token cache) on one table,
/// each sending as fast as its permits allow for `duration` of real time. Records the
/// instant of every send (a permit still valid when the worker looked at the clock again).
async fn run_workers(workers: u64, limit: u32, duration: Duration) -> Run {
    let (store, _, _) = fresh_table().await;
    let shared = OneAtATime::new(store.clone());
    let pnid = Arc::new(unique_name("pn-"));
    let grants = Arc::new(Mutex::new(Vec::new()));
    let start = wall_ms();
    let end = start + i64::try_from(duration.as_millis()).unwrap();
    let before = store.metrics().snapshot();
    let tasks: Vec<_> = (0..workers)
        .map(|i| {
            let (shared, pnid, grants) = (shared.clone(), pnid.clone(), grants.clone());
            tokio::spawn(async move {
                let pacer = Pacer::new(shared, i);
                loop {
                    let now = wall_ms();
                    if now >= end {
                        break;
                    }
                    match pacer.acquire(&pnid, limit, now).await.unwrap() {
                        Acquire::Permit(p) => {
                            let sent = wall_ms();
                            if p.is_valid_at(sent) {
                                grants.lock().unwrap().push(sent);
                            }
                        }
                        Acquire::Wait { until_ms } => {
                            let ms = u64::try_from(until_ms - wall_ms()).unwrap_or(0);
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                    }
                }
                pacer.stats()
            })
        })
        .collect();
    let mut stats = PacerStats::default();
    for t in tasks {
        let s = t.await.unwrap();
        stats.requests += s.requests;
        stats.refused += s.refused;
        stats.leased += s.leased;
        stats.permits += s.permits;
    }
    let writes = store.metrics().snapshot().since(before).writes;
    let mut grants = Arc::try_unwrap(grants).unwrap().into_inner().unwrap();
    grants.sort_unstable();
    Run {
        grants,
        stats,
        writes,
    }
}

async fn workers_hold_the_limit(workers: u64) {
    const L: u32 = 20;
    let duration = Duration::from_secs(5);
    let run = run_workers(workers, L, duration).await;
    let worst = max_in_window(&run.grants, 1000);
    let sends = run.grants.len();
    eprintln!(
        "moto, {workers} workers, L={L}, {}s: {sends} sends ({:.1}/s), max 1-s window {worst} \
         ({:.3} L), {} requests ({:.2}/send, {} refused), {} tokens leased, {} permits",
        duration.as_secs(),
        sends as f64 / duration.as_secs_f64(),
        worst as f64 / f64::from(L),
        run.stats.requests,
        run.stats.requests as f64 / sends.max(1) as f64,
        run.stats.refused,
        run.stats.leased,
        run.stats.permits,
    );
    assert_eq!(run.writes, run.stats.requests, "every lease is one write");
    assert!(
        worst as u64 <= window_budget(L),
        "{worst} sends in one second, limit {L}"
    );
    let floor = 0.8 * f64::from(L) * duration.as_secs_f64();
    assert!(
        sends as f64 >= floor,
        "only {sends} sends, wanted ≥ {floor}"
    );
    // Permits are only ever inside their slots: two grants in one slot at most (L/10 = 2).
    let mut per_slot = std::collections::HashMap::<i64, u32>::new();
    for &t in &run.grants {
        *per_slot.entry(slot_of(t)).or_default() += 1;
    }
    assert!(per_slot.values().all(|&n| n <= 2), "{per_slot:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn two_workers_hold_twenty_per_second_in_every_second() {
    workers_hold_the_limit(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn four_workers_hold_twenty_per_second_in_every_second() {
    workers_hold_the_limit(4).await;
}

const T0: i64 = 1_763_892_000_000;

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn pair_rate_allows_a_burst_then_spaces_and_backs_off() {
    let (store, client, table) = fresh_table().await;
    let gate = PairGate::new(store.clone(), PairPolicy::default());
    let c = CustomerKey::Bsuid("US.13491208655302741918".into());

    let before = store.metrics().snapshot();
    assert_eq!(gate.reserve("p", &c, T0).await.unwrap(), None);
    let used = store.metrics().snapshot().since(before);
    assert_eq!(
        (used.reads, used.writes),
        (1, 1),
        "a send costs one read, one write"
    );
    assert_eq!(gate.reserve("p", &c, T0 + 1).await.unwrap(), None);
    assert_eq!(gate.reserve("p", &c, T0 + 2).await.unwrap(), None);
    assert_eq!(
        gate.reserve("p", &c, T0 + 3).await.unwrap(),
        Some(T0 + 6_000)
    );
    // Another recipient of the same number is not affected.
    let d = CustomerKey::Phone("15551234567".into());
    assert_eq!(gate.reserve("p", &d, T0 + 3).await.unwrap(), None);

    // 131056 twice in a row: 1 s, then 4 s.
    let retry = gate.rate_limited("p", &c, T0 + 6_000).await.unwrap();
    assert_eq!(retry, T0 + 7_000);
    assert_eq!(
        gate.reserve("p", &c, T0 + 6_500).await.unwrap(),
        Some(T0 + 7_000)
    );
    let retry = gate.rate_limited("p", &c, T0 + 7_000).await.unwrap();
    assert_eq!(retry, T0 + 11_000);

    let stored = store.pair_state("p", &c, true).await.unwrap().unwrap();
    assert_eq!(stored.strikes, 2);
    assert_eq!(stored.blocked_until_ms, T0 + 11_000);
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            AttributeValue::S("PAIR#p#u:US.13491208655302741918".into()),
        )
        .key("sk", AttributeValue::S("PAIR".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let ttl: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
    assert_eq!(ttl, PairPolicy::default().expires_at(&stored));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn racing_workers_cannot_exceed_a_recipients_burst() {
    let (store, _, _) = fresh_table().await;
    let shared = OneAtATime::new(store.clone());
    let c = CustomerKey::Phone("15550001111".into());
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (shared, c) = (shared.clone(), c.clone());
            tokio::spawn(async move {
                let gate = PairGate::new(shared, PairPolicy::default());
                gate.reserve("p", &c, T0).await.unwrap()
            })
        })
        .collect();
    let mut sent = 0;
    for t in tasks {
        if t.await.unwrap().is_none() {
            sent += 1;
        }
    }
    assert!(sent <= 3, "{sent} sends at once, burst is 3");
    assert!(sent >= 1);
    let stored = store.pair_state("p", &c, true).await.unwrap().unwrap();
    assert_eq!(stored.rev, sent, "every allowed send is one version");
    assert_eq!(stored.tat_ms, T0 + 6_000 * i64::try_from(sent).unwrap());
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_stale_pair_version_is_refused() {
    let (store, _, _): (DynamoStore, _, _) = fresh_table().await;
    let c = CustomerKey::Phone("15550002222".into());
    let first = PairState {
        tat_ms: T0,
        strikes: 0,
        blocked_until_ms: 0,
        rev: 1,
    };
    assert!(store.put_pair_state("p", &c, &first, 0).await.unwrap());
    assert!(!store.put_pair_state("p", &c, &first, 0).await.unwrap());
    let second = PairState { rev: 2, ..first };
    assert!(store.put_pair_state("p", &c, &second, 0).await.unwrap());
    let skipped = PairState { rev: 4, ..first };
    assert!(!store.put_pair_state("p", &c, &skipped, 0).await.unwrap());
    assert_eq!(
        store.pair_state("p", &c, false).await.unwrap().unwrap().rev,
        2
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_numbers_brakes_keep_the_later_time_and_are_seen_by_every_store_handle() {
    use wa_domain::pacing::memory::InMemoryPacingStore;
    use wa_domain::pacing::{BrakeStore, Brakes};
    let (one, _, table) = fresh_table().await;
    // A second handle on the same table: another worker process.
    let other = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&wa_tests::moto_config().await),
        &table,
    );
    let fake = InMemoryPacingStore::default();
    let pn = "106540352242922";
    assert_eq!(one.brakes(pn).await.unwrap(), Brakes::default());
    // Each write by one handle or the other; an earlier time never replaces a later one.
    let steps: [(&DynamoStore, &str, i64, Option<i64>); 5] = [
        (&one, "slow", 5_000, None),
        (&other, "slow", 4_000, None),
        (&other, "hold", 9_000, Some(190)),
        (&one, "hold", 8_000, Some(131_031)),
        (&one, "hold", 9_500, Some(131_042)),
    ];
    for (store, what, until, code) in steps {
        match (what, code) {
            ("slow", _) => {
                store.slow_down(pn, until).await.unwrap();
                fake.slow_down(pn, until).await.unwrap();
            }
            (_, Some(code)) => {
                store.hold(pn, until, code).await.unwrap();
                fake.hold(pn, until, code).await.unwrap();
            }
            _ => unreachable!(),
        }
        assert_eq!(
            one.brakes(pn).await.unwrap(),
            fake.brakes(pn).await.unwrap(),
            "after {what} until {until}: the adapter and the fake agree"
        );
    }
    let b = other.brakes(pn).await.unwrap();
    assert_eq!(b.slow_until_ms, Some(5_000));
    assert_eq!(b.hold, Some((9_500, 131_042)));
    assert_eq!(b.held(9_499), Some(131_042));
    assert_eq!(b.held(9_500), None);
    assert_eq!(b.limit(80, 4_999), 40);
    assert_eq!(b.limit(80, 5_000), 80);
    assert_eq!(
        one.brakes("another-number").await.unwrap(),
        Brakes::default()
    );
}
