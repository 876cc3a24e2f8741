//! Pair rate: how fast one business number may message one recipient.
//!
//! Meta allows about one message per 6 s to the same user; short bursts pass but "borrow from
//! the future" (a burst of 20 means about two minutes of silence), and going over answers
//! 131056, to be retried after `4^n` seconds (1, 4, 16, 64 … s).
//!
//! [`PairPolicy`] is that rule as a token bucket of `burst` tokens refilled one per
//! `min_spacing`, kept as a single number per recipient, its *theoretical arrival time*
//! (GCRA): a send at `t` is allowed when `max(tat, t) − t ≤ (burst − 1) · spacing`, and moves
//! `tat` to `max(tat, t) + spacing`. So `burst` messages may go at once, after which they are
//! spaced by `min_spacing`, and a quiet recipient earns the burst back at one token per
//! spacing: the long-run rate never exceeds Meta's.
//!
//! Why not a ring of the last send times: a ring of the last `B` sends can only say "at most
//! `B` sends in any `B`-send span", which lets `B` sends through every 6 s *forever*: `B`
//! times Meta's sustained rate, the borrowing Meta punishes. The GCRA number remembers the
//! debt exactly, in one attribute, and the state ([`PairState`]) stays one small item per
//! recipient with an optimistic version (`rev`) for concurrent workers.
//!
//! A 131056 ([`PairPolicy::after_rate_limited`]) blocks the recipient for `4^n` s (`n` = the
//! consecutive 131056s so far, capped by [`PairPolicy::max_backoff_ms`]) and removes the
//! burst allowance for the time after it, since Meta's view of the bucket is evidently fuller
//! than ours (replies from the WhatsApp Business app on a coexistence number, sends from
//! elsewhere). `n` starts again from 0 when no 131056 arrived within a minute (or the last
//! back-off, if longer) after the block ended.
//!
//! [`PairGate`] runs the rule against a [`PairStore`]: one read (eventually consistent; the
//! outbound FIFO groups by recipient so a stale read is rare) and one conditional write per
//! allowed send, a re-read only on a conflict.

use std::future::Future;

use crate::customer::CustomerKey;
use crate::ports::StoreError;

/// The seconds to wait after the `n`-th consecutive 131056 (`n` from 0): `4^n` s, in ms,
/// saturating (callers cap it with [`PairPolicy::max_backoff_ms`]).
pub fn pair_backoff_ms(n: u32) -> i64 {
    4i64.checked_pow(n)
        .and_then(|s| s.checked_mul(1000))
        .unwrap_or(i64::MAX)
}

/// The pair-rate rule (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairPolicy {
    /// The sustained spacing between two messages to one recipient (Meta: 6 s).
    pub min_spacing_ms: i64,
    /// How many messages may go at once to a recipient who has been quiet (at least 1).
    pub burst: u32,
    /// The longest 131056 back-off.
    pub max_backoff_ms: i64,
}

impl Default for PairPolicy {
    /// 6 s spacing, bursts of 3 (a multi-bubble reply), back-off capped at one hour.
    fn default() -> Self {
        Self {
            min_spacing_ms: 6_000,
            burst: 3,
            max_backoff_ms: 3_600_000,
        }
    }
}

/// What is kept per recipient. The default is a recipient never messaged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairState {
    /// The theoretical arrival time (unix ms): the bucket is full when it is in the past.
    pub tat_ms: i64,
    /// Consecutive 131056 answers so far.
    pub strikes: u32,
    /// No send before this instant (unix ms), after a 131056.
    pub blocked_until_ms: i64,
    /// Version for optimistic writes: a stored state is only replaced by the state with the
    /// next `rev` (0 = nothing stored).
    pub rev: u64,
}

/// Whether a send to a recipient may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairDecision {
    /// Send now; store this state (its `rev` is the stored one + 1).
    Send(PairState),
    /// Not before this instant (unix ms).
    WaitUntil(i64),
}

impl PairPolicy {
    fn spacing(&self) -> i64 {
        self.min_spacing_ms.max(1)
    }

    fn burst_span(&self) -> i64 {
        i64::from(self.burst.max(1) - 1).saturating_mul(self.spacing())
    }

    /// Whether a send at `now_ms` may go, given the stored state (`None`: never messaged).
    pub fn decide(&self, state: Option<&PairState>, now_ms: i64) -> PairDecision {
        let s = state.copied().unwrap_or_default();
        if now_ms < s.blocked_until_ms {
            return PairDecision::WaitUntil(s.blocked_until_ms);
        }
        let tat = s.tat_ms.max(now_ms);
        let earliest = tat.saturating_sub(self.burst_span());
        if now_ms < earliest {
            return PairDecision::WaitUntil(earliest);
        }
        PairDecision::Send(PairState {
            tat_ms: tat.saturating_add(self.spacing()),
            rev: s.rev + 1,
            ..s
        })
    }

    /// The state after Meta answered 131056 at `now_ms`; the recipient may be retried at its
    /// `blocked_until_ms`.
    pub fn after_rate_limited(&self, state: Option<&PairState>, now_ms: i64) -> PairState {
        let s = state.copied().unwrap_or_default();
        let memory = pair_backoff_ms(s.strikes.saturating_sub(1))
            .min(self.max_backoff_ms)
            .max(60_000);
        let consecutive = s.strikes > 0 && now_ms < s.blocked_until_ms.saturating_add(memory);
        let n = if consecutive { s.strikes } else { 0 };
        let blocked_until = now_ms.saturating_add(pair_backoff_ms(n).min(self.max_backoff_ms));
        PairState {
            // After the block, one message at a time: no burst until the bucket refills.
            tat_ms: s
                .tat_ms
                .max(blocked_until.saturating_add(self.burst_span())),
            strikes: n + 1,
            blocked_until_ms: blocked_until,
            rev: s.rev + 1,
        }
    }

    /// The state with one send that `decide` let go handed back, because it did not go: the
    /// bucket as if it had not been taken (a block and its strikes stay).
    pub fn refund(&self, state: &PairState) -> PairState {
        PairState {
            tat_ms: state.tat_ms.saturating_sub(self.spacing()),
            rev: state.rev + 1,
            ..*state
        }
    }

    /// When the stored state no longer matters (unix seconds, for the store's TTL): the bucket
    /// is full again, the block is over and the strikes are forgotten.
    pub fn expires_at(&self, state: &PairState) -> i64 {
        let memory = pair_backoff_ms(state.strikes.saturating_sub(1))
            .min(self.max_backoff_ms)
            .max(60_000);
        let until = state
            .tat_ms
            .max(state.blocked_until_ms.saturating_add(memory));
        until.div_euclid(1000) + 60
    }
}

/// Where pair states are kept: one small item per (number, recipient).
pub trait PairStore: Send + Sync {
    /// The recipient's state, if one is stored. `consistent` asks for a strongly consistent
    /// read.
    fn pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        consistent: bool,
    ) -> impl Future<Output = Result<Option<PairState>, StoreError>> + Send;

    /// Stores `state` if the stored state's `rev` is `state.rev − 1` (nothing stored counts
    /// as `rev` 0); `Ok(false)` when another writer got there first. The item may be deleted
    /// after `expires_at` (unix s).
    fn put_pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        state: &PairState,
        expires_at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl<T: PairStore> PairStore for &T {
    fn pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        consistent: bool,
    ) -> impl Future<Output = Result<Option<PairState>, StoreError>> + Send {
        (**self).pair_state(phone_number_id, customer, consistent)
    }

    fn put_pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        state: &PairState,
        expires_at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).put_pair_state(phone_number_id, customer, state, expires_at)
    }
}

impl<T: PairStore> PairStore for std::sync::Arc<T> {
    fn pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        consistent: bool,
    ) -> impl Future<Output = Result<Option<PairState>, StoreError>> + Send {
        (**self).pair_state(phone_number_id, customer, consistent)
    }

    fn put_pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        state: &PairState,
        expires_at: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).put_pair_state(phone_number_id, customer, state, expires_at)
    }
}

/// How often [`PairGate`] re-reads and retries after losing a conditional write.
const ATTEMPTS: usize = 4;

/// A short pause when other writers keep winning for the same recipient: they are sending to
/// them right now, so waiting is the right answer anyway.
const CONTENDED_WAIT_MS: i64 = 100;

/// [`PairPolicy`] applied through a [`PairStore`].
#[derive(Debug, Clone)]
pub struct PairGate<S> {
    store: S,
    policy: PairPolicy,
}

impl<S: PairStore> PairGate<S> {
    /// A gate on `store` with `policy`.
    pub fn new(store: S, policy: PairPolicy) -> Self {
        Self { store, policy }
    }

    /// The policy.
    pub fn policy(&self) -> &PairPolicy {
        &self.policy
    }

    /// Takes a send to `customer` at `now_ms` from the recipient's allowance, or says when it
    /// may go. `Ok(None)` means send now (the allowance is already recorded).
    pub async fn reserve(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        for attempt in 0..ATTEMPTS {
            let stored = self
                .store
                .pair_state(phone_number_id, customer, attempt > 0)
                .await?;
            match self.policy.decide(stored.as_ref(), now_ms) {
                PairDecision::WaitUntil(t) => return Ok(Some(t)),
                PairDecision::Send(next) => {
                    let expires = self.policy.expires_at(&next);
                    if self
                        .store
                        .put_pair_state(phone_number_id, customer, &next, expires)
                        .await?
                    {
                        return Ok(None);
                    }
                }
            }
        }
        Ok(Some(now_ms + CONTENDED_WAIT_MS))
    }

    /// Hands back a send [`PairGate::reserve`] let go that did not go after all (another
    /// delivery of the message had claimed it, or the number had no capacity): the
    /// recipient's next message is not held for it. A refund that keeps losing to other
    /// writers is given up: the slot stays taken, as if it had been used.
    pub async fn give_back(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
    ) -> Result<(), StoreError> {
        for _ in 0..ATTEMPTS {
            let Some(stored) = self
                .store
                .pair_state(phone_number_id, customer, true)
                .await?
            else {
                return Ok(());
            };
            let next = self.policy.refund(&stored);
            let expires = self.policy.expires_at(&next);
            if self
                .store
                .put_pair_state(phone_number_id, customer, &next, expires)
                .await?
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Records that Meta answered 131056 for `customer` at `now_ms`; returns when to retry
    /// (unix ms).
    pub async fn rate_limited(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut retry_at = now_ms + pair_backoff_ms(0);
        for _ in 0..ATTEMPTS {
            let stored = self
                .store
                .pair_state(phone_number_id, customer, true)
                .await?;
            let next = self.policy.after_rate_limited(stored.as_ref(), now_ms);
            retry_at = next.blocked_until_ms;
            let expires = self.policy.expires_at(&next);
            if self
                .store
                .put_pair_state(phone_number_id, customer, &next, expires)
                .await?
            {
                break;
            }
        }
        Ok(retry_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::memory::InMemoryPacingStore;
    use crate::pacing::sim::now;
    use proptest::prelude::*;

    const T0: i64 = 1_000_000_000_000;

    fn send_all(policy: &PairPolicy, times: &[i64]) -> Vec<Result<i64, i64>> {
        let mut state: Option<PairState> = None;
        times
            .iter()
            .map(|&t| match policy.decide(state.as_ref(), t) {
                PairDecision::Send(s) => {
                    state = Some(s);
                    Ok(t)
                }
                PairDecision::WaitUntil(w) => Err(w),
            })
            .collect()
    }

    #[test]
    fn a_burst_of_three_goes_then_one_per_six_seconds() {
        let p = PairPolicy::default();
        let r = send_all(&p, &[T0, T0 + 10, T0 + 20, T0 + 30]);
        assert_eq!(r[..3], [Ok(T0), Ok(T0 + 10), Ok(T0 + 20)]);
        // The bucket: 3 sends from T0 → tat = T0 + 18 s; the 4th may go at tat − 12 s.
        assert_eq!(r[3], Err(T0 + 6_000));
    }

    #[test]
    fn sustained_sends_are_spaced_six_seconds_apart() {
        let p = PairPolicy::default();
        let mut state = None;
        let mut t = T0;
        let mut sent = vec![];
        while t < T0 + 120_000 {
            match p.decide(state.as_ref(), t) {
                PairDecision::Send(s) => {
                    state = Some(s);
                    sent.push(t);
                    t += 1;
                }
                PairDecision::WaitUntil(w) => t = w,
            }
        }
        // 3 at once, then one per 6 s: 3 + 19 within two minutes.
        assert_eq!(sent.len(), 22);
        for w in sent[3..].windows(2) {
            assert!(w[1] - w[0] >= 6_000, "{w:?}");
        }
    }

    #[test]
    fn a_quiet_recipient_earns_the_burst_back() {
        let p = PairPolicy::default();
        let r = send_all(
            &p,
            &[T0, T0 + 1, T0 + 2, T0 + 18_002, T0 + 18_003, T0 + 18_004],
        );
        assert!(r.iter().all(Result::is_ok), "{r:?}");
    }

    #[test]
    fn burst_one_is_strict_spacing() {
        let p = PairPolicy {
            burst: 1,
            ..PairPolicy::default()
        };
        let r = send_all(&p, &[T0, T0 + 5_999, T0 + 6_000]);
        assert_eq!(r, [Ok(T0), Err(T0 + 6_000), Ok(T0 + 6_000)]);
    }

    #[test]
    fn rate_limited_backs_off_four_to_the_n_seconds() {
        assert_eq!(
            (0..5).map(pair_backoff_ms).collect::<Vec<_>>(),
            [1_000, 4_000, 16_000, 64_000, 256_000]
        );
        assert_eq!(pair_backoff_ms(40), i64::MAX);

        let p = PairPolicy::default();
        let mut s = None;
        let mut t = T0;
        let mut waits = vec![];
        for _ in 0..8 {
            let next = p.after_rate_limited(s.as_ref(), t);
            waits.push(next.blocked_until_ms - t);
            assert_eq!(
                p.decide(Some(&next), t),
                PairDecision::WaitUntil(next.blocked_until_ms)
            );
            t = next.blocked_until_ms; // retried as soon as allowed, refused again
            s = Some(next);
        }
        assert_eq!(
            waits,
            [
                1_000, 4_000, 16_000, 64_000, 256_000, 1_024_000, 3_600_000, 3_600_000
            ]
        );
    }

    #[test]
    fn after_a_block_one_message_goes_and_the_burst_is_gone() {
        let p = PairPolicy::default();
        let blocked = p.after_rate_limited(None, T0);
        let PairDecision::Send(s) = p.decide(Some(&blocked), T0 + 1_000) else {
            panic!("allowed once the block is over");
        };
        assert_eq!(
            p.decide(Some(&s), T0 + 1_001),
            PairDecision::WaitUntil(T0 + 7_000)
        );
    }

    #[test]
    fn strikes_are_forgotten_after_a_quiet_minute() {
        let p = PairPolicy::default();
        let one = p.after_rate_limited(None, T0);
        let two = p.after_rate_limited(Some(&one), T0 + 30_000);
        assert_eq!(two.blocked_until_ms, T0 + 34_000, "consecutive: 4 s");
        let later = p.after_rate_limited(Some(&two), two.blocked_until_ms + 61_000);
        assert_eq!(later.strikes, 1);
        assert_eq!(later.blocked_until_ms, two.blocked_until_ms + 62_000);
    }

    #[test]
    fn the_state_expires_once_it_no_longer_matters() {
        let p = PairPolicy::default();
        let PairDecision::Send(s) = p.decide(None, T0) else {
            panic!()
        };
        assert_eq!(p.expires_at(&s), (T0 + 6_000) / 1000 + 60);
        let blocked = p.after_rate_limited(Some(&s), T0);
        assert!(p.expires_at(&blocked) * 1000 > blocked.blocked_until_ms + 60_000);
    }

    #[test]
    fn the_gate_reserves_through_the_store() {
        let store = InMemoryPacingStore::default();
        let gate = PairGate::new(&store, PairPolicy::default());
        let c = CustomerKey::Bsuid("US.1".into());
        for i in 0..3 {
            assert_eq!(now(gate.reserve("p", &c, T0 + i)).unwrap(), None);
        }
        assert_eq!(
            now(gate.reserve("p", &c, T0 + 3)).unwrap(),
            Some(T0 + 6_000)
        );
        // Another recipient and another number are unaffected.
        let d = CustomerKey::Phone("15550001".into());
        assert_eq!(now(gate.reserve("p", &d, T0 + 3)).unwrap(), None);
        assert_eq!(now(gate.reserve("q", &c, T0 + 3)).unwrap(), None);
        assert_eq!(
            now(gate.rate_limited("p", &c, T0 + 10)).unwrap(),
            T0 + 1_010
        );
        assert_eq!(
            now(gate.reserve("p", &c, T0 + 11)).unwrap(),
            Some(T0 + 1_010)
        );
    }

    #[test]
    fn a_slot_handed_back_is_free_again_and_a_block_stays() {
        let p = PairPolicy::default();
        let mut state = None;
        for _ in 0..3 {
            let PairDecision::Send(s) = p.decide(state.as_ref(), T0) else {
                panic!()
            };
            state = Some(s);
        }
        assert!(matches!(
            p.decide(state.as_ref(), T0),
            PairDecision::WaitUntil(_)
        ));
        let back = p.refund(&state.unwrap());
        assert!(matches!(p.decide(Some(&back), T0), PairDecision::Send(_)));
        let blocked = p.after_rate_limited(None, T0);
        assert_eq!(
            p.refund(&blocked).blocked_until_ms,
            blocked.blocked_until_ms
        );
    }

    #[test]
    fn a_lost_write_is_retried_on_a_fresh_read() {
        let store = InMemoryPacingStore::default();
        let c = CustomerKey::Bsuid("US.1".into());
        let gate = PairGate::new(&store, PairPolicy::default());
        // Another worker's write lands between this gate's read and its write, twice.
        store.interleave_pair_writes(2);
        assert_eq!(now(gate.reserve("p", &c, T0)).unwrap(), None);
        let s = now(store.pair_state("p", &c, true)).unwrap().unwrap();
        assert_eq!(s.rev, 3, "two foreign writes, then ours");
    }

    proptest! {
        /// Whatever the arrival times, the sends to one recipient never outrun the bucket:
        /// over any span from one send to another, at most `burst + span / spacing` sends.
        #[test]
        fn sends_never_outrun_the_bucket(
            gaps in proptest::collection::vec(0i64..20_000, 1..60),
            burst in 1u32..6,
        ) {
            let p = PairPolicy { burst, ..PairPolicy::default() };
            let mut state = None;
            let mut t = T0;
            let mut sent = vec![];
            for g in gaps {
                t += g;
                if let PairDecision::Send(s) = p.decide(state.as_ref(), t) {
                    state = Some(s);
                    sent.push(t);
                }
            }
            for i in 0..sent.len() {
                for j in i..sent.len() {
                    let n = (j - i + 1) as i64;
                    let span = sent[j] - sent[i];
                    prop_assert!(n <= i64::from(burst) + span / p.min_spacing_ms, "{sent:?}");
                }
            }
        }
    }
}
