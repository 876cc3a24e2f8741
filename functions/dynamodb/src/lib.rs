//! `wa-dynamodb`: Ventana's DynamoDB adapter.
//!
//! It owns the table layout and every DynamoDB request Ventana makes, and implements
//! `wa-domain`'s store ports ([`InboundStore`], [`ConversationReader`], [`ApiKeyStore`],
//! [`SendStore`], [`Quarantine`], `TemplateStore`) on [`DynamoStore`]. SDK types stop here: callers see only domain types and
//! [`StoreError`]. It must not depend on Lambda, HTTP frameworks or other adapters (`wa-sqs`,
//! `wa-edge`); the domain must never depend on it.
//!
//! # Table
//!
//! One table (see [`create_table`]; `infra/template.yaml` declares the same): keys `pk` (S,
//! HASH) and `sk` (S, RANGE); one global secondary index `gsi1` on `gsi1pk` (S) / `gsi1sk` (S),
//! projection ALL; on-demand billing; TTL on the number attribute `ttl`.
//!
//! # Items
//!
//! | what | `pk` | `sk` | `gsi1pk` / `gsi1sk` | written with |
//! |---|---|---|---|---|
//! | message | `MSG#{wamid}` | `MSG` | `CONV#{pnid}#{customer}` / `{timestamp:010}#{wamid}` | one UpdateItem, `attribute_not_exists(id)` (failure → `Duplicate`) |
//! | its statuses | same item | | none (a status alone never enters a history) | UpdateItem `SET st_<status>` earliest-wins, `if_not_exists` for the rest; not for a receipt (`sent`, `delivered`, `read`) of an accepted send, which goes to the send only (below), and the history adds the send's receipts on read |
//! | window | `CONV#{pnid}#{customer}` | `WINDOW` | | UpdateItem, `cs_until` forward-only; a second one for `fep_until` |
//! | consent | `CONV#{pnid}#{customer}` | `CONSENT#{scope}` | | PutItem, `at` newest-wins; under a phone key, then a consistent GetItem of its alias and, if there is one, the same PutItem for the aliased customer |
//! | phone alias | `ALIAS#{pnid}#{wa_id}` | `ALIAS` | | PutItem, `attribute_not_exists(pk)` (first alias kept); then the phone's consents and window are copied to the customer (their own conditional writes) and `carried` is set (UpdateItem, `customer = :c`) |
//! | earlier key | `CONV#{pnid}#{customer}` | `PREVIOUS#{earlier customer}` | | UpdateItem `SET customer` (idempotent), when a phone becomes a BSUID's alias or a BSUID changes: the customer's history also reads the earlier key's `gsi1` partition |
//! | account record | `WABA#{waba_id}` | `ACCOUNT#{key}` | | PutItem, `at` newest-wins; attributes as `a_<name>` |
//! | event record | `EVENT#{sha256(natural_key)}` | `EVENT` | `EVENTS#{waba or pnid or -}` / `{at:010}#{hash}` | PutItem, `attribute_not_exists(pk)` |
//! | API key | `APIKEY#{hash}` | `APIKEY` | | PutItem; `scope`=`*` or `numbers` (L of S), `revoked` |
//! | send | `SEND#{id}` | `SEND` | none (see below) | PutItem: `attribute_not_exists(pk)` to create, `version = :read` to save (writes version + 1); a later status of an accepted send: one UpdateItem `SET st_{status}, version + 1` (and `pricing` if absent) if `state = accepted`, same `wamid` and no earlier time of that status (no read) |
//! | idempotency key | `IDEM#{key_hash}` | `IDEM` | | with its send in one TransactWriteItems: `attribute_not_exists(pk) OR expires_at <= :now` |
//! | template | `WABA#{waba_id}` | `TEMPLATE#{name}#{language}` | | PutItem, `at` newest-wins; the `TemplateDef` as JSON in `doc` (see `templates.rs`) |
//! | last template sync | `WABA#{waba_id}` | `TEMPLATES_SYNCED` | | PutItem, `at` newest-wins |
//! | number's account | `NUMBER#{pnid}` | `WABA` | | PutItem if new or changed, once per process and number |
//! | quarantine | `QUARANTINE#{sha256(body)}` | `CHUNK#{n:04}` (≤ 300 KiB of B each), then `META` | | BatchWriteItem for the chunks, then a conditional PutItem of `META` |
//!
//! `{customer}` is [`CustomerKey::as_storage`] (`u:<bsuid>` or `p:<digits>`); `{pnid}` is the
//! business phone number id.
//!
//! Why this shape:
//! - **No hot keys.** Messages are keyed by wamid, so writes spread over all partitions; a
//!   conversation's history is the GSI partition of one customer of one number, which only
//!   that customer writes to. Windows, consent and aliases are one item per customer.
//! - **Cheap writes.** A message is one write; its statuses update the same item (no item per
//!   status), except the receipts of a Ventana send, which update the send: the history
//!   record is in `gsi1` with projection ALL, so each write to it rewrites its index entry
//!   too (two units instead of one), while the send is not indexed. A history page reads
//!   its outbound messages' receipts from their sends (one BatchGetItem, reads being a
//!   fifth of the price of writes). A window is one write (two for ad referrals); aliases are
//!   read (½ unit, eventually consistent) before the conditional put, so the steady state
//!   costs no write. A new alias carries the phone's consents and window over to the BSUID
//!   once (see `DynamoStore::alias_phone` for why that order loses no opt-out).
//! - **Once and forward-only.** Everything that must happen once is a conditional write; the
//!   window, consent and account records only move forward; the first timestamp of a status
//!   (the earliest, as [`wa_domain::status::StatusHistory`] defines) and the first error are
//!   kept. The current status is derived on read from the `st_*` attributes present.
//! - **Sends are one document.** A send item holds the whole [`SendRecord`] as JSON in `doc`
//!   (so this adapter need not know every field the domain adds), its `version` for
//!   optimistic concurrency, and a few plain attributes for people (`state`, `pnid`). Sends
//!   are not in `gsi1`: its projection is ALL, so an indexed send would pay every one of its
//!   writes twice (3 of the 16 write units of an outbound message with its webhooks, as
//!   `scripts/e2e_cost.sh` measured them), and nothing reads sends by number. Each state
//!   change is one write of the whole item (bodies are capped by send-api; an item over
//!   400 KB is refused as [`StoreError::Corrupt`] before it is sent). Only a create with an
//!   `Idempotency-Key` costs a transaction (two items, twice the write units); a replayed key
//!   costs no write.
//! - **Retention.** Messages (and their statuses), events, quarantined bodies, sends and
//!   idempotency keys carry `ttl`. Windows, consent, aliases, accounts and API keys are state,
//!   not history, and have none.
//!
//! A message item also becomes the message's delivery record when a status arrives before the
//! message itself is recorded (outbound messages whose status webhook wins the race): the
//! status-only item has no `id` and no `gsi1` keys, and `record_message` then adds the message
//! with an UpdateItem (a PutItem would erase the statuses, and `attribute_not_exists(pk)`
//! would wrongly call it a duplicate).
#![warn(missing_docs)]

mod apikeys;
mod attr;
mod broadcasts;
mod cursor;
mod inbound;
mod keys;
mod ledger;
mod pacer;
pub mod quarantine;
mod reader;
mod schema;
mod sends;
mod templates;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;

pub use schema::{SetupError, create_table};

#[cfg(doc)]
use wa_domain::{
    customer::CustomerKey,
    outbound::SendRecord,
    ports::{ApiKeyStore, ConversationReader, InboundStore, Quarantine, SendStore, StoreError},
};

/// Request counters, for the cost report: every request the store sends counts once (the
/// SDK's own retries of a request are not counted again).
#[derive(Debug, Default)]
pub struct Metrics {
    reads: AtomicU64,
    writes: AtomicU64,
}

/// A copy of the [`Metrics`] counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Read requests sent (GetItem, Query).
    pub reads: u64,
    /// Write requests sent (PutItem, UpdateItem, BatchWriteItem, TransactWriteItems).
    pub writes: u64,
}

impl MetricsSnapshot {
    /// The requests sent between `earlier` and `self`.
    pub fn since(self, earlier: MetricsSnapshot) -> MetricsSnapshot {
        MetricsSnapshot {
            reads: self.reads.saturating_sub(earlier.reads),
            writes: self.writes.saturating_sub(earlier.writes),
        }
    }
}

impl Metrics {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

/// Ventana's store on one DynamoDB table. Cheap to clone; clones share the client and the
/// [`Metrics`].
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    metrics: Arc<Metrics>,
    /// Number → account mappings this process has already written.
    numbers: Arc<Mutex<HashMap<String, String>>>,
}

impl DynamoStore {
    /// A store on `table` (created by [`create_table`] or the deployment template).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            metrics: Arc::new(Metrics::default()),
            numbers: Arc::default(),
        }
    }

    /// Runs `f` on the numbers this process has written (false if the lock is poisoned).
    pub(crate) fn known_numbers(
        &self,
        f: impl FnOnce(&mut HashMap<String, String>) -> bool,
    ) -> bool {
        self.numbers.lock().map(|mut m| f(&mut m)).unwrap_or(false)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The request counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
