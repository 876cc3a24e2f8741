//! Broadcasts: one approved template sent to a list of recipients, released gradually,
//! within the portfolio's rolling-24-hour messaging limit, with a per-recipient ledger.
//!
//! - [`Broadcast`] is the job (state, release schedule, cursors, counts), saved with
//!   optimistic concurrency on its `version`; [`LedgerEntry`] is one recipient at its
//!   position in the list, with its [`Outcome`].
//! - [`create::create`] is `POST /v1/broadcasts`'s use case: it validates the request and
//!   writes the ledger (inline recipients) and the job; [`planner::step`] is the planner's:
//!   it imports a CSV list, releases recipients, skips invalid / duplicate / opted-out ones,
//!   charges the messaging limit ([`limit`]), creates the sends and queues them, and settles
//!   the outcomes from the sends.
//! - Once per customer: a send's id is derived from the broadcast id and the customer
//!   ([`send_id_for`]), so a broadcast has at most one send per customer whatever its list
//!   holds, and the send itself records which row made it: a later row of that customer is a
//!   duplicate, found with one read of that id (no separate claim item to write).
//! - Crash safety: a planner that re-does a page after a crash derives the same ids, finds
//!   its own rows' sends (kept once by the store) and queues the same jobs (deduplicated by the
//!   queue and by the worker's own state); the cursor and the counts move in one conditional
//!   write of the job after the page's sends exist, so nobody is skipped and nothing counted
//!   twice.

pub mod create;
pub mod csv;
pub mod limit;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod planner;
mod ports;
pub mod source;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::outbound::{SendFailure, SendId};
use crate::ports::StoreError;
use crate::status::DeliveryStatus;

pub use ports::{Audience, BroadcastStore, LimitStore, OutboundBatch, StepQueue};
pub use source::{NoSource, RecipientList, RecipientPage, RecipientRow, RecipientSource};

/// The prefix of every broadcast id.
pub const BROADCAST_ID_PREFIX: &str = "bc_";

/// Crockford's base32 alphabet, as send ids use.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A broadcast's id: `bc_` and 26 base32 characters (creation time in ms, 80 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BroadcastId(String);

impl BroadcastId {
    /// A new id from the creation time and 80 random bits.
    pub fn new(now_ms: i64, random: [u8; 10]) -> Self {
        let send = SendId::new(now_ms, random);
        let tail = send
            .as_str()
            .strip_prefix(crate::outbound::SEND_ID_PREFIX)
            .unwrap_or(send.as_str());
        Self(format!("{BROADCAST_ID_PREFIX}{tail}"))
    }

    /// Reads an id a client gave (case-insensitive); `None` if it is not a broadcast id.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(BROADCAST_ID_PREFIX)?;
        let upper = rest.to_ascii_uppercase();
        if upper.len() != 26 || !upper.bytes().all(|b| ALPHABET.contains(&b)) {
            return None;
        }
        Some(Self(format!("{BROADCAST_ID_PREFIX}{upper}")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BroadcastId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The send id of a broadcast's send to `customer` (its storage key, after aliases): the same
/// on every planner run and for every row naming that customer, so a page planned twice
/// creates and queues the same sends and a customer listed twice can have one send only. The
/// time part is the broadcast's creation time; the rest is SHA-256 over the broadcast id and
/// the customer.
pub fn send_id_for(id: &BroadcastId, created_at_ms: i64, customer: &str) -> SendId {
    let mut h = Sha256::new();
    h.update(id.as_str().as_bytes());
    h.update([0]);
    h.update(customer.as_bytes());
    let digest = h.finalize();
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    SendId::new(created_at_ms, random)
}

/// The template a broadcast sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    /// Template name.
    pub name: String,
    /// Language code (`es`, `en_US`).
    pub language: String,
}

/// How recipients are released: `percent` of the list every `every_secs` (100 % = all at
/// once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Share of the list released at each tick, 1..=100.
    pub percent: u32,
    /// Seconds between ticks.
    pub every_secs: i64,
}

impl Default for Release {
    fn default() -> Self {
        Self {
            percent: 10,
            every_secs: 60,
        }
    }
}

impl Release {
    /// All at once.
    pub const ALL_AT_ONCE: Release = Release {
        percent: 100,
        every_secs: 60,
    };

    /// How many recipients one tick releases out of `total` (at least one).
    pub fn batch(&self, total: u64) -> u64 {
        (total * u64::from(self.percent.clamp(1, 100)))
            .div_ceil(100)
            .max(1)
    }
}

/// Why a broadcast is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// `POST /v1/broadcasts/{id}/pause`.
    Api,
    /// Meta paused the template (sends would fail with 132015).
    TemplatePaused,
    /// Meta disabled the template (132016).
    TemplateDisabled,
    /// The template is no longer approved (rejected, pending, deleted…).
    TemplateNotApproved,
    /// The number's quality rating dropped to RED.
    QualityRed,
    /// The step queue refused the first step when the broadcast was created: it was stored
    /// but never started (`resume` starts it).
    NotStarted,
}

impl PauseReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::Api => "api",
            PauseReason::TemplatePaused => "template_paused",
            PauseReason::TemplateDisabled => "template_disabled",
            PauseReason::TemplateNotApproved => "template_not_approved",
            PauseReason::QualityRed => "quality_red",
            PauseReason::NotStarted => "not_started",
        }
    }
}

/// Where a broadcast stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BroadcastState {
    /// Being planned (recipients released, charged and queued) or settled.
    Running,
    /// Not planned until resumed.
    Paused {
        /// Why.
        reason: PauseReason,
    },
    /// Every recipient has a final outcome.
    Completed,
}

impl BroadcastState {
    /// The wire name (`running`, `paused`, `completed`).
    pub fn name(&self) -> &'static str {
        match self {
            BroadcastState::Running => "running",
            BroadcastState::Paused { .. } => "paused",
            BroadcastState::Completed => "completed",
        }
    }
}

/// What happened to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Not planned yet (not released, or waiting for the messaging limit).
    Pending,
    /// Its send is queued or being delivered.
    Queued,
    /// Meta accepted it (no delivery report before the ledger settled).
    Sent,
    /// Delivered to the phone.
    Delivered,
    /// Read.
    Read,
    /// Failed (see the entry's error).
    Failed,
    /// The customer opted out.
    SkippedOptedOut,
    /// The broadcast requires an opt-in and the customer has none.
    SkippedNotOptedIn,
    /// An earlier row of the same customer was queued: a broadcast sends to a customer once.
    SkippedDuplicate,
    /// The row is not a valid recipient or its parameters do not make a valid message.
    SkippedInvalid,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Queued => "queued",
            Outcome::Sent => "sent",
            Outcome::Delivered => "delivered",
            Outcome::Read => "read",
            Outcome::Failed => "failed",
            Outcome::SkippedOptedOut => "skipped_opted_out",
            Outcome::SkippedNotOptedIn => "skipped_not_opted_in",
            Outcome::SkippedDuplicate => "skipped_duplicate",
            Outcome::SkippedInvalid => "skipped_invalid",
        }
    }
}

/// The counts of a broadcast's outcomes. `queued` counts recipients whose sends are queued
/// or in flight and not yet settled; the final outcomes are counted when the planner settles
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Queued, outcome not settled yet.
    pub queued: u64,
    /// Accepted by Meta, no delivery report.
    pub sent: u64,
    /// Delivered.
    pub delivered: u64,
    /// Read.
    pub read: u64,
    /// Failed.
    pub failed: u64,
    /// Opted out.
    pub skipped_opted_out: u64,
    /// No opt-in where one is required.
    pub skipped_not_opted_in: u64,
    /// Duplicates.
    pub skipped_duplicate: u64,
    /// Invalid rows.
    pub skipped_invalid: u64,
    /// Failures per error code.
    #[serde(default)]
    pub errors: BTreeMap<i64, u64>,
}

impl Counts {
    /// Counts one outcome.
    pub fn add(&mut self, o: Outcome, error: Option<&SendFailure>) {
        match o {
            Outcome::Pending => {}
            Outcome::Queued => self.queued += 1,
            Outcome::Sent => self.sent += 1,
            Outcome::Delivered => self.delivered += 1,
            Outcome::Read => self.read += 1,
            Outcome::Failed => {
                self.failed += 1;
                *self.errors.entry(error.map_or(0, |e| e.code)).or_default() += 1;
            }
            Outcome::SkippedOptedOut => self.skipped_opted_out += 1,
            Outcome::SkippedNotOptedIn => self.skipped_not_opted_in += 1,
            Outcome::SkippedDuplicate => self.skipped_duplicate += 1,
            Outcome::SkippedInvalid => self.skipped_invalid += 1,
        }
    }
}

/// A broadcast job, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Broadcast {
    /// Its id.
    pub id: BroadcastId,
    /// The number it sends from.
    pub phone_number_id: String,
    /// The WhatsApp Business Account of the number (`pn:<number>` when unknown).
    pub waba_id: String,
    /// The template.
    pub template: TemplateRef,
    /// Whether recipients need an opt-in record.
    pub require_opt_in: bool,
    /// The release schedule.
    pub release: Release,
    /// Where it stands.
    #[serde(flatten)]
    pub state: BroadcastState,
    /// A list to import through a [`RecipientSource`], if the recipients were not inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RecipientList>,
    /// Where the import continues (source cursor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_cursor: Option<String>,
    /// Whether every recipient is in the ledger.
    pub imported: bool,
    /// Recipients in the ledger.
    pub total: u64,
    /// How many (from the start of the list) the release schedule allows so far.
    pub released: u64,
    /// When the next release tick is due (unix s).
    pub next_release_at: i64,
    /// The next position to plan: every entry before it has been queued or skipped.
    pub cursor: u64,
    /// Held by the messaging limit until then (unix s), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_wait_until: Option<i64>,
    /// The next queued position whose outcome is to be settled from its send.
    pub settled: u64,
    /// Outcome counts.
    pub counts: Counts,
    /// Bumped by each pause, resume and creation: a planner step message of another chain
    /// is dropped, so one chain of step messages drives the job.
    pub chain: u64,
    /// The page a planner step claimed last: its cursor and when (unix ms). Saved before
    /// the page's claims, charges and sends, so that one step at a time plans a page (see
    /// `planner`): a page never claimed before has no sends yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_claim: Option<PageClaim>,
    /// When the number, sending at its rate, is through the sends this job has queued so
    /// far (unix ms): the planner queues at most `queue_ahead_secs` beyond now, so that a
    /// pause stops the job within that time (see `planner`).
    #[serde(default)]
    pub paced_until_ms: i64,
    /// When it was created (unix ms).
    pub created_at_ms: i64,
    /// When it was completed (unix s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
    /// When the job and its ledger may be deleted (unix s).
    pub expires_at: i64,
    /// Bumped on every save; a save succeeds only over the version it read.
    #[serde(default)]
    pub version: u64,
}

/// A planner step's claim on the page `cursor..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageClaim {
    /// The page's first position.
    pub cursor: u64,
    /// The position after its last one: sends may exist for entries before it.
    pub end: u64,
    /// When it was claimed (unix ms).
    pub at_ms: i64,
}

impl Broadcast {
    /// The `GET /v1/broadcasts/{id}` body.
    pub fn view(&self) -> Value {
        let c = &self.counts;
        let released = self.released.min(self.total);
        let waiting = if self.limit_wait_until.is_some() {
            released.saturating_sub(self.cursor)
        } else {
            0
        };
        let pending = self
            .total
            .saturating_sub(self.cursor)
            .saturating_sub(waiting);
        let errors: serde_json::Map<String, Value> = c
            .errors
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let paused_reason = match self.state {
            BroadcastState::Paused { reason } => Some(reason.as_str()),
            _ => None,
        };
        let next_release_at = (self.state == BroadcastState::Running && self.released < self.total)
            .then(|| crate::clock::rfc3339(self.next_release_at));
        json!({
            "id": self.id.as_str(),
            "state": self.state.name(),
            "paused_reason": paused_reason,
            "phone_number_id": self.phone_number_id,
            "template": {"name": self.template.name, "language": self.template.language},
            "release": {"percent": self.release.percent, "every_secs": self.release.every_secs},
            "require_opt_in": self.require_opt_in,
            "counts": {
                "total": self.total,
                "pending": pending,
                "queued": c.queued,
                "sent": c.sent,
                "delivered": c.delivered,
                "read": c.read,
                "failed": c.failed,
                "skipped_opted_out": c.skipped_opted_out,
                "skipped_not_opted_in": c.skipped_not_opted_in,
                "skipped_duplicate": c.skipped_duplicate,
                "skipped_invalid": c.skipped_invalid,
                "waiting_for_limit": waiting,
            },
            "errors": errors,
            "imported": self.imported,
            "next_release_at": next_release_at,
            "limit_wait_until": self.limit_wait_until.map(crate::clock::rfc3339),
            "created_at": crate::clock::rfc3339(self.created_at_ms.div_euclid(1000)),
            "completed_at": self.completed_at.map(crate::clock::rfc3339),
        })
    }
}

/// One recipient of a broadcast, at its position in the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The broadcast.
    pub broadcast_id: BroadcastId,
    /// Position in the list, from 0.
    pub index: u64,
    /// The row as given.
    pub row: RecipientRow,
    /// What happened to it.
    pub outcome: Outcome,
    /// Its send, once queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_id: Option<SendId>,
    /// Why it failed or was skipped as invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SendFailure>,
    /// When the entry may be deleted (unix s).
    pub expires_at: i64,
}

impl LedgerEntry {
    /// A new, pending entry.
    pub fn pending(b: &BroadcastId, index: u64, row: RecipientRow, expires_at: i64) -> Self {
        Self {
            broadcast_id: b.clone(),
            index,
            row,
            outcome: Outcome::Pending,
            send_id: None,
            error: None,
            expires_at,
        }
    }

    /// The entry as a report line (JSON).
    pub fn view(&self) -> Value {
        json!({
            "index": self.index,
            "to": self.row.to,
            "recipient": self.row.recipient,
            "outcome": self.outcome.as_str(),
            "send_id": self.send_id.as_ref().map(SendId::as_str),
            "error_code": self.error.as_ref().map(|e| e.code),
            "error": self.error.as_ref().map(|e| e.message.as_str()),
        })
    }
}

/// Brings settled entries up to their sends' latest receipts, for a report read now: an entry
/// is settled (and counted) once, when its send is read or failed, or `settle_after_secs`
/// after it was made, so one settled as `sent` or `delivered` misses a receipt that came
/// later. Here such entries move forward (sent → delivered → read) from one read of their
/// sends; nothing else changes, and nothing is written (the job's counts stay the snapshot
/// taken when each page settled).
pub async fn with_latest_receipts<S: BroadcastStore>(
    store: &S,
    entries: &mut [LedgerEntry],
) -> Result<(), StoreError> {
    let open: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.outcome, Outcome::Sent | Outcome::Delivered))
        .filter(|(_, e)| e.send_id.is_some())
        .map(|(i, _)| i)
        .collect();
    let ids: Vec<SendId> = open
        .iter()
        .filter_map(|i| entries[*i].send_id.clone())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let sends = store.get_sends(&ids).await?;
    for (i, send) in open.into_iter().zip(sends) {
        let latest = match send.as_ref().and_then(|s| s.statuses.current()) {
            Some(DeliveryStatus::Read | DeliveryStatus::Played) => Outcome::Read,
            Some(DeliveryStatus::Delivered) => Outcome::Delivered,
            _ => continue,
        };
        if matches!(
            (entries[i].outcome, latest),
            (Outcome::Sent, Outcome::Delivered | Outcome::Read)
                | (Outcome::Delivered, Outcome::Read)
        ) {
            entries[i].outcome = latest;
        }
    }
    Ok(())
}

/// The message a broadcast sends to one row: a Cloud API template message.
pub fn template_body(t: &TemplateRef, row: &RecipientRow) -> Value {
    let mut template = json!({"name": t.name, "language": {"code": t.language}});
    if let Value::Array(a) = &row.components
        && !a.is_empty()
    {
        template["components"] = row.components.clone();
    }
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "type": "template",
        "template": template,
    });
    if let Some(to) = &row.to {
        body["to"] = json!(to);
    }
    if let Some(r) = &row.recipient {
        body["recipient"] = json!(r);
    }
    body
}
