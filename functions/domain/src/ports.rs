//! The ports: what the domain needs from the outside world, in domain terms. Adapters
//! (`wa-dynamodb`, `wa-sqs`) implement them; `testing` has in-memory fakes.

use std::future::Future;

use crate::customer::{CustomerKey, CustomerRef};
use crate::event::{EventKind, InboundEvent};
use crate::outbound::{GraphOutcome, SendId, SendRecord};
use crate::status::{DeliveryStatus, StatusHistory};
use crate::window::{Window, WindowUpdate};

/// A failure of a store: the operation may succeed if retried later.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused the request.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store returned data this code cannot read.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A failure of the event queue: nothing may be assumed to have been queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached or refused some of the events.
    #[error("queue unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Whether a write that must happen once did happen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time: the item was written.
    New,
    /// Seen before: nothing was written.
    Duplicate,
}

/// An event too large for any message of the queue (a change with no array to split, such
/// as a coexistence `history` sync, is one event holding its whole `value`). The queue hands
/// it back instead of refusing the other events of its webhook; the caller must keep it
/// elsewhere before acknowledging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversized {
    /// What the event holds.
    pub kind: EventKind,
    /// The webhook field it came under.
    pub field: String,
    /// Its natural key (ids and a digest, never the item's content).
    pub natural_key: String,
    /// The message the queue would have sent, exactly (the queue adapter's envelope, which
    /// its reader decodes back into the event).
    pub message: String,
    /// The largest message the queue takes, in bytes.
    pub limit: usize,
}

/// What [`EventQueue::publish`] did.
#[derive(Debug, Default)]
#[must_use = "oversized events must be kept elsewhere before the webhook is acknowledged"]
pub struct Published {
    /// How many events were queued (or found already queued).
    pub queued: usize,
    /// The events not queued because no message can hold them, in their webhook order.
    pub oversized: Vec<Oversized>,
}

/// Where webhook-receive puts events before acknowledging Meta.
pub trait EventQueue: Send + Sync {
    /// Queues every event that fits in one message of the queue, or fails: on `Err`, the
    /// caller answers 5xx so that Meta retries (events that did get queued are deduplicated
    /// downstream). An event too large for any message is not queued and does not fail the
    /// others: it comes back in [`Published::oversized`].
    /// The events are taken by value so an adapter can free each one once it is encoded: a
    /// 3 MB webhook's events then never exist twice in memory.
    fn publish(
        &self,
        events: Vec<InboundEvent>,
    ) -> impl Future<Output = Result<Published, QueueError>> + Send;
}

/// Where correctly signed bodies that cannot be parsed, and events too large for the queue
/// (their queue message, [`Oversized::message`]), are kept for an operator, so nothing is
/// silently lost.
pub trait Quarantine: Send + Sync {
    /// Keeps `body` with the `reason` it was refused; returns the quarantine id. Keeping the
    /// same body again returns the same id.
    fn quarantine(
        &self,
        body: &[u8],
        reason: &str,
        received_at: i64,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// Direction of a message in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the customer.
    Inbound,
    /// From the business.
    Outbound,
}

impl Direction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A message to record in a conversation's history.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    /// Ventana's id for the message (the wamid for inbound messages).
    pub id: String,
    /// Meta's message id.
    pub wamid: String,
    /// The business number.
    pub phone_number_id: String,
    /// The customer's resolved key.
    pub customer: CustomerKey,
    /// The ids the webhook gave.
    pub who: CustomerRef,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Meta's message `type` (`text`, `image`, … or an unknown type, kept as sent).
    pub message_type: String,
    /// The message's own timestamp (unix seconds).
    pub timestamp: i64,
    /// The message as Meta sent it (raw JSON).
    pub raw: String,
    /// When the history item expires (unix seconds, for the store's TTL).
    pub expires_at: i64,
}

/// A status report to apply to an outbound message.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRecord {
    /// The message's wamid.
    pub wamid: String,
    /// The business number.
    pub phone_number_id: Option<String>,
    /// The status reported.
    pub status: DeliveryStatus,
    /// When Meta says it happened.
    pub timestamp: i64,
    /// The first error reported with it, if any: (code, title/message).
    pub error: Option<(i64, String)>,
    /// Ventana's id echoed back by Meta in `biz_opaque_callback_data`.
    pub callback_data: Option<String>,
    /// The recipient's ids.
    pub recipient: Option<CustomerRef>,
    /// The pricing block (raw JSON), first one kept.
    pub pricing: Option<String>,
    /// When the status item expires (unix seconds).
    pub expires_at: i64,
}

/// The state of an outbound message as its statuses made it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryState {
    /// Every status seen, with its first timestamp.
    pub history: StatusHistory,
    /// The first error reported.
    pub error: Option<(i64, String)>,
    /// `biz_opaque_callback_data`, if Meta echoed one.
    pub callback_data: Option<String>,
}

impl DeliveryState {
    /// The current status.
    pub fn current(&self) -> Option<DeliveryStatus> {
        self.history.current()
    }

    /// The delivery state of an outbound message's history record `recorded` with the
    /// receipts its send holds (a receipt for an accepted send is written to the send only,
    /// see [`SendStore::add_status`]); `None` while neither has a status.
    pub fn with_receipts(
        recorded: Option<DeliveryState>,
        send: &StatusHistory,
    ) -> Option<DeliveryState> {
        let mut out = recorded;
        if send
            .entries()
            .iter()
            .any(|(s, _)| *s != DeliveryStatus::Failed)
        {
            out.get_or_insert_with(DeliveryState::default)
                .history
                .add_receipts(send);
        }
        out
    }
}

/// Whether a customer wants business-initiated messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// The customer asked to stop.
    OptedOut,
    /// The customer asked to resume (or opted in).
    OptedIn,
}

/// Where a consent change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentSource {
    /// A `user_preferences` webhook (WhatsApp's own "stop marketing messages" control).
    UserPreferences,
    /// A keyword such as STOP a customer typed (scope `all`), or a tap on a template's
    /// opt-out button such as "Stop promotions" (scope `marketing`); see [`crate::optout`].
    /// One source for both, so a record stays readable by a deployment that predates buttons.
    Keyword,
    /// A send failed with 131050 (the user stopped marketing messages).
    Error131050,
    /// Set through Ventana's API.
    Api,
}

impl ConsentSource {
    /// The storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentSource::UserPreferences => "user_preferences",
            ConsentSource::Keyword => "keyword",
            ConsentSource::Error131050 => "error_131050",
            ConsentSource::Api => "api",
        }
    }
}

/// A consent change for one customer of one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The business number.
    pub phone_number_id: String,
    /// The customer.
    pub customer: CustomerKey,
    /// `marketing` (WhatsApp's preference, 131050, an opt-out button) or `all` (a STOP
    /// keyword).
    pub scope: String,
    /// Stop or resume.
    pub consent: Consent,
    /// Where it came from.
    pub source: ConsentSource,
    /// When it happened (unix seconds); an older change never overrides a newer one.
    pub at: i64,
    /// What the business recorded with it (an explicit opt-in's origin and proof), if anything.
    pub detail: Option<ConsentDetail>,
}

/// What a business records with a consent change it sets through the API: where the
/// customer agreed (or asked to stop) and the evidence, kept for marketing sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsentDetail {
    /// Where it happened, in the business's words: `web_form`, `checkout`, `call_center`, ….
    pub origin: String,
    /// Evidence, e.g. the form's text and version or a reference to a recording.
    pub proof: Option<String>,
}

/// A management update about an account, number or template, applied newest-wins per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// The WhatsApp Business Account.
    pub waba_id: String,
    /// What the record is about, e.g. `template#<name>#<lang>`, `number#<display>`, `limit`,
    /// `account#<event>`.
    pub key: String,
    /// When Meta says it happened (`entry.time`, unix seconds).
    pub at: i64,
    /// Named attributes to store (strings), e.g. `status`=`APPROVED`.
    pub attributes: Vec<(String, String)>,
}

/// Any event kept whole for audit and later use (errors, account updates, unknown fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The event's natural key.
    pub natural_key: String,
    /// The WhatsApp Business Account, if known.
    pub waba_id: Option<String>,
    /// The business number, if known.
    pub phone_number_id: Option<String>,
    /// The webhook field.
    pub field: String,
    /// The event kind.
    pub kind: String,
    /// When it happened (unix seconds).
    pub at: i64,
    /// The raw item.
    pub raw: String,
    /// When the record expires (unix seconds).
    pub expires_at: i64,
}

/// What inbound-processor writes. Every method is idempotent: applying an event twice, or
/// applying events out of order, leaves the same state.
pub trait InboundStore: Send + Sync {
    /// Resolves the customer's key: the BSUID when given (recording the phone as its alias),
    /// else the customer a phone alias points to, else the phone itself.
    ///
    /// When it makes the phone an alias of the BSUID, what was recorded under the phone alone
    /// is carried over to the BSUID: every consent (kept only where no newer record of its
    /// scope is there, as [`InboundStore::record_consent`] keeps) and the window (moved
    /// forward only). So an opt-out given before Meta sent a BSUID still holds once lookups by
    /// phone resolve to the BSUID. A retried call finishes a carry-over a failed one began.
    /// The phone's own records stay as they were (a reader with a stale alias still finds
    /// them); message history does not move, and the BSUID's history includes it.
    fn resolve_customer(
        &self,
        phone_number_id: &str,
        who: &CustomerRef,
    ) -> impl Future<Output = Result<CustomerKey, StoreError>> + Send;

    /// A customer's BSUID changed (`user_changed_user_id`, or a number change that came with a
    /// new one): what was recorded under `from` is carried over to `to` as
    /// [`InboundStore::resolve_customer`] carries a phone's (every consent, newest wins per
    /// scope; the window, forward only), so an opt-out given under the old BSUID still holds;
    /// and `phone`, when given and an alias of `from`, resolves to `to` from now on (an alias
    /// of another customer is left alone). `from`'s own records and the message history stay
    /// where they are; `to`'s history includes `from`'s from now on (see
    /// [`ConversationReader::history`]). Idempotent: a redelivered event changes nothing more.
    fn change_customer(
        &self,
        phone_number_id: &str,
        from: &CustomerKey,
        to: &CustomerKey,
        who: &CustomerRef,
        phone: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a message once, by wamid; a replay returns `Recorded::Duplicate`.
    fn record_message(
        &self,
        m: &MessageRecord,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// Moves the customer's window forward (never back), and keeps their ids and profile name.
    fn advance_window(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        who: &CustomerRef,
        update: &WindowUpdate,
        profile_name: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds a status to a message's history (first timestamp and first error kept).
    ///
    /// Returns the send whose history record this message already was (the outbound record
    /// written once the send was accepted under this wamid), if it was: the status is then
    /// one of that send's statuses ([`SendStore::get_send`] reads them from here), and needs
    /// no write to the send itself.
    fn apply_status(
        &self,
        s: &StatusRecord,
    ) -> impl Future<Output = Result<Option<SendId>, StoreError>> + Send;

    /// Records a consent change unless a newer one for the same scope is stored.
    ///
    /// A record under a phone that is (by now) another customer's alias is recorded for that
    /// customer too: its key was resolved before the alias existed, and the carry-over of
    /// [`InboundStore::resolve_customer`] may have run before this write.
    fn record_consent(
        &self,
        c: &ConsentRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records an account, number, limit or template update unless a newer one is stored.
    fn record_account(
        &self,
        a: &AccountRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps an event whole, once per natural key.
    fn record_event(
        &self,
        e: &EventRecord,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
}

/// One message of a conversation's history, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryItem {
    /// The message record.
    pub message: MessageRecord,
    /// Its delivery state (outbound messages).
    pub delivery: Option<DeliveryState>,
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryPage {
    /// The messages, newest first.
    pub items: Vec<HistoryItem>,
    /// Opaque cursor for the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// What the read API needs.
pub trait ConversationReader: Send + Sync {
    /// The stored key for what a client asked for: a BSUID as is, a phone through its alias.
    fn lookup_customer(
        &self,
        phone_number_id: &str,
        asked: &CustomerKey,
    ) -> impl Future<Output = Result<CustomerKey, StoreError>> + Send;

    /// The customer's window and ids, if they ever wrote.
    fn window(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
    ) -> impl Future<Output = Result<Option<(Window, CustomerRef)>, StoreError>> + Send;

    /// The customer's messages, newest first, with those recorded under their earlier keys
    /// (the phone before the BSUID was known, a BSUID that changed: see
    /// [`InboundStore::change_customer`]) merged in by time. `cursor` comes from a previous
    /// page; an invalid cursor is `StoreError::Corrupt`.
    fn history(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        limit: usize,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<HistoryPage, StoreError>> + Send;
}

/// Which phone numbers an API key may act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    /// Any number (the local stack's dev key, an operator key).
    AnyNumber,
    /// Only these phone number ids.
    Numbers(Vec<String>),
}

impl KeyScope {
    /// Whether the key may act for `phone_number_id`.
    pub fn allows(&self, phone_number_id: &str) -> bool {
        match self {
            KeyScope::AnyNumber => true,
            KeyScope::Numbers(n) => n.iter().any(|x| x == phone_number_id),
        }
    }
}

/// API keys, stored by hash only.
pub trait ApiKeyStore: Send + Sync {
    /// The scope of the key with this hash (see [`crate::auth::hash_key`]), if it exists and is
    /// not revoked.
    fn find_key(
        &self,
        key_hash: &str,
    ) -> impl Future<Output = Result<Option<KeyScope>, StoreError>> + Send;

    /// Stores a key's hash with its scope and a label.
    fn put_key(
        &self,
        key_hash: &str,
        scope: &KeyScope,
        label: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What [`SendStore::create_send`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The send was stored.
    New,
    /// Its `Idempotency-Key` is held by a live send (a concurrent or earlier request with the
    /// same key): nothing was stored; this is that send.
    Exists(Box<SendRecord>),
}

/// Where sends are kept, from send-api to their last status.
pub trait SendStore: Send + Sync {
    /// Stores a new send (`r.version` is 0 and becomes 1). With an idempotency key
    /// (`r.idempotency`), the key is claimed in the same atomic write: if a send whose key
    /// has not expired (at `now_secs`) holds it, nothing is written and that send is returned.
    fn create_send(
        &self,
        r: &SendRecord,
        now_secs: i64,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// A send by id (strongly consistent), with the delivery statuses its message's history
    /// record holds ([`InboundStore::apply_status`]) merged in, the earliest time of each
    /// status winning.
    fn get_send(
        &self,
        id: &SendId,
    ) -> impl Future<Output = Result<Option<SendRecord>, StoreError>> + Send;

    /// The live send holding an idempotency key ([`crate::outbound::idempotency_hash`]), if
    /// its key has not expired at `now_secs`.
    fn find_idempotent(
        &self,
        key_hash: &str,
        now_secs: i64,
    ) -> impl Future<Output = Result<Option<SendRecord>, StoreError>> + Send;

    /// Saves `r` over the version it was read at (`r.version`): `Ok(true)` and `r.version`
    /// incremented if the stored version was still that one, `Ok(false)` and nothing written
    /// if someone saved it in between (read it again).
    fn save_send(
        &self,
        r: &mut SendRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Adds a status report to a send already accepted under `wamid`, in one write and
    /// without reading it (what a `sent`, `delivered` or `read` webhook does to a send the
    /// worker accepted, so the cheap path of the common case: the receipt is then on the
    /// send only, and readers of its history record add the send's receipts, see
    /// [`DeliveryState::with_receipts`]). `Ok(true)`: recorded, the
    /// earliest time of each status winning, and the send's version moved on so a save over
    /// an older read is refused. `Ok(false)`: nothing written (not accepted, another wamid,
    /// or that status already known at that time or earlier); the caller reads the send and
    /// applies [`SendRecord::apply_status`] instead. Never asked for `failed`, which changes
    /// the send's state. `pricing`: the report's `pricing` object, kept on the send if it has
    /// none yet ([`SendRecord::pricing`]). The default writes nothing and answers `Ok(false)`.
    fn add_status(
        &self,
        id: &SendId,
        wamid: &str,
        status: DeliveryStatus,
        at_secs: i64,
        pricing: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (id, wamid, status, at_secs, pricing);
        std::future::ready(Ok(false))
    }

    /// The consent records of a customer of a number, every scope.
    fn consents(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
    ) -> impl Future<Output = Result<Vec<ConsentRecord>, StoreError>> + Send;
}

/// A message on the outbound queue: which send to deliver. The send itself is in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendJob {
    /// The send.
    pub send_id: SendId,
    /// The order group: the number and the customer (or group id), so one customer's sends
    /// go out in order and different customers' in parallel.
    pub group: String,
}

impl SendJob {
    /// The job for a send.
    pub fn for_send(r: &SendRecord) -> Self {
        let to = match (&r.customer, &r.who) {
            (Some(c), _) => c.as_storage(),
            (None, Some(w)) => w.direct_key().as_storage(),
            (None, None) => format!("g:{}", group_of(&r.body)),
        };
        Self {
            send_id: r.id.clone(),
            group: format!("{}:{to}", r.phone_number_id),
        }
    }
}

/// The order group of a send without a customer: the group id of a group send; the message
/// a read receipt marks (read receipts need no order, and one group per number would make
/// them one file).
fn group_of(body: &serde_json::Value) -> &str {
    body.get("to")
        .or_else(|| body.get("message_id"))
        .and_then(|v| v.as_str())
        .unwrap_or("-")
}

/// Where send-api puts sends for the deliver-worker.
pub trait OutboundQueue: Send + Sync {
    /// Queues the job (deduplicated by send id for a few minutes), or fails: on `Err` nothing
    /// may be assumed queued.
    fn enqueue(&self, job: &SendJob) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The Graph API's messages endpoint.
pub trait GraphSender: Send + Sync {
    /// Posts `body` to `/{version}/{phone_number_id}/messages` and says what came of it.
    fn post_message(
        &self,
        phone_number_id: &str,
        body: &serde_json::Value,
    ) -> impl Future<Output = GraphOutcome> + Send;
}

/// Time, for the parts of the domain that wait.
pub trait Clock: Send + Sync {
    /// Now, unix milliseconds.
    fn now_ms(&self) -> i64;
    /// Resolves at `until_ms` (at once if it has passed).
    fn sleep_until(&self, until_ms: i64) -> impl Future<Output = ()> + Send;
}
