//! What the sandbox remembers: every request to `/messages` and counters.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::Value;

/// One request to `POST /{version}/{phone_number_id}/messages`, as received, with what the
/// sandbox did about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedSend {
    /// 1, 2, 3, … in the order the requests arrived (authorisation failures included).
    pub seq: u64,
    /// The API version in the path (`v25.0`).
    pub version: String,
    /// The phone number id in the path.
    pub phone_number_id: String,
    /// The request body as JSON; a body that is not JSON is kept as a JSON string of its text.
    pub body: Value,
    /// What was answered.
    pub outcome: SendOutcome,
    /// When it arrived, in milliseconds since the Unix epoch.
    pub received_at_ms: u64,
}

impl RecordedSend {
    /// The wamid given, if the send was accepted (or received and then held, reset or failed
    /// asynchronously).
    pub fn wamid(&self) -> Option<&str> {
        self.outcome.wamid()
    }

    /// The body's `to`.
    pub fn to(&self) -> Option<&str> {
        self.body.get("to").and_then(Value::as_str)
    }

    /// The body's `recipient` (a BSUID).
    pub fn recipient(&self) -> Option<&str> {
        self.body.get("recipient").and_then(Value::as_str)
    }

    /// The body's `biz_opaque_callback_data`.
    pub fn callback_data(&self) -> Option<&str> {
        self.body
            .get("biz_opaque_callback_data")
            .and_then(Value::as_str)
    }
}

/// What the sandbox answered a request with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SendOutcome {
    /// 200 with this wamid; `sent`/`delivered`/`read` follow as webhooks.
    Accepted {
        /// The wamid answered.
        wamid: String,
    },
    /// A read receipt (`"status":"read"`), answered `{"success":true}`.
    ReadReceipt,
    /// An error answer: 401 (code 190), 400 (code 100 or an injected code), 500 or 503
    /// (`code` is `None` for the plain-text 503).
    Rejected {
        /// The HTTP status.
        http_status: u16,
        /// The Cloud API error code.
        code: Option<i64>,
    },
    /// Received and sent (webhooks follow) but the answer was held past any client timeout.
    TimedOut {
        /// The wamid the send got, which the client never saw in time.
        wamid: String,
    },
    /// Received and sent (webhooks follow) but the connection was closed without an answer.
    Reset {
        /// The wamid the send got, which the client never saw.
        wamid: String,
    },
    /// 200 with this wamid, then a `failed` status webhook with `code`.
    AcceptedThenFailed {
        /// The wamid answered.
        wamid: String,
        /// The code of the failed status.
        code: i64,
    },
}

impl SendOutcome {
    /// The wamid the send got, if it went out (even if the client never learnt it).
    pub fn wamid(&self) -> Option<&str> {
        match self {
            SendOutcome::Accepted { wamid }
            | SendOutcome::TimedOut { wamid }
            | SendOutcome::Reset { wamid }
            | SendOutcome::AcceptedThenFailed { wamid, .. } => Some(wamid),
            SendOutcome::ReadReceipt | SendOutcome::Rejected { .. } => None,
        }
    }
}

/// Totals since the sandbox started (not reset by clearing the recorded sends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Requests to `/messages`, every one.
    pub requests: u64,
    /// Sends answered with a wamid (including those failed asynchronously).
    pub accepted: u64,
    /// Read receipts answered `{"success":true}`.
    pub read_receipts: u64,
    /// Requests answered with an error (401, 400, 500, 503).
    pub rejected: u64,
    /// Sends received but held or reset without an answer.
    pub unanswered: u64,
    /// Status webhooks scheduled.
    pub webhooks_scheduled: u64,
    /// Status webhook POST attempts, retries included.
    pub webhook_attempts: u64,
    /// Status webhooks answered 200.
    pub webhooks_delivered: u64,
    /// Status webhooks given up on after every retry (or dropped at shutdown).
    pub webhooks_abandoned: u64,
}

/// The counters as atomics, shared by the request handlers and webhook tasks.
#[derive(Debug, Default)]
pub(crate) struct CounterCells {
    pub requests: AtomicU64,
    pub accepted: AtomicU64,
    pub read_receipts: AtomicU64,
    pub rejected: AtomicU64,
    pub unanswered: AtomicU64,
    pub webhooks_scheduled: AtomicU64,
    pub webhook_attempts: AtomicU64,
    pub webhooks_delivered: AtomicU64,
    pub webhooks_abandoned: AtomicU64,
}

impl CounterCells {
    pub(crate) fn bump(cell: &AtomicU64) {
        cell.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            requests: get(&self.requests),
            accepted: get(&self.accepted),
            read_receipts: get(&self.read_receipts),
            rejected: get(&self.rejected),
            unanswered: get(&self.unanswered),
            webhooks_scheduled: get(&self.webhooks_scheduled),
            webhook_attempts: get(&self.webhook_attempts),
            webhooks_delivered: get(&self.webhooks_delivered),
            webhooks_abandoned: get(&self.webhooks_abandoned),
        }
    }
}
