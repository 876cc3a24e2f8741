//! A send as Ventana records it: from the moment send-api accepts it to its last status.
//!
//! One [`SendRecord`] per message, keyed by its [`SendId`]. Every change to it is a pure
//! method here ([`SendRecord::claim`], [`SendRecord::settle`], [`SendRecord::apply_status`],
//! …); the store only keeps it, with optimistic concurrency on [`SendRecord::version`], so
//! two workers (or a worker and a status webhook) can never both move it from the same state.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::customer::{CustomerKey, CustomerRef};
use crate::status::{DeliveryStatus, StatusHistory};

/// The prefix of every Ventana message id (and of `biz_opaque_callback_data` at Meta).
pub const SEND_ID_PREFIX: &str = "vnt.";

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_SECS: i64 = 24 * 3600;

/// Crockford's base32 alphabet (no I, L, O, U): ids are case-insensitive and unambiguous.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Ventana's id for a send: `vnt.` and 26 base32 characters (128 bits): the creation time
/// in milliseconds, then 80 random bits, so ids sort by creation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SendId(String);

impl SendId {
    /// A new id from the creation time and 80 random bits.
    pub fn new(now_ms: i64, random: [u8; 10]) -> Self {
        let mut bytes = [0u8; 16];
        let ms = u64::try_from(now_ms.max(0)).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
        bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        bytes[6..].copy_from_slice(&random);
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8; 16]) -> Self {
        let n = u128::from_be_bytes(*bytes);
        let mut s = String::with_capacity(SEND_ID_PREFIX.len() + 26);
        s.push_str(SEND_ID_PREFIX);
        for i in (0..26).rev() {
            let idx = ((n >> (i * 5)) & 31) as usize;
            s.push(char::from(ALPHABET[idx]));
        }
        Self(s)
    }

    /// Reads an id a client or Meta gave back (case-insensitive); `None` if it is not one of
    /// Ventana's (a client's own `biz_opaque_callback_data`, say).
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(SEND_ID_PREFIX)?;
        if rest.len() != 26 {
            return None;
        }
        let upper = rest.to_ascii_uppercase();
        if !upper.bytes().all(|b| ALPHABET.contains(&b)) || upper.as_bytes()[0] > b'7' {
            return None;
        }
        Some(Self(format!("{SEND_ID_PREFIX}{upper}")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The stored form of an `Idempotency-Key`: SHA-256 (hex) over the API key's hash, the
/// number and the key, length-prefixed. A key is private to the API key and number it was
/// used with.
pub fn idempotency_hash(api_key_hash: &str, phone_number_id: &str, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [api_key_hash, phone_number_id, key] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

impl std::fmt::Display for SendId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a send is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    /// A free-form message: only inside the customer-service window.
    Session,
    /// An approved template: business-initiated, allowed outside the window.
    Template,
    /// A read receipt (with or without a typing indicator): no message, no pacing.
    ReadReceipt,
}

/// Where a send stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SendState {
    /// Waiting to be attempted, not before `not_before_ms` (0: at once).
    Pending {
        /// Earliest next attempt (unix ms).
        not_before_ms: i64,
    },
    /// A worker is posting it to the Graph API and owns it until `lease_until_ms`. A lease
    /// that ran out means the worker died mid-call: the send may have left, and is treated as
    /// [`SendState::Unconfirmed`].
    Attempting {
        /// When the worker's ownership ends (unix ms).
        lease_until_ms: i64,
        /// Whether this call is the one resend of an unconfirmed send.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resend: bool,
    },
    /// Meta accepted it (a wamid is known). Delivery is reported by status webhooks.
    Accepted {
        /// When Ventana learnt it (unix ms).
        at_ms: i64,
        /// Whether a status webhook confirmed it (rather than the Graph API's answer).
        by_webhook: bool,
    },
    /// The request may have reached Meta but no answer said so: no resend until status
    /// webhooks have had `grace` to confirm it; then at most one resend.
    Unconfirmed {
        /// When it became unconfirmed (unix ms).
        since_ms: i64,
        /// Whether the unconfirmed attempt was already the one resend.
        resent: bool,
    },
    /// Failed for good (recorded, never retried): refused by Meta or by Ventana's checks at
    /// dequeue, or reported failed by a status webhook.
    Failed,
    /// Given up after too many attempts, or not deliverable as queued: moved to the DLQ with
    /// `error` as the reason. A redrive puts it back to `Pending`.
    DeadLettered,
}

impl SendState {
    /// The state's name, as in the record's JSON (`pending`, `attempting`, `accepted`,
    /// `unconfirmed`, `failed`, `dead_lettered`).
    pub fn name(&self) -> &'static str {
        match self {
            SendState::Pending { .. } => "pending",
            SendState::Attempting { .. } => "attempting",
            SendState::Accepted { .. } => "accepted",
            SendState::Unconfirmed { .. } => "unconfirmed",
            SendState::Failed => "failed",
            SendState::DeadLettered => "dead_lettered",
        }
    }
}

/// Why a send failed (Meta's code where there is one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendFailure {
    /// Meta's error code, or Ventana's own use of one (131047 at dequeue, 131050 for an
    /// opt-out); 0 when no code applies (a transport failure).
    pub code: i64,
    /// What happened, for people (never a message body).
    pub message: String,
}

impl SendFailure {
    /// A failure with a code.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The answer send-api gave, kept for `Idempotency-Key` replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnswer {
    /// The HTTP status.
    pub http_status: u16,
    /// The JSON body.
    pub body: String,
}

/// An `Idempotency-Key` the send was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    /// [`idempotency_hash`] of the key: the store keeps one live send per hash.
    pub key_hash: String,
    /// SHA-256 (hex) of the request body: the same key with another body is refused.
    pub body_sha256: String,
    /// Until when the key holds (unix s).
    pub expires_at: i64,
}

/// A send, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendRecord {
    /// Ventana's id (also `biz_opaque_callback_data` at Meta).
    pub id: SendId,
    /// The business number it goes out from.
    pub phone_number_id: String,
    /// The customer (resolved key); `None` for a group send.
    pub customer: Option<CustomerKey>,
    /// The ids the client gave (`to` / `recipient`).
    pub who: Option<CustomerRef>,
    /// The message `type` (`text`, `template`, …; `read` for a read receipt).
    pub message_type: String,
    /// Session, template or read receipt.
    pub kind: SendKind,
    /// The body to post, as the client sent it (or the fallback template that replaced it),
    /// without Ventana's fields; `biz_opaque_callback_data` is set at send time.
    pub body: Value,
    /// A template to send instead if the window is closed at dequeue (session sends only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Value>,
    /// The client's own `biz_opaque_callback_data`, given back on reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_callback_data: Option<String>,
    /// Where it stands.
    pub state: SendState,
    /// Graph API calls made so far.
    pub attempts: u32,
    /// Meta's id, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wamid: Option<String>,
    /// The failure that ended it, or the last transient one while it is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SendFailure>,
    /// Statuses reported by webhooks, first timestamp of each.
    #[serde(default)]
    pub statuses: StatusHistory,
    /// Meta's `pricing` object (raw JSON) of the first receipt that carried one and was
    /// written to the send ([`crate::ports::SendStore::add_status`]), kept for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<String>,
    /// When send-api accepted it (unix ms).
    pub created_at_ms: i64,
    /// The broadcast it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast_id: Option<String>,
    /// Its row's position in that broadcast's list: a customer is sent to once per broadcast,
    /// by the first of their rows to be planned for sending (see `broadcast::send_id_for`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast_index: Option<u64>,
    /// The `Idempotency-Key` it was made with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<Idempotency>,
    /// The answer send-api gave (kept when an `Idempotency-Key` was used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StoredAnswer>,
    /// When the record may be deleted (unix s).
    pub expires_at: i64,
    /// Bumped on every save; a save succeeds only over the version it read.
    #[serde(default)]
    pub version: u64,
}

/// The public state of a send (`GET /v1/messages/{id}`'s `status`, one of the contract's
/// `queued`, `sent`, `delivered`, `read`, `played`, `failed`, `unconfirmed`). A send Meta
/// accepted (it has a wamid) is `queued` until its first status webhook: it is in Meta's
/// queue, not yet reported sent.
pub fn public_status(r: &SendRecord) -> &'static str {
    if let Some(s) = r.statuses.current() {
        return s.as_str();
    }
    match r.state {
        SendState::Pending { .. } | SendState::Attempting { .. } | SendState::Accepted { .. } => {
            "queued"
        }
        SendState::Unconfirmed { .. } => "unconfirmed",
        SendState::Failed | SendState::DeadLettered => "failed",
    }
}

/// What a status webhook did to a send ([`SendRecord::apply_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusEffect {
    /// The status was already known: nothing changed.
    Unchanged,
    /// The record changed and must be saved.
    Changed,
}

impl SendRecord {
    /// A new send, pending from the start, not attempted, with no customer, body, link to a
    /// broadcast or idempotency key yet: what callers fill in is theirs.
    pub fn pending(
        id: SendId,
        phone_number_id: &str,
        kind: SendKind,
        created_at_ms: i64,
        expires_at: i64,
    ) -> SendRecord {
        SendRecord {
            id,
            phone_number_id: phone_number_id.to_owned(),
            customer: None,
            who: None,
            message_type: String::new(),
            kind,
            body: Value::Null,
            fallback: None,
            client_callback_data: None,
            state: SendState::Pending { not_before_ms: 0 },
            attempts: 0,
            wamid: None,
            error: None,
            statuses: StatusHistory::default(),
            pricing: None,
            created_at_ms,
            broadcast_id: None,
            broadcast_index: None,
            idempotency: None,
            answer: None,
            expires_at,
            version: 0,
        }
    }

    /// Whether the send has ended (nothing more will be attempted): accepted, failed or
    /// dead-lettered.
    pub fn is_settled(&self) -> bool {
        matches!(
            self.state,
            SendState::Accepted { .. } | SendState::Failed | SendState::DeadLettered
        )
    }

    /// The body to post to the Graph API: the stored body with `biz_opaque_callback_data` =
    /// Ventana's id (read receipts carry none).
    pub fn graph_body(&self) -> Value {
        let mut body = self.body.clone();
        if self.kind != SendKind::ReadReceipt
            && let Value::Object(o) = &mut body
        {
            o.insert(
                "biz_opaque_callback_data".into(),
                Value::String(self.id.as_str().to_owned()),
            );
        }
        body
    }

    /// Takes the send for one Graph API call: `Attempting` until `lease_until_ms`, one more
    /// attempt counted; `resend` when it is the one resend of an unconfirmed send.
    pub fn claim(&mut self, lease_until_ms: i64, resend: bool) {
        self.state = SendState::Attempting {
            lease_until_ms,
            resend,
        };
        self.attempts += 1;
    }

    /// Records a status webhook about this send (matched by `biz_opaque_callback_data` or
    /// wamid). A status proves Meta took the message: an unconfirmed or in-flight send
    /// becomes accepted (with the wamid), so it is never sent again; a `failed` status
    /// (131047 or 131049 reported late, say) fails it. Statuses only add: replays and any
    /// arrival order give the same record.
    pub fn apply_status(
        &mut self,
        wamid: &str,
        status: DeliveryStatus,
        at_secs: i64,
        error: Option<&SendFailure>,
        now_ms: i64,
    ) -> StatusEffect {
        let before = self.clone();
        if self.wamid.is_none() {
            self.wamid = Some(wamid.to_owned());
        }
        if self.statuses.at(status).is_none_or(|t| at_secs < t) {
            self.statuses.record(status, at_secs);
        }
        match &self.state {
            SendState::Pending { .. }
            | SendState::Attempting { .. }
            | SendState::Unconfirmed { .. }
            | SendState::DeadLettered => {
                self.state = SendState::Accepted {
                    at_ms: now_ms,
                    by_webhook: true,
                };
            }
            SendState::Accepted { .. } | SendState::Failed => {}
        }
        if status == DeliveryStatus::Failed {
            self.state = SendState::Failed;
            if let Some(e) = error {
                // The webhook's error is the send's story from now on, unless one was
                // already recorded from a webhook (first error kept).
                if before.statuses.at(DeliveryStatus::Failed).is_none() {
                    self.error = Some(e.clone());
                }
            } else if self.error.is_none() {
                self.error = Some(SendFailure::new(0, "reported failed by a status webhook"));
            }
        }
        if *self == before {
            StatusEffect::Unchanged
        } else {
            StatusEffect::Changed
        }
    }

    /// Switches a session message to the fallback template kept with it: the template
    /// becomes the body to post (a business-initiated template send from then on, with the
    /// same id) and the fallback is used up. Returns `false` (and changes nothing) when there
    /// is no fallback or the send is not a session message.
    pub fn switch_to_fallback(&mut self) -> bool {
        if self.kind != SendKind::Session {
            return false;
        }
        let Some(fallback) = self.fallback.take() else {
            return false;
        };
        self.body = fallback;
        self.kind = SendKind::Template;
        self.message_type = "template".into();
        true
    }

    /// Puts a dead-lettered send back to be attempted afresh (an operator's DLQ redrive):
    /// `Pending` with its attempts reset; its last error stays until a new outcome replaces
    /// it. Returns `false` (and changes nothing) for a send in any other state: a redriven
    /// message of a send that was meanwhile settled, say by a late status webhook, must not
    /// make it go out again.
    pub fn redrive(&mut self) -> bool {
        if self.state != SendState::DeadLettered {
            return false;
        }
        self.state = SendState::Pending { not_before_ms: 0 };
        self.attempts = 0;
        true
    }

    /// The `GET /v1/messages/{id}` body.
    pub fn view(&self) -> Value {
        let statuses: Vec<Value> = self
            .statuses
            .entries()
            .into_iter()
            .map(|(s, t)| json!({"status": s.as_str(), "timestamp": crate::clock::rfc3339(t)}))
            .collect();
        let who = self.who.as_ref();
        json!({
            "id": self.id.as_str(),
            "wamid": self.wamid,
            "status": public_status(self),
            "statuses": statuses,
            "error": self.error.as_ref().map(|e| json!({"code": e.code, "message": e.message})),
            "phone_number_id": self.phone_number_id,
            "to": who.and_then(|w| w.wa_id.clone()),
            "recipient": who.and_then(|w| w.user_id.clone()),
            "type": self.message_type,
            "attempts": self.attempts,
            "created_at": crate::clock::rfc3339(self.created_at_ms.div_euclid(1000)),
            "biz_opaque_callback_data": self.client_callback_data,
            "broadcast_id": self.broadcast_id,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record() -> SendRecord {
        SendRecord {
            customer: Some(CustomerKey::Phone("5511999990000".into())),
            who: CustomerRef::new(None, Some("5511999990000")),
            message_type: "text".into(),
            body: json!({"messaging_product": "whatsapp", "to": "5511999990000", "type": "text", "text": {"body": "hi"}}),
            ..SendRecord::pending(
                SendId::new(1_700_000_000_000, [7; 10]),
                "106540352242922",
                SendKind::Session,
                1_700_000_000_000,
                1_700_000_000 + 90 * 86_400,
            )
        }
    }

    #[test]
    fn ids_are_prefixed_base32_and_parse_back() {
        let id = SendId::new(1_700_000_000_000, [0xAB; 10]);
        assert!(id.as_str().starts_with("vnt."));
        assert_eq!(id.as_str().len(), 30);
        assert_eq!(SendId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(SendId::parse(&id.as_str().to_lowercase()), Some(id));
        assert_eq!(SendId::parse("vnt.short"), None);
        assert_eq!(SendId::parse("order-1234"), None);
        assert_eq!(SendId::parse("vnt.IIIIIIIIIIIIIIIIIIIIIIIIII"), None);
    }

    #[test]
    fn random_ids_sort_by_creation_time() {
        let a = SendId::new(1_700_000_000_000, [0xFF; 10]);
        let b = SendId::new(1_700_000_000_001, [0x00; 10]);
        assert!(a < b);
    }

    #[test]
    fn idempotency_hashes_depend_on_key_api_key_and_number() {
        let a = idempotency_hash("k", "1", "abc");
        assert_eq!(a, idempotency_hash("k", "1", "abc"));
        assert_ne!(a, idempotency_hash("k", "2", "abc"));
        assert_ne!(a, idempotency_hash("j", "1", "abc"));
        assert_ne!(a, idempotency_hash("k", "1", "abd"));
        // No ambiguity from concatenation.
        assert_ne!(
            idempotency_hash("ab", "c", "d"),
            idempotency_hash("a", "bc", "d")
        );
    }

    #[test]
    fn graph_body_carries_ventanas_id_as_callback_data() {
        let r = record();
        let b = r.graph_body();
        assert_eq!(b["biz_opaque_callback_data"], r.id.as_str());
        assert_eq!(b["text"]["body"], "hi");
    }

    #[test]
    fn a_status_confirms_an_unconfirmed_send_and_keeps_the_wamid() {
        let mut r = record();
        r.claim(10_000, false);
        r.state = SendState::Unconfirmed {
            since_ms: 5_000,
            resent: false,
        };
        let e = r.apply_status("wamid.A", DeliveryStatus::Sent, 100, None, 9_000);
        assert_eq!(e, StatusEffect::Changed);
        assert_eq!(r.wamid.as_deref(), Some("wamid.A"));
        assert!(matches!(
            r.state,
            SendState::Accepted {
                by_webhook: true,
                ..
            }
        ));
        assert_eq!(public_status(&r), "sent");
        // The same status again changes nothing.
        assert_eq!(
            r.apply_status("wamid.A", DeliveryStatus::Sent, 100, None, 9_500),
            StatusEffect::Unchanged
        );
    }

    #[test]
    fn statuses_in_any_order_end_the_same() {
        let mut a = record();
        let mut b = record();
        let events = [
            (DeliveryStatus::Sent, 100),
            (DeliveryStatus::Delivered, 101),
            (DeliveryStatus::Read, 102),
        ];
        for (s, t) in events {
            a.apply_status("wamid.A", s, t, None, 1);
        }
        for (s, t) in events.iter().rev() {
            b.apply_status("wamid.A", *s, *t, None, 1);
        }
        assert_eq!(a.statuses, b.statuses);
        assert_eq!(public_status(&a), "read");
        assert_eq!(public_status(&b), "read");
    }

    #[test]
    fn a_send_meta_accepted_is_queued_until_its_first_status_then_follows_the_statuses() {
        let mut r = record();
        assert_eq!(public_status(&r), "queued");
        r.wamid = Some("wamid.A".into());
        r.state = SendState::Accepted {
            at_ms: 1_000,
            by_webhook: false,
        };
        let v = r.view();
        assert_eq!(
            (v["status"].as_str(), v["wamid"].as_str()),
            (Some("queued"), Some("wamid.A"))
        );
        r.apply_status("wamid.A", DeliveryStatus::Delivered, 100, None, 9_000);
        assert_eq!(public_status(&r), "delivered");
    }

    #[test]
    fn an_async_failure_fails_an_accepted_send_with_its_code() {
        let mut r = record();
        r.state = SendState::Accepted {
            at_ms: 1,
            by_webhook: false,
        };
        r.wamid = Some("wamid.A".into());
        let err = SendFailure::new(131_047, "Re-engagement message");
        r.apply_status("wamid.A", DeliveryStatus::Failed, 200, Some(&err), 2);
        assert_eq!(r.state, SendState::Failed);
        assert_eq!(r.error, Some(err));
        assert_eq!(public_status(&r), "failed");
        let v = r.view();
        assert_eq!(v["error"]["code"], 131_047);
        assert_eq!(v["status"], "failed");
    }

    #[test]
    fn state_names_are_the_json_tags() {
        for state in [
            SendState::Pending { not_before_ms: 1 },
            SendState::Attempting {
                lease_until_ms: 1,
                resend: true,
            },
            SendState::Accepted {
                at_ms: 1,
                by_webhook: false,
            },
            SendState::Unconfirmed {
                since_ms: 1,
                resent: false,
            },
            SendState::Failed,
            SendState::DeadLettered,
        ] {
            let v = serde_json::to_value(&state).unwrap();
            assert_eq!(v["state"], state.name());
        }
    }

    #[test]
    fn only_a_dead_lettered_send_is_redriven() {
        let mut r = record();
        r.attempts = 5;
        r.state = SendState::DeadLettered;
        assert!(r.redrive());
        assert_eq!(r.state, SendState::Pending { not_before_ms: 0 });
        assert_eq!(r.attempts, 0);
        for state in [
            SendState::Failed,
            SendState::Accepted {
                at_ms: 1,
                by_webhook: true,
            },
            SendState::Pending { not_before_ms: 0 },
        ] {
            r.state = state.clone();
            assert!(!r.redrive());
            assert_eq!(r.state, state);
        }
    }

    #[test]
    fn a_session_message_switches_to_its_fallback_once() {
        let mut r = record();
        assert!(!r.switch_to_fallback(), "no fallback: nothing to switch to");
        assert_eq!(r.kind, SendKind::Session);
        let template = json!({"messaging_product": "whatsapp", "to": "5511999990000", "type": "template",
                              "template": {"name": "hello", "language": {"code": "en"}}});
        r.fallback = Some(template.clone());
        assert!(r.switch_to_fallback());
        assert_eq!(
            (r.kind, r.message_type.as_str(), &r.body, &r.fallback),
            (SendKind::Template, "template", &template, &None)
        );
        assert_eq!(r.graph_body()["biz_opaque_callback_data"], r.id.as_str());
        assert!(!r.switch_to_fallback());
        assert_eq!(r.body, template);
    }

    #[test]
    fn the_record_round_trips_through_json() {
        let mut r = record();
        r.apply_status("wamid.A", DeliveryStatus::Delivered, 5, None, 1);
        let s = serde_json::to_string(&r).unwrap();
        let back: SendRecord = serde_json::from_str(&s).unwrap();
        assert_eq!(back, r);
    }
}
