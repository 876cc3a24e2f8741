//! Outbound pacing: one shared messages-per-second limit per business number across every
//! deliver-worker, and pair-rate spacing per recipient ([`pair`]).
//!
//! Everything here is pure and deterministic: time is passed in (`now_ms`, unix
//! milliseconds), never read. The shared state sits behind two ports, [`LeaseStore`] (slot
//! counters) and [`pair::PairStore`] (one small item per recipient); `wa-dynamodb` implements
//! both, and `memory::InMemoryPacingStore` (feature `testing`) is the fake.
//!
//! # The number's limit (contract: ≤ 1.1 × L in every 1-second window)
//!
//! Time is cut into **slots** of [`SLOT_MS`] = 100 ms; slot `k` is `[100k, 100k + 100)` ms
//! since the epoch, the same for every worker. Each slot of each number has a budget of
//! tokens, [`slot_capacity`]`(L, k)`, kept in counter items `PACE#{pnid}#{k}#{shard}` split
//! over `S` shards ([`shard_capacity`]: `⌊c/S⌋`, the remainder over the first shards). A
//! worker **leases** a batch of tokens with one conditional write
//! (`ADD used :n` if `used + n <= capacity`, [`LeaseStore::try_lease`]), keeps them in a local
//! cache and hands them out one per send, *only while slot `k` lasts*. Tokens not spent by
//! the end of their slot are dropped. The counter items carry a TTL of a minute: keys are
//! never reused, so their deletion is housekeeping, not correctness.
//!
//! **Capacities.** Let `M = ⌊1.1 L⌋ = L + ⌊L/10⌋`, the most sends any 1-second window may
//! hold. Slot `k` gets `c_k = ⌊(j+1)·M/11⌋ − ⌊j·M/11⌋` with `j = k mod 11`: `M/11` per
//! slot, the fractions spread so that **any 11 consecutive slots add up to exactly `M`**
//! (the sum telescopes, and `c_k` has period 11).
//!
//! **Why every 1-second window holds at most `M ≤ 1.1 L` sends, not only aligned ones.** A
//! token of slot `k` is only ever handed out at an instant inside slot `k` (the worker's
//! `now_ms` decides the slot; a lease that returns after its slot ended is not used, see
//! [`Permit::use_before_ms`]). A window `[t, t + 1000)` meets the slots `⌊t/100⌋` to
//! `⌊(t + 999)/100⌋`, at most 11 consecutive slots (10 when `t` is aligned), and the counter
//! writes are conditional, so no slot hands out more than `c_k` across all workers and
//! shards. Hence any window has at most `c_k + … + c_{k+10} = M` sends. With `L = 80`:
//! `c = 8`, `M = 88`; `L = 1,000`: `c = 100`, `M = 1,100`; `L = 20`: `c = 2`, `M = 22`.
//! The long-run rate is `10·M/11 = L − (L mod 10)/11`: exactly `L` when ten divides `L`, and
//! less than one message per second short otherwise. The first slot of an idle number holds
//! `≈ L/10`: the burst the contract allows a token bucket.
//!
//! **Why 100 ms.** With slots of `T` ms a window meets `1000/T + 1` of them, so full rate `L`
//! costs a worst window of `L·(1 + T/1000)`. The contract's 1.1 is met at full rate exactly
//! for `T = 100`; shorter slots would be tighter but cost proportionally more requests.
//!
//! The bound is on *grants*, as the workers' clocks see them. Two things widen it in
//! production, and neither is hidden: clock skew between workers (Lambda hosts are synced by
//! the Amazon Time Sync Service, well under a millisecond, against 100 ms slots) and jitter
//! between a grant and the moment Meta counts the request (network; a worker should send
//! right after its permit). Pass a lower `L` than Meta's to keep headroom for inbound traffic,
//! which Meta counts too, or after a 130429.
//!
//! # Writes: no hot key
//!
//! - **Batches.** A lease asks for as many tokens as the worker can spend before the slot
//!   ends, judged from its pace (a moving average of the time from a permit to its next
//!   call) and capped by the caller's `backlog` when it gives one
//!   ([`Pacer::acquire_for`]), by [`PacerConfig::max_batch_percent`] of the slot (default
//!   50 %) and by the shard. A worker with one message takes one token; a busy one takes
//!   half a slot and spends it from its cache, with no request per send.
//! - **Exact retries.** A refused lease returns the counter (`ALL_OLD`), so the worker asks
//!   again for exactly what is left, or learns the shard is empty and does not write to it
//!   again in that slot.
//! - **Early leases.** When the current slot is empty (or ends within
//!   [`PacerConfig::lead_ms`]) the worker leases the *next* slot's tokens and waits for it:
//!   the store's latency is hidden and the herd at each slot boundary is spread over the
//!   previous slot. After a refusal a worker goes straight for the next slot for a while:
//!   under contention the current one was booked during the previous one.
//! - **Back-off of losers.** A worker whose calls keep finding every slot empty waits a
//!   random number of extra slots, growing with its "pressure" (+1 per empty-handed call,
//!   −1 per lease, at most [`PacerConfig::max_backoff_slots`]): the workers of an
//!   over-provisioned fleet settle where about half their probes win, instead of each
//!   writing once per slot.
//!
//! Measured in the simulation (`pacing::sim`, store latency 2–8 ms, demand above `L`,
//! 60 s): requests per send ≈ 0.05 at `L = 1,000` with 8 busy workers, 0.19 with 20
//! workers that each pass a backlog of 10, 0.47 with 50 slow workers; 0.46 at `L = 80` with
//! 4 workers; 1.5 at `L = 20` (2 tokens per slot: every lease is one or two tokens). A
//! refused conditional write costs a write unit like a granted one.
//!
//! **Per item.** Each key is written for about two slots (early leases, then its own slot)
//! and never again, so no partition sees sustained load from it and each next key hashes to
//! another partition. At `L = 1,000` with 50 workers the whole number costs ≈ 470
//! requests/s, split over the two live keys: ≈ 235 per key-second, a quarter of DynamoDB's
//! 1,000 WCU/s per partition, with 8 workers ≈ 25. Sharding (`S > 1`) divides a slot's
//! successful leases over `S` keys but not its refusals (a worker probes each shard it
//! wants tokens from) and so raises the total (0.18 against 0.05 requests per send in the
//! simulation at `L = 1,000`, `S = 4`): the default is `S = 1`, and `S` is there for
//! fleets where the per-key rate matters more than the total.
//!
//! **The cost of dropping unused tokens.** Tokens not spent within their slot are lost: at
//! most one lease per worker per slot, when its demand stops or its pace changes. In the
//! simulation that is 0.2 % of leased tokens with busy workers and 4 % with 50 slow,
//! irregular ones (their achieved rate is then 96 % of `L`); a worker that passes its
//! backlog loses only what it leased and then did not send.
//!
//! # Pair rate
//!
//! See [`pair`]: at most about one message per 6 s to the same recipient with a small burst,
//! and Meta's 131056 back-off (`4^n` s).

pub mod pair;

#[cfg(any(test, feature = "testing"))]
pub mod memory;
#[cfg(test)]
mod sim;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::ports::StoreError;

/// The length of a pacing slot, in milliseconds (see the module docs for why 100 ms).
pub const SLOT_MS: i64 = 100;

/// How many slots a 1-second window can meet: `1000 / SLOT_MS + 1`.
pub const SLOTS_PER_WINDOW: i64 = 1000 / SLOT_MS + 1;

/// The default limit of a number (Meta's standard throughput): 80 messages per second.
pub const DEFAULT_LIMIT: u32 = 80;

/// For how many slots after a refusal a worker goes straight for the next slot: under
/// contention the current slot was booked during the previous one.
const CONTENTION_MEMORY_SLOTS: i64 = 2;

/// The most shards a slot is split over.
pub const MAX_SHARDS: u32 = 64;

/// The slot an instant (unix ms) falls in.
pub fn slot_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(SLOT_MS)
}

/// When a slot starts (unix ms).
pub fn slot_start(slot: i64) -> i64 {
    slot.saturating_mul(SLOT_MS)
}

/// The most sends any 1-second window may hold for limit `L`: `⌊1.1 L⌋`.
pub fn window_budget(limit: u32) -> u64 {
    u64::from(limit) + u64::from(limit) / 10
}

/// The tokens slot `slot` holds for limit `L`: `window_budget / 11`, with the fractions spread
/// so that every 11 consecutive slots hold exactly [`window_budget`] tokens.
pub fn slot_capacity(limit: u32, slot: i64) -> u32 {
    let m = window_budget(limit);
    let n = SLOTS_PER_WINDOW as u64;
    let j = slot.rem_euclid(SLOTS_PER_WINDOW) as u64;
    let c = (j + 1) * m / n - j * m / n;
    u32::try_from(c).unwrap_or(u32::MAX)
}

/// The tokens of one shard when a slot of `capacity` tokens is split over `shards` shards:
/// `⌊capacity / shards⌋`, plus one for the first `capacity mod shards` shards.
pub fn shard_capacity(capacity: u32, shards: u32, shard: u32) -> u32 {
    let shards = shards.max(1);
    capacity / shards + u32::from(shard < capacity % shards)
}

/// One counter item: a shard of a slot of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardKey<'a> {
    /// The business phone number id.
    pub phone_number_id: &'a str,
    /// The slot ([`slot_of`]).
    pub slot: i64,
    /// The shard, `0..S`.
    pub shard: u32,
}

/// What a lease attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Tokens granted: all that were asked for, or none.
    pub granted: u32,
    /// The counter after the attempt (on success) or as it stood (on refusal), when the
    /// store reports it; lets the worker ask for exactly what is left.
    pub used: Option<u32>,
}

/// The shared slot counters behind [`Pacer`].
pub trait LeaseStore: Send + Sync {
    /// Adds `count` to the shard's counter if it stays within `capacity` (a missing counter
    /// counts as 0), in one atomic conditional write; otherwise changes nothing and grants
    /// 0 (a refusal is not an error). The item may be deleted after `expires_at` (unix s).
    fn try_lease(
        &self,
        key: &ShardKey<'_>,
        count: u32,
        capacity: u32,
        expires_at: i64,
    ) -> impl Future<Output = Result<Lease, StoreError>> + Send;
}

impl<T: LeaseStore> LeaseStore for &T {
    fn try_lease(
        &self,
        key: &ShardKey<'_>,
        count: u32,
        capacity: u32,
        expires_at: i64,
    ) -> impl Future<Output = Result<Lease, StoreError>> + Send {
        (**self).try_lease(key, count, capacity, expires_at)
    }
}

impl<T: LeaseStore> LeaseStore for Arc<T> {
    fn try_lease(
        &self,
        key: &ShardKey<'_>,
        count: u32,
        capacity: u32,
        expires_at: i64,
    ) -> impl Future<Output = Result<Lease, StoreError>> + Send {
        (**self).try_lease(key, count, capacity, expires_at)
    }
}

/// What Meta told one worker about a number that every worker must heed: a throughput
/// error (130429: run at half the limit for a while) and a "stop sending" code (an expired
/// token, a locked account: hold the number's sends back for a while). Kept where every
/// worker process reads it, beside the number's pacing counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Brakes {
    /// Until when the number runs at half its limit (unix ms).
    pub slow_until_ms: Option<i64>,
    /// Until when the number's sends are held back (unix ms), and the code that said stop.
    pub hold: Option<(i64, i64)>,
}

impl Brakes {
    /// The code of the hold, while it lasts at `now_ms`.
    pub fn held(&self, now_ms: i64) -> Option<i64> {
        self.hold
            .filter(|(until, _)| now_ms < *until)
            .map(|(_, code)| code)
    }

    /// The limit to pace by at `now_ms`: half of `limit` while the slow-down lasts.
    pub fn limit(&self, limit: u32, now_ms: i64) -> u32 {
        match self.slow_until_ms {
            Some(until) if now_ms < until => (limit / 2).max(1),
            _ => limit,
        }
    }
}

/// Where a number's [`Brakes`] are shared between worker processes.
pub trait BrakeStore: Send + Sync {
    /// The number's brakes as stored (none set: the default).
    fn brakes(
        &self,
        phone_number_id: &str,
    ) -> impl Future<Output = Result<Brakes, StoreError>> + Send;

    /// Slows the number down until `until_ms`, unless it already is until later.
    fn slow_down(
        &self,
        phone_number_id: &str,
        until_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Holds the number's sends back until `until_ms` for `code`, unless a hold already lasts
    /// until later.
    fn hold(
        &self,
        phone_number_id: &str,
        until_ms: i64,
        code: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: BrakeStore> BrakeStore for Arc<T> {
    fn brakes(
        &self,
        phone_number_id: &str,
    ) -> impl Future<Output = Result<Brakes, StoreError>> + Send {
        (**self).brakes(phone_number_id)
    }

    fn slow_down(
        &self,
        phone_number_id: &str,
        until_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).slow_down(phone_number_id, until_ms)
    }

    fn hold(
        &self,
        phone_number_id: &str,
        until_ms: i64,
        code: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).hold(phone_number_id, until_ms, code)
    }
}

/// How a [`Pacer`] leases. The defaults suit every limit from 1 to 1,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerConfig {
    /// Shards per slot, `1..=`[`MAX_SHARDS`]; a slot never gets more shards than tokens.
    pub shards: u32,
    /// The most tokens one lease asks for, in percent of the slot's capacity (at least one
    /// token, at most a shard).
    pub max_batch_percent: u32,
    /// When less than this is left of the current slot, its tokens are not leased (they
    /// would likely expire before use); the next slot's are.
    pub lead_ms: i64,
    /// How long a counter item is kept after its slot ends (seconds), before TTL may delete it.
    pub ttl_secs: i64,
    /// The most store requests one call to [`Pacer::acquire`] makes.
    pub max_requests: u32,
    /// A worker that keeps finding the slots empty waits a random
    /// `0..min(2^pressure, max_backoff_slots)` extra slots before probing again, so that the
    /// losers of the race for a contended number do not write once per slot each.
    pub max_backoff_slots: u32,
}

impl Default for PacerConfig {
    fn default() -> Self {
        Self {
            shards: 1,
            max_batch_percent: 50,
            lead_ms: 10,
            ttl_secs: 60,
            max_requests: 6,
            max_backoff_slots: 16,
        }
    }
}

/// Leave to send one message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    /// The slot the token belongs to.
    pub slot: i64,
    /// The permit is void from this instant (unix ms), the end of its slot: a caller whose
    /// clock has reached it must not send, and asks again. (The pacer cannot see how long its
    /// own store call took.)
    pub use_before_ms: i64,
}

impl Permit {
    fn new(slot: i64) -> Self {
        Self {
            slot,
            use_before_ms: slot_start(slot + 1),
        }
    }

    /// Whether the permit may still be used at `now_ms`.
    pub fn is_valid_at(&self, now_ms: i64) -> bool {
        slot_of(now_ms) == self.slot
    }
}

/// The answer of [`Pacer::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// Send now (before [`Permit::use_before_ms`]).
    Permit(Permit),
    /// No token now: ask again at `until_ms` (unix ms, always later than `now_ms`).
    Wait {
        /// When to ask again.
        until_ms: i64,
    },
}

/// Counters of one [`Pacer`], for cost reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacerStats {
    /// Lease requests sent to the store.
    pub requests: u64,
    /// Lease requests the store refused (the shard had too few tokens left).
    pub refused: u64,
    /// Tokens the store granted.
    pub leased: u64,
    /// Permits handed out (a released permit handed out again counts twice).
    pub permits: u64,
}

#[derive(Debug, Default)]
struct SlotCache {
    /// Leased tokens not yet handed out.
    tokens: u32,
    /// What is known to be left in each shard (`None`: unknown).
    left: Vec<Option<u32>>,
}

/// Fixed-point scale of the pace estimate (1/16 ms).
const PACE_SCALE: i64 = 16;

#[derive(Debug, Default)]
struct NumberCache {
    limit: u32,
    slots: BTreeMap<i64, SlotCache>,
    /// When the last permit was handed out (unix ms).
    last_permit_ms: Option<i64>,
    /// The worker's pace: moving average of the time from a permit to its next call, in
    /// 1/16 ms. How many tokens it can spend in a slot follows from it.
    pace: Option<i64>,
    /// Rises by one for each call that found every slot it tried empty, falls by one for each
    /// that leased: under contention it settles where about half the tries win.
    pressure: u32,
    /// The last slot in which a lease was refused.
    refused_in: Option<i64>,
}

impl NumberCache {
    /// Forgets past slots, and learns the worker's pace from this call.
    fn roll(&mut self, slot: i64, limit: u32, now_ms: i64) {
        if self.limit != limit {
            // Another limit means other capacities: what is known about shards is void (tokens
            // already leased stay valid for their slot).
            self.limit = limit;
            for c in self.slots.values_mut() {
                c.left.clear();
            }
        }
        self.slots = self.slots.split_off(&slot);
        if let Some(last) = self.last_permit_ms.take() {
            let sample = (now_ms - last).clamp(0, 60_000) * PACE_SCALE;
            self.pace = Some(self.pace.map_or(sample, |p| (3 * p + sample) / 4));
        }
    }

    /// How many tokens the worker can spend from `now_ms` to the end of `slot`, as far as its
    /// pace and the caller's `backlog` tell; 1 when neither does.
    fn demand(&self, slot: i64, now_ms: i64, backlog: Option<u32>) -> u32 {
        let time_left = slot_start(slot + 1) - now_ms.max(slot_start(slot));
        let by_pace = self.pace.map(|p| {
            let n = (time_left * PACE_SCALE) / p.max(PACE_SCALE / 4);
            u32::try_from(n.max(1)).unwrap_or(u32::MAX)
        });
        match (backlog, by_pace) {
            (Some(b), Some(p)) => b.min(p),
            (Some(b), None) => b,
            (None, Some(p)) => p,
            (None, None) => 1,
        }
        .max(1)
    }

    fn left(&self, slot: i64, shard: u32) -> Option<u32> {
        self.slots
            .get(&slot)
            .and_then(|c| c.left.get(shard as usize).copied().flatten())
    }

    fn set_left(&mut self, slot: i64, shard: u32, shards: u32, left: u32) {
        let c = self.slots.entry(slot).or_default();
        if c.left.len() < shards as usize {
            c.left.resize(shards as usize, None);
        }
        if let Some(l) = c.left.get_mut(shard as usize) {
            *l = Some(left);
        }
    }

    fn take(&mut self, slot: i64, now_ms: i64) -> bool {
        match self.slots.get_mut(&slot) {
            Some(c) if c.tokens > 0 => {
                c.tokens -= 1;
                self.last_permit_ms = Some(now_ms);
                true
            }
            _ => false,
        }
    }
}

/// The per-number rate limiter a worker process calls before each send. It is shared by the
/// process's concurrent tasks (`&self`), and keeps leased tokens locally so that most permits
/// cost no request. See the module docs for the algorithm and its bound.
#[derive(Debug)]
pub struct Pacer<S> {
    store: S,
    config: PacerConfig,
    seed: u64,
    numbers: Mutex<HashMap<String, NumberCache>>,
    requests: AtomicU64,
    refused: AtomicU64,
    leased: AtomicU64,
    permits: AtomicU64,
    rng: AtomicU64,
}

impl<S: LeaseStore> Pacer<S> {
    /// A pacer on `store` with the default [`PacerConfig`]. `seed` spreads workers over the
    /// shards and de-synchronises their back-off (any per-process value: a hash of the Lambda
    /// request id, a random number).
    pub fn new(store: S, seed: u64) -> Self {
        Self::with_config(store, seed, PacerConfig::default())
    }

    /// A pacer with an explicit configuration.
    pub fn with_config(store: S, seed: u64, config: PacerConfig) -> Self {
        Self {
            store,
            config,
            seed,
            numbers: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            leased: AtomicU64::new(0),
            permits: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &PacerConfig {
        &self.config
    }

    /// The counters so far.
    pub fn stats(&self) -> PacerStats {
        PacerStats {
            requests: self.requests.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            leased: self.leased.load(Ordering::Relaxed),
            permits: self.permits.load(Ordering::Relaxed),
        }
    }

    /// One permit to send from `phone_number_id` under `limit` messages per second at
    /// `now_ms`, or when to ask again. A lease asks for as many tokens as the worker's pace
    /// (learnt from its calls) lets it spend in the slot. See [`Pacer::acquire_for`].
    pub async fn acquire(
        &self,
        phone_number_id: &str,
        limit: u32,
        now_ms: i64,
    ) -> Result<Acquire, StoreError> {
        self.acquire_inner(phone_number_id, limit, None, now_ms)
            .await
    }

    /// Like [`Pacer::acquire`], when the caller knows it has at most `backlog` sends for this
    /// number ready to go at once (this one included; e.g. the rest of its SQS batch, sent
    /// concurrently): a lease then asks for up to that many tokens, never more.
    ///
    /// Costs no request while leased tokens of the current slot are left; otherwise a few
    /// conditional writes at most ([`PacerConfig::max_requests`]). A `limit` of 0 pauses the
    /// number. Store failures are returned: the caller should not send (fail closed).
    pub async fn acquire_for(
        &self,
        phone_number_id: &str,
        limit: u32,
        backlog: u32,
        now_ms: i64,
    ) -> Result<Acquire, StoreError> {
        self.acquire_inner(phone_number_id, limit, Some(backlog), now_ms)
            .await
    }

    async fn acquire_inner(
        &self,
        phone_number_id: &str,
        limit: u32,
        backlog: Option<u32>,
        now_ms: i64,
    ) -> Result<Acquire, StoreError> {
        let slot = slot_of(now_ms);
        if limit == 0 {
            return Ok(Acquire::Wait {
                until_ms: slot_start(slot + SLOTS_PER_WINDOW - 1),
            });
        }
        let contended = {
            let mut numbers = self.lock();
            let n = numbers.entry(phone_number_id.to_owned()).or_default();
            n.roll(slot, limit, now_ms);
            if n.take(slot, now_ms) {
                return Ok(self.permit(slot));
            }
            n.refused_in
                .is_some_and(|r| r >= slot - CONTENTION_MEMORY_SLOTS)
        };

        // A worker that was just refused knows the current slot went to earlier askers: it
        // goes straight for the next one. So does one too close to the slot's end.
        let first = if !contended && slot_start(slot + 1) - now_ms >= self.config.lead_ms {
            slot
        } else {
            slot + 1
        };
        let mut requests = 0u32;
        for target in first..=slot + 1 {
            let capacity = slot_capacity(limit, target);
            if capacity == 0 {
                continue;
            }
            let shards = self.shards(capacity);
            let batch = (u64::from(capacity) * u64::from(self.config.max_batch_percent))
                .div_ceil(100)
                .max(1);
            let want = {
                let numbers = self.lock();
                let (demand, cached) = numbers.get(phone_number_id).map_or((1, 0), |n| {
                    (
                        n.demand(target, now_ms, backlog),
                        n.slots.get(&target).map_or(0, |c| c.tokens),
                    )
                });
                u32::try_from(batch)
                    .unwrap_or(u32::MAX)
                    .min(demand)
                    .saturating_sub(cached)
            };
            if want == 0 && target > slot {
                return Ok(Acquire::Wait {
                    until_ms: slot_start(target),
                });
            }
            let home = (self.seed.wrapping_add(target as u64) % u64::from(shards)) as u32;
            for i in 0..shards {
                let shard = (home + i) % shards;
                let shard_cap = shard_capacity(capacity, shards, shard);
                loop {
                    // (Another task may have rolled the cache past this slot meanwhile.)
                    let known = self
                        .lock()
                        .get(phone_number_id)
                        .and_then(|n| n.left(target, shard));
                    let count = want.min(shard_cap).min(known.unwrap_or(shard_cap));
                    if count == 0 || requests >= self.config.max_requests {
                        break;
                    }
                    requests += 1;
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    let key = ShardKey {
                        phone_number_id,
                        slot: target,
                        shard,
                    };
                    let expires_at =
                        slot_start(target + 1).div_euclid(1000) + 1 + self.config.ttl_secs;
                    let lease = self
                        .store
                        .try_lease(&key, count, shard_cap, expires_at)
                        .await?;
                    let granted = lease.granted.min(count);
                    let left = lease.used.map(|u| shard_cap.saturating_sub(u));
                    {
                        let mut numbers = self.lock();
                        let n = numbers.entry(phone_number_id.to_owned()).or_default();
                        if let Some(left) = left {
                            n.set_left(target, shard, shards, left);
                        }
                        if granted == 0 {
                            self.refused.fetch_add(1, Ordering::Relaxed);
                            n.refused_in = Some(slot);
                        } else {
                            n.pressure = n.pressure.saturating_sub(1);
                            self.leased.fetch_add(u64::from(granted), Ordering::Relaxed);
                            n.slots.entry(target).or_default().tokens += granted;
                            if target == slot && n.take(slot, now_ms) {
                                return Ok(self.permit(slot));
                            }
                            if target > slot {
                                return Ok(Acquire::Wait {
                                    until_ms: slot_start(target),
                                });
                            }
                        }
                    }
                    // Refused: ask again for exactly what is left, if anything is.
                    if granted > 0 || left.is_none_or(|l| l == 0) {
                        break;
                    }
                }
            }
        }

        // Nothing leased: wait for the first later slot this process already holds tokens
        // for; else for the first slot that is not known to be empty, and, after losing the
        // race, a few random slots more.
        let mut numbers = self.lock();
        let n = numbers.entry(phone_number_id.to_owned()).or_default();
        if let Some((&s, _)) = n.slots.range(slot + 1..).find(|(_, c)| c.tokens > 0) {
            return Ok(Acquire::Wait {
                until_ms: slot_start(s),
            });
        }
        let until = (slot + 1..slot + 1 + SLOTS_PER_WINDOW)
            .find(|&s| {
                let capacity = slot_capacity(limit, s);
                capacity > 0
                    && (0..self.shards(capacity)).any(|sh| n.left(s, sh).is_none_or(|l| l > 0))
            })
            .unwrap_or(slot + 1);
        let mut backoff = 0;
        if requests > 0 {
            n.pressure = (n.pressure + 1).min(16);
            let window = (1u64 << n.pressure).min(u64::from(self.config.max_backoff_slots.max(1)));
            backoff = (self.random() % window) as i64;
        }
        Ok(Acquire::Wait {
            until_ms: slot_start(until + backoff),
        })
    }

    /// Gives back a permit that was not used (say the recipient's pair rate said wait), so
    /// another send of this process can use it while its slot lasts. Costs no request.
    pub fn release(&self, phone_number_id: &str, permit: Permit, now_ms: i64) {
        if !permit.is_valid_at(now_ms) {
            return;
        }
        let mut numbers = self.lock();
        if let Some(n) = numbers.get_mut(phone_number_id) {
            n.slots.entry(permit.slot).or_default().tokens += 1;
            self.permits.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn shards(&self, capacity: u32) -> u32 {
        self.config.shards.clamp(1, MAX_SHARDS).min(capacity.max(1))
    }

    fn permit(&self, slot: i64) -> Acquire {
        self.permits.fetch_add(1, Ordering::Relaxed);
        Acquire::Permit(Permit::new(slot))
    }

    /// SplitMix64 over the seed: deterministic for a given seed and call order.
    fn random(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The cache is only a cache: a panic in another task while holding it leaves it usable.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, NumberCache>> {
        self.numbers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::memory::InMemoryPacingStore;
    use crate::pacing::sim::now;

    #[test]
    fn any_eleven_consecutive_slots_hold_the_window_budget() {
        for limit in [
            1, 5, 9, 10, 19, 20, 25, 33, 79, 80, 99, 250, 999, 1000, 4321,
        ] {
            let m = window_budget(limit);
            for start in -30i64..30 {
                let sum: u64 = (start..start + SLOTS_PER_WINDOW)
                    .map(|k| u64::from(slot_capacity(limit, k)))
                    .sum();
                assert_eq!(sum, m, "L={limit} start={start}");
            }
            // The first slot of an idle number is at most 10 % of L (rounded up).
            let first = (0..11).map(|k| slot_capacity(limit, k)).max().unwrap();
            assert!(u64::from(first) <= m.div_ceil(11), "L={limit}");
        }
        assert_eq!(slot_capacity(80, 12345), 8);
        assert_eq!(slot_capacity(1000, 7), 100);
        assert_eq!(slot_capacity(20, -3), 2);
        assert_eq!(window_budget(25), 27);
    }

    #[test]
    fn shards_split_a_slot_without_losing_tokens() {
        for capacity in 0..50 {
            for shards in 1..9 {
                let sum: u32 = (0..shards)
                    .map(|s| shard_capacity(capacity, shards, s))
                    .sum();
                assert_eq!(sum, capacity);
            }
        }
        assert_eq!(shard_capacity(10, 4, 0), 3);
        assert_eq!(shard_capacity(10, 4, 3), 2);
    }

    #[test]
    fn slots_are_aligned_to_the_epoch_even_before_it() {
        assert_eq!(slot_of(0), 0);
        assert_eq!(slot_of(99), 0);
        assert_eq!(slot_of(100), 1);
        assert_eq!(slot_of(-1), -1);
        assert_eq!(slot_start(slot_of(1_763_892_000_123)), 1_763_892_000_100);
    }

    #[test]
    fn leased_tokens_are_spent_locally_without_more_writes() {
        let store = InMemoryPacingStore::default();
        let pacer = Pacer::new(&store, 0);
        let t = 1_000_000_000_000;
        // A backlog of 3 at L = 80 (8 per slot, batch ≤ 4 at 50 %)...
        let a = now(pacer.acquire_for("p", 80, 3, t)).unwrap();
        assert!(matches!(a, Acquire::Permit(p) if p.slot == slot_of(t)));
        assert_eq!(store.requests(), 1);
        assert_eq!(store.used("p", slot_of(t), 0), 3);
        // ...the next permits come from the cache.
        for i in 1..3 {
            assert!(matches!(
                now(pacer.acquire("p", 80, t + i)).unwrap(),
                Acquire::Permit(_)
            ));
        }
        assert_eq!(store.requests(), 1);
        assert_eq!(pacer.stats().permits, 3);
        // A backlog larger than the batch is capped at the batch.
        let b = Pacer::new(&store, 1);
        now(b.acquire_for("p", 80, 10, t + 5)).unwrap();
        assert_eq!(store.used("p", slot_of(t), 0), 7);
    }

    #[test]
    fn tokens_already_leased_for_the_next_slot_are_not_leased_again() {
        // Ten concurrent sends of one process, each told the backlog is 10, asking near the
        // end of a slot: the first leases the next slot's ten tokens, the others wait for
        // them instead of leasing (and later dropping) more.
        let store = InMemoryPacingStore::default();
        let pacer = Pacer::new(&store, 0);
        let t = 1_000_000_000_095;
        for _ in 0..10 {
            assert_eq!(
                now(pacer.acquire_for("p", 1000, 10, t)).unwrap(),
                Acquire::Wait {
                    until_ms: slot_start(slot_of(t) + 1)
                }
            );
        }
        assert_eq!(store.used("p", slot_of(t) + 1, 0), 10);
        assert_eq!(store.requests(), 1);
        // At the slot all ten are served from the cache.
        let next = slot_start(slot_of(t) + 1);
        for _ in 0..10 {
            assert!(matches!(
                now(pacer.acquire_for("p", 1000, 10, next)).unwrap(),
                Acquire::Permit(_)
            ));
        }
        assert_eq!(store.requests(), 1);
    }

    #[test]
    fn the_lease_size_follows_the_workers_pace() {
        let store = InMemoryPacingStore::default();
        let pacer = Pacer::new(&store, 0);
        let t = 1_000_000_000_000;
        // One send every 20 ms: about five per 100 ms slot.
        let mut at = t - 10 * SLOT_MS;
        while at < t {
            now(pacer.acquire("p", 1000, at)).unwrap();
            at += 20;
        }
        let before = store.used("p", slot_of(t), 0);
        now(pacer.acquire("p", 1000, t)).unwrap();
        assert_eq!(store.used("p", slot_of(t), 0) - before, 5);
        // Without a pace (first call) and without a backlog: one token.
        let other = Pacer::new(&store, 1);
        now(other.acquire("q", 1000, t)).unwrap();
        assert_eq!(store.used("q", slot_of(t), 0), 1);
    }

    #[test]
    fn a_full_slot_means_waiting_for_the_next_with_its_tokens_leased_early() {
        let store = InMemoryPacingStore::default();
        let a = Pacer::new(&store, 0);
        let b = Pacer::new(&store, 1);
        let t = 1_000_000_000_000; // slot start
        let mut granted = 0;
        for i in 0..8 {
            if let Acquire::Permit(_) = now(a.acquire("p", 80, t + i)).unwrap() {
                granted += 1;
            }
        }
        assert_eq!(granted, 8, "a takes the whole slot");
        // b finds the slot full, so it leases the next slot's tokens and waits for it.
        let w = now(b.acquire("p", 80, t + 20)).unwrap();
        assert_eq!(
            w,
            Acquire::Wait {
                until_ms: t + SLOT_MS
            }
        );
        assert_eq!(store.used("p", slot_of(t) + 1, 0), 1);
        let requests = store.requests();
        assert!(matches!(
            now(b.acquire("p", 80, t + SLOT_MS)).unwrap(),
            Acquire::Permit(_)
        ));
        assert_eq!(store.requests(), requests, "the early lease was enough");
    }

    #[test]
    fn tokens_expire_with_their_slot() {
        let store = InMemoryPacingStore::default();
        let pacer = Pacer::new(&store, 0);
        let t = 1_000_000_000_000;
        now(pacer.acquire_for("p", 1000, 20, t)).unwrap();
        assert_eq!(store.used("p", slot_of(t), 0), 20);
        // 19 tokens left, but the slot is over: the next permit needs a new lease.
        let a = now(pacer.acquire("p", 1000, t + SLOT_MS)).unwrap();
        assert!(matches!(a, Acquire::Permit(p) if p.slot == slot_of(t) + 1));
        assert_eq!(store.requests(), 2);
    }

    #[test]
    fn late_in_a_slot_the_next_slot_is_leased() {
        let store = InMemoryPacingStore::default();
        let pacer = Pacer::new(&store, 0);
        let t = 1_000_000_000_000;
        let a = now(pacer.acquire("p", 80, t + SLOT_MS - 3)).unwrap();
        assert_eq!(
            a,
            Acquire::Wait {
                until_ms: t + SLOT_MS
            }
        );
        assert_eq!(store.used("p", slot_of(t), 0), 0);
        assert_eq!(store.used("p", slot_of(t) + 1, 0), 1);
    }

    #[test]
    fn a_refusal_asks_again_for_exactly_what_is_left() {
        let store = InMemoryPacingStore::default();
        let t = 1_000_000_000_000;
        // Someone else left 3 of 100 tokens in this slot.
        now(store.try_lease(
            &ShardKey {
                phone_number_id: "p",
                slot: slot_of(t),
                shard: 0,
            },
            97,
            100,
            0,
        ))
        .unwrap();
        let pacer = Pacer::new(&store, 0);
        let a = now(pacer.acquire_for("p", 1000, 25, t)).unwrap();
        assert!(matches!(a, Acquire::Permit(_)));
        assert_eq!(store.used("p", slot_of(t), 0), 100);
        assert_eq!(store.requests(), 3, "97 + refused 25 + granted 3");
    }

    #[test]
    fn a_released_permit_is_handed_out_again() {
        let store = InMemoryPacingStore::default();
        let pacer = Pacer::new(&store, 0);
        let t = 1_000_000_000_000;
        let Acquire::Permit(p) = now(pacer.acquire("p", 20, t)).unwrap() else {
            panic!("expected a permit");
        };
        pacer.release("p", p, t + 5);
        assert!(matches!(
            now(pacer.acquire("p", 20, t + 6)).unwrap(),
            Acquire::Permit(_)
        ));
        assert_eq!(store.requests(), 1);
        // A permit released after its slot is gone.
        pacer.release("p", p, t + SLOT_MS);
        assert_eq!(pacer.stats().permits, 1);
    }

    #[test]
    fn a_paused_number_waits_without_requests() {
        let store = InMemoryPacingStore::default();
        let pacer = Pacer::new(&store, 0);
        let a = now(pacer.acquire("p", 0, 5_000)).unwrap();
        assert_eq!(a, Acquire::Wait { until_ms: 6_000 });
        assert_eq!(store.requests(), 0);
    }

    #[test]
    fn a_store_failure_is_returned_not_a_permit() {
        let store = InMemoryPacingStore::default();
        store.set_failing(true);
        let pacer = Pacer::new(&store, 0);
        assert!(now(pacer.acquire("p", 80, 5_000)).is_err());
    }

    #[test]
    fn small_limits_skip_empty_slots() {
        // L = 5: M = 5, so 5 of every 11 slots have one token and the rest none.
        let store = InMemoryPacingStore::default();
        let pacer = Pacer::new(&store, 0);
        let mut t = 0;
        let mut sends = 0;
        while t < 11_000 {
            match now(pacer.acquire("p", 5, t)).unwrap() {
                Acquire::Permit(_) => {
                    sends += 1;
                    t += 1;
                }
                Acquire::Wait { until_ms } => {
                    assert!(until_ms > t);
                    t = until_ms;
                }
            }
        }
        assert_eq!(sends, 50);
    }

    #[test]
    fn acquire_future_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let store = InMemoryPacingStore::default();
        let pacer = Pacer::new(&store, 0);
        let f = pacer.acquire("p", 80, 0);
        is_send(&f);
    }
}
