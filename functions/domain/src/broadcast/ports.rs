//! The broadcast ports. Every method works on a batch, so a page of recipients costs a few
//! requests rather than a few per recipient.

use std::collections::HashMap;
use std::future::Future;

use crate::customer::{CustomerKey, CustomerRef};
use crate::model::MessagingLimit;
use crate::outbound::{SendId, SendRecord};
use crate::ports::{ConsentRecord, QueueError, Recorded, StoreError};
use crate::window::Window;

use super::{Broadcast, BroadcastId, LedgerEntry};

/// What the planner needs to know of one customer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Audience {
    /// The customer's resolved key (a phone resolves to its BSUID when an alias says so).
    pub key: Option<CustomerKey>,
    /// The customer's window, if they ever wrote.
    pub window: Option<Window>,
    /// The customer's consent records: scope `all`, and `marketing` when it was asked for.
    pub consents: Vec<ConsentRecord>,
}

/// Where broadcasts and their ledgers are kept.
pub trait BroadcastStore: Send + Sync {
    /// Claims an `Idempotency-Key` (`key`: its hash, scoped to the API key and number) for
    /// broadcast `id`, made from a request body whose hash is `body_hash`, until
    /// `expires_at` (unix s). `None`: claimed now. Otherwise the broadcast id and body hash
    /// that hold the key (a claim past its `expires_at` at `now` counts as gone).
    fn claim_creation(
        &self,
        key: &str,
        id: &BroadcastId,
        body_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<Option<(BroadcastId, String)>, StoreError>> + Send;

    /// Stores a new broadcast (`b.version` 0 becomes 1); `Duplicate` if the id exists.
    fn create_broadcast(
        &self,
        b: &Broadcast,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// A broadcast by id (strongly consistent).
    fn get_broadcast(
        &self,
        id: &BroadcastId,
    ) -> impl Future<Output = Result<Option<Broadcast>, StoreError>> + Send;

    /// Saves `b` over the version it was read at: `Ok(true)` and `b.version` incremented, or
    /// `Ok(false)` and nothing written if someone saved it in between.
    fn save_broadcast(
        &self,
        b: &mut Broadcast,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Writes ledger entries (overwriting an entry at the same position).
    fn put_entries(
        &self,
        entries: &[LedgerEntry],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` entries from position `from` on, in position order.
    fn entries(
        &self,
        id: &BroadcastId,
        from: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LedgerEntry>, StoreError>> + Send;

    /// For each send id, in the same order: the list position (`SendRecord::broadcast_index`)
    /// of the row that created that send, or `None` when no send has that id. A send without
    /// a position is an error (`Corrupt`): a broadcast's sends all have one.
    fn send_owners(
        &self,
        ids: &[SendId],
    ) -> impl Future<Output = Result<Vec<Option<u64>>, StoreError>> + Send;

    /// Stores each send unless a send with its id exists (an existing one is kept as it is:
    /// a planner re-doing a page must not reset a send that went out). `first_attempt`: the
    /// page was never planned before and the caller holds its claim, so none of these sends
    /// can exist yet: the store may write them without checking.
    fn create_sends(
        &self,
        sends: &[SendRecord],
        first_attempt: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The sends with these ids, in the same order (`None` for an unknown id).
    fn get_sends(
        &self,
        ids: &[SendId],
    ) -> impl Future<Output = Result<Vec<Option<SendRecord>>, StoreError>> + Send;

    /// What the planner needs of each customer of `phone_number_id`, in the same order. The
    /// `marketing` consent only when `marketing` (a marketing template): nothing else is
    /// refused for it (`consent::may_send`), so other broadcasts do not read it.
    fn audience(
        &self,
        phone_number_id: &str,
        who: &[CustomerRef],
        marketing: bool,
    ) -> impl Future<Output = Result<Vec<Audience>, StoreError>> + Send;

    /// Adds `add_ms` of sending to the queue of `phone_number_id`, shared by all its
    /// broadcasts: the queue then runs until `max(what it ran until, now_ms) + add_ms` (unix
    /// ms), which is returned. Two planners adding at once both count.
    fn queue_pace(
        &self,
        phone_number_id: &str,
        now_ms: i64,
        add_ms: i64,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Whether the number's quality rating is RED (a `FLAGGED` quality update is the newest).
    fn quality_red(
        &self,
        waba_id: &str,
        phone_number_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The messaging limit's state for a portfolio (see [`super::limit`] for the scheme).
pub trait LimitStore: Send + Sync {
    /// The portfolio's tier, from the newest `messaging_limit` account record.
    fn tier(
        &self,
        portfolio: &str,
    ) -> impl Future<Output = Result<Option<MessagingLimit>, StoreError>> + Send;

    /// Which of `customers` (storage keys) were charged after `since` (unix s), and when each
    /// was charged last.
    fn charged_since(
        &self,
        portfolio: &str,
        customers: &[String],
        since: i64,
    ) -> impl Future<Output = Result<HashMap<String, i64>, StoreError>> + Send;

    /// Adds each `(bucket, delta)` to the count of the hour bucket starting at `bucket`,
    /// without condition (a negative delta takes units away; a bucket that is gone stays
    /// gone): how [`super::limit::recount`] moves customers to the current hour.
    fn adjust_buckets(
        &self,
        portfolio: &str,
        deltas: &[(i64, i64)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes up to `want` units of the rolling-24-hour `limit` at `now` (unix s): adds them
    /// to the current hour's bucket, provided the buckets of the last 24 hours stay within
    /// `limit`. Returns how many were granted and, when fewer than wanted, when the oldest
    /// counted bucket leaves the window.
    fn reserve(
        &self,
        portfolio: &str,
        want: u64,
        limit: u64,
        now: i64,
    ) -> impl Future<Output = Result<(u64, Option<i64>), StoreError>> + Send;

    /// Records that `customers` were charged at `at` (each for 24 hours).
    fn record_charges(
        &self,
        portfolio: &str,
        customers: &[String],
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The outbound queue, in batches (SQS `SendMessageBatch` of 10).
pub trait OutboundBatch: Send + Sync {
    /// Queues every job (deduplicated by send id), or fails: on `Err` nothing may be assumed.
    fn enqueue_batch(
        &self,
        jobs: &[crate::ports::SendJob],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The planner's own queue: a step message for a broadcast, delivered after a delay.
pub trait StepQueue: Send + Sync {
    /// Queues a step for broadcast `id` of chain `chain`, delivered after `delay_secs`
    /// (capped by the adapter at what the queue allows; the planner re-checks the time).
    fn schedule(
        &self,
        id: &BroadcastId,
        chain: u64,
        delay_secs: i64,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}
