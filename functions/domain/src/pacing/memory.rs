//! An in-memory [`LeaseStore`] and [`PairStore`], with the same conditional semantics as the
//! DynamoDB adapter, for unit tests, the pacing simulation and handler tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::pair::{PairState, PairStore};
use super::{BrakeStore, Brakes, Lease, LeaseStore, ShardKey};
use crate::customer::CustomerKey;
use crate::ports::StoreError;

type CounterKey = (String, i64, u32);
type PairKey = (String, String);

/// Slot counters and pair states in memory.
#[derive(Debug, Default)]
pub struct InMemoryPacingStore {
    counters: Mutex<HashMap<CounterKey, u32>>,
    pairs: Mutex<HashMap<PairKey, PairState>>,
    brakes: Mutex<HashMap<String, Brakes>>,
    requests: AtomicU64,
    fail: AtomicBool,
    interleave: AtomicU32,
}

fn unavailable() -> StoreError {
    StoreError::Unavailable("in-memory pacing store told to fail".into())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl InMemoryPacingStore {
    /// Requests served so far (leases, reads and writes alike), as a cost measure.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The counter of a shard of a slot (0 when never written).
    pub fn used(&self, phone_number_id: &str, slot: i64, shard: u32) -> u32 {
        lock(&self.counters)
            .get(&(phone_number_id.to_owned(), slot, shard))
            .copied()
            .unwrap_or_default()
    }

    /// Makes every later call fail with `StoreError::Unavailable` (or succeed again).
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    /// Makes the next `n` pair-state writes lose a race: just before each, another writer
    /// stores a newer version.
    pub fn interleave_pair_writes(&self, n: u32) {
        self.interleave.store(n, Ordering::SeqCst);
    }

    fn request(&self) -> Result<(), StoreError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if self.fail.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        Ok(())
    }
}

impl BrakeStore for InMemoryPacingStore {
    async fn brakes(&self, phone_number_id: &str) -> Result<Brakes, StoreError> {
        self.request()?;
        Ok(lock(&self.brakes)
            .get(phone_number_id)
            .copied()
            .unwrap_or_default())
    }

    async fn slow_down(&self, phone_number_id: &str, until_ms: i64) -> Result<(), StoreError> {
        self.request()?;
        let mut all = lock(&self.brakes);
        let b = all.entry(phone_number_id.to_owned()).or_default();
        if b.slow_until_ms.is_none_or(|t| t < until_ms) {
            b.slow_until_ms = Some(until_ms);
        }
        Ok(())
    }

    async fn hold(
        &self,
        phone_number_id: &str,
        until_ms: i64,
        code: i64,
    ) -> Result<(), StoreError> {
        self.request()?;
        let mut all = lock(&self.brakes);
        let b = all.entry(phone_number_id.to_owned()).or_default();
        if b.hold.is_none_or(|(t, _)| t < until_ms) {
            b.hold = Some((until_ms, code));
        }
        Ok(())
    }
}

impl LeaseStore for InMemoryPacingStore {
    async fn try_lease(
        &self,
        key: &ShardKey<'_>,
        count: u32,
        capacity: u32,
        _expires_at: i64,
    ) -> Result<Lease, StoreError> {
        if count == 0 || count > capacity {
            return Ok(Lease {
                granted: 0,
                used: None,
            });
        }
        self.request()?;
        let mut counters = lock(&self.counters);
        let used = counters
            .entry((key.phone_number_id.to_owned(), key.slot, key.shard))
            .or_default();
        if *used <= capacity - count {
            *used += count;
            Ok(Lease {
                granted: count,
                used: Some(*used),
            })
        } else {
            Ok(Lease {
                granted: 0,
                used: Some(*used),
            })
        }
    }
}

impl PairStore for InMemoryPacingStore {
    async fn pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        _consistent: bool,
    ) -> Result<Option<PairState>, StoreError> {
        self.request()?;
        Ok(lock(&self.pairs)
            .get(&(phone_number_id.to_owned(), customer.as_storage()))
            .copied())
    }

    async fn put_pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        state: &PairState,
        _expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.request()?;
        let mut pairs = lock(&self.pairs);
        let key = (phone_number_id.to_owned(), customer.as_storage());
        let raced = self
            .interleave
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if raced {
            let other = pairs.get(&key).copied().unwrap_or_default();
            pairs.insert(
                key.clone(),
                PairState {
                    rev: other.rev + 1,
                    ..other
                },
            );
        }
        let stored_rev = pairs.get(&key).map_or(0, |s| s.rev);
        if stored_rev + 1 != state.rev {
            return Ok(false);
        }
        pairs.insert(key, *state);
        Ok(true)
    }
}
