//! In-memory fakes of the ports, for unit and handler tests. They follow the same rules as
//! the real adapters (conditional writes, forward-only windows, monotonic statuses), so tests
//! against them assert behaviour, not calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::customer::{CustomerKey, CustomerRef};
use crate::event::InboundEvent;
use crate::outbound::{GraphOutcome, SendId, SendRecord, SendState};
use crate::ports::*;
use crate::status::DeliveryStatus;
use crate::templates::{TemplateDef, TemplateStore};
use crate::window::{Window, WindowUpdate};

#[derive(Default)]
struct State {
    aliases: HashMap<(String, String), CustomerKey>,
    messages: HashMap<String, MessageRecord>,
    windows: HashMap<(String, CustomerKey), (Window, CustomerRef, Option<String>)>,
    deliveries: HashMap<String, DeliveryState>,
    consent: HashMap<(String, CustomerKey, String), ConsentRecord>,
    accounts: HashMap<(String, String), AccountRecord>,
    events: BTreeMap<String, EventRecord>,
    keys: HashMap<String, KeyScope>,
    quarantined: Vec<(Vec<u8>, String)>,
    sends: HashMap<SendId, SendRecord>,
    idempotency: HashMap<String, SendId>,
    templates: BTreeMap<(String, String, String), TemplateDef>,
    numbers: HashMap<String, String>,
    synced: HashMap<String, i64>,
    number_writes: usize,
    charges: HashMap<(String, String), i64>,
    buckets: HashMap<(String, i64), u64>,
    /// (number, customer) → the customer's earlier keys, whose history is theirs too.
    previous: HashMap<(String, CustomerKey), Vec<CustomerKey>>,
}

impl State {
    /// Moves a window forward (never back) and keeps the ids and profile name of its newest
    /// message.
    fn advance_window(
        &mut self,
        pnid: &str,
        customer: &CustomerKey,
        who: &CustomerRef,
        update: &WindowUpdate,
        profile_name: Option<&str>,
    ) {
        let entry = self
            .windows
            .entry((pnid.to_owned(), customer.clone()))
            .or_insert_with(|| (Window::default(), who.clone(), None));
        let newer = entry
            .0
            .last_inbound_at
            .is_none_or(|t| update.inbound_at >= t);
        entry.0.apply(update);
        if newer {
            if who.user_id.is_some() {
                entry.1.user_id = who.user_id.clone();
            }
            if who.wa_id.is_some() {
                entry.1.wa_id = who.wa_id.clone();
            }
            if let Some(p) = profile_name {
                entry.2 = Some(p.to_owned());
            }
        }
    }

    /// Keeps `c` unless a newer record of its scope is stored (equal `at` overwrites).
    fn record_consent(&mut self, c: ConsentRecord) {
        let k = (
            c.phone_number_id.clone(),
            c.customer.clone(),
            c.scope.clone(),
        );
        if self.consent.get(&k).is_none_or(|old| old.at <= c.at) {
            self.consent.insert(k, c);
        }
    }

    /// The delivery state the history shows for `m`: its record's statuses, with its send's
    /// receipts when it is an outbound message of one (as the adapter).
    fn delivery_of(&self, m: &MessageRecord) -> Option<DeliveryState> {
        let recorded = self.deliveries.get(&m.wamid).cloned();
        // The send's receipts are those of its own wamid.
        let send = (m.direction == Direction::Outbound)
            .then(|| SendId::parse(&m.id))
            .flatten()
            .and_then(|id| self.sends.get(&id))
            .filter(|r| r.wamid.as_deref() == Some(m.wamid.as_str()));
        match send {
            Some(r) => DeliveryState::with_receipts(recorded, &r.statuses),
            None => recorded,
        }
    }

    /// The keys a customer's history is read under: their own, then the earlier keys linked
    /// to it, and theirs in turn (at most 8, as the adapter).
    fn history_keys(&self, pnid: &str, customer: &CustomerKey) -> Vec<CustomerKey> {
        let mut keys = vec![customer.clone()];
        let mut next = 0;
        while next < keys.len() && keys.len() < 8 {
            for k in self
                .previous
                .get(&(pnid.to_owned(), keys[next].clone()))
                .into_iter()
                .flatten()
            {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
            next += 1;
        }
        keys.truncate(8);
        keys
    }

    /// Copies the consents (newest wins per scope) and the window (forward only) of `from`
    /// to `to`, and links `from`'s history to `to`; the profile name stays, as the adapter
    /// does not carry it.
    fn carry_over(&mut self, pnid: &str, from: &CustomerKey, to: &CustomerKey, who: &CustomerRef) {
        if from != to {
            let earlier = self
                .previous
                .entry((pnid.to_owned(), to.clone()))
                .or_default();
            if !earlier.contains(from) {
                earlier.push(from.clone());
                earlier.sort_by_key(CustomerKey::as_storage);
            }
        }
        let carried: Vec<ConsentRecord> = self
            .consent
            .values()
            .filter(|c| c.phone_number_id == pnid && &c.customer == from)
            .map(|c| ConsentRecord {
                customer: to.clone(),
                ..c.clone()
            })
            .collect();
        for c in carried {
            self.record_consent(c);
        }
        let update = self
            .windows
            .get(&(pnid.to_owned(), from.clone()))
            .and_then(|w| w.0.as_update());
        if let Some(u) = update {
            self.advance_window(pnid, to, who, &u, None);
        }
    }
}

/// A store in memory implementing every store port.
#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
    fail: AtomicBool,
}

fn unavailable() -> StoreError {
    StoreError::Unavailable("in-memory store told to fail".into())
}

impl InMemoryStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        self.state
            .lock()
            .map_err(|_| StoreError::Corrupt("poisoned".into()))
    }

    /// Makes every later call fail with `StoreError::Unavailable` (or succeed again).
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    /// How many messages are recorded.
    pub fn message_count(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.messages.len())
            .unwrap_or_default()
    }

    /// The recorded message with this wamid.
    pub fn message(&self, wamid: &str) -> Option<MessageRecord> {
        self.state.lock().ok()?.messages.get(wamid).cloned()
    }

    /// The delivery state of this wamid.
    pub fn delivery(&self, wamid: &str) -> Option<DeliveryState> {
        self.state.lock().ok()?.deliveries.get(wamid).cloned()
    }

    /// The window of a customer.
    pub fn window_of(&self, pnid: &str, key: &CustomerKey) -> Option<Window> {
        self.state
            .lock()
            .ok()?
            .windows
            .get(&(pnid.to_owned(), key.clone()))
            .map(|w| w.0)
    }

    /// The consent of a customer for a scope.
    pub fn consent_of(&self, pnid: &str, key: &CustomerKey, scope: &str) -> Option<ConsentRecord> {
        self.state
            .lock()
            .ok()?
            .consent
            .get(&(pnid.to_owned(), key.clone(), scope.to_owned()))
            .cloned()
    }

    /// An account record.
    pub fn account(&self, waba: &str, key: &str) -> Option<AccountRecord> {
        self.state
            .lock()
            .ok()?
            .accounts
            .get(&(waba.to_owned(), key.to_owned()))
            .cloned()
    }

    /// All kept events.
    pub fn events(&self) -> Vec<EventRecord> {
        self.state
            .lock()
            .map(|s| s.events.values().cloned().collect())
            .unwrap_or_default()
    }

    /// All quarantined bodies with their reasons.
    pub fn quarantined(&self) -> Vec<(Vec<u8>, String)> {
        self.state
            .lock()
            .map(|s| s.quarantined.clone())
            .unwrap_or_default()
    }
}

impl InboundStore for InMemoryStore {
    async fn resolve_customer(
        &self,
        pnid: &str,
        who: &CustomerRef,
    ) -> Result<CustomerKey, StoreError> {
        let mut s = self.lock()?;
        match (&who.user_id, &who.wa_id) {
            (Some(u), phone) => {
                let key = CustomerKey::Bsuid(u.clone());
                if let Some(p) = phone {
                    let alias = s.aliases.entry((pnid.to_owned(), p.clone()));
                    if let std::collections::hash_map::Entry::Vacant(e) = alias {
                        e.insert(key.clone());
                        // As the adapter does, the phone's consents and window are carried
                        // over when the alias is created (here under one lock).
                        s.carry_over(pnid, &CustomerKey::Phone(p.clone()), &key, who);
                    }
                }
                Ok(key)
            }
            (None, Some(p)) => Ok(s
                .aliases
                .get(&(pnid.to_owned(), p.clone()))
                .cloned()
                .unwrap_or_else(|| CustomerKey::Phone(p.clone()))),
            (None, None) => Err(StoreError::Corrupt("customer without ids".into())),
        }
    }

    async fn change_customer(
        &self,
        pnid: &str,
        from: &CustomerKey,
        to: &CustomerKey,
        who: &CustomerRef,
        phone: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.carry_over(pnid, from, to, who);
        if let Some(p) = phone
            && let Some(alias) = s.aliases.get_mut(&(pnid.to_owned(), p.to_owned()))
            && alias == from
        {
            *alias = to.clone();
        }
        Ok(())
    }

    async fn record_message(&self, m: &MessageRecord) -> Result<Recorded, StoreError> {
        let mut s = self.lock()?;
        if s.messages.contains_key(&m.wamid) {
            return Ok(Recorded::Duplicate);
        }
        s.messages.insert(m.wamid.clone(), m.clone());
        Ok(Recorded::New)
    }

    async fn advance_window(
        &self,
        pnid: &str,
        customer: &CustomerKey,
        who: &CustomerRef,
        update: &WindowUpdate,
        profile_name: Option<&str>,
    ) -> Result<(), StoreError> {
        self.lock()?
            .advance_window(pnid, customer, who, update, profile_name);
        Ok(())
    }

    async fn apply_status(&self, r: &StatusRecord) -> Result<Option<SendId>, StoreError> {
        let mut s = self.lock()?;
        let recorded = s
            .messages
            .get(&r.wamid)
            .filter(|m| m.direction == Direction::Outbound)
            .and_then(|m| SendId::parse(&m.id));
        let d = s.deliveries.entry(r.wamid.clone()).or_default();
        d.history.record(r.status, r.timestamp);
        if d.error.is_none() {
            d.error = r.error.clone();
        }
        if d.callback_data.is_none() {
            d.callback_data = r.callback_data.clone();
        }
        Ok(recorded)
    }

    async fn record_consent(&self, c: &ConsentRecord) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        s.record_consent(c.clone());
        // Recorded under a phone that is now another customer's alias (the key was resolved
        // before the alias existed): that customer gets it too, as in the adapter.
        if let CustomerKey::Phone(p) = &c.customer
            && let Some(aliased) = s.aliases.get(&(c.phone_number_id.clone(), p.clone()))
            && aliased != &c.customer
        {
            let customer = aliased.clone();
            s.record_consent(ConsentRecord {
                customer,
                ..c.clone()
            });
        }
        Ok(())
    }

    async fn record_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        let k = (a.waba_id.clone(), a.key.clone());
        if s.accounts.get(&k).is_none_or(|old| old.at <= a.at) {
            s.accounts.insert(k, a.clone());
        }
        Ok(())
    }

    async fn record_event(&self, e: &EventRecord) -> Result<Recorded, StoreError> {
        let mut s = self.lock()?;
        if s.events.contains_key(&e.natural_key) {
            return Ok(Recorded::Duplicate);
        }
        s.events.insert(e.natural_key.clone(), e.clone());
        Ok(Recorded::New)
    }
}

impl ConversationReader for InMemoryStore {
    async fn lookup_customer(
        &self,
        pnid: &str,
        asked: &CustomerKey,
    ) -> Result<CustomerKey, StoreError> {
        let s = self.lock()?;
        Ok(match asked {
            CustomerKey::Phone(p) => s
                .aliases
                .get(&(pnid.to_owned(), p.clone()))
                .cloned()
                .unwrap_or_else(|| asked.clone()),
            CustomerKey::Bsuid(_) => asked.clone(),
        })
    }

    async fn window(
        &self,
        pnid: &str,
        customer: &CustomerKey,
    ) -> Result<Option<(Window, CustomerRef)>, StoreError> {
        let s = self.lock()?;
        Ok(s.windows
            .get(&(pnid.to_owned(), customer.clone()))
            .map(|w| (w.0, w.1.clone())))
    }

    async fn history(
        &self,
        pnid: &str,
        customer: &CustomerKey,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<HistoryPage, StoreError> {
        let s = self.lock()?;
        let keys = s.history_keys(pnid, customer);
        let mut all: Vec<&MessageRecord> = s
            .messages
            .values()
            .filter(|m| m.phone_number_id == pnid && keys.contains(&m.customer))
            .collect();
        all.sort_by(|a, b| (b.timestamp, &b.wamid).cmp(&(a.timestamp, &a.wamid)));
        let start = match cursor {
            Some(c) => c
                .parse::<usize>()
                .map_err(|_| StoreError::Corrupt("bad cursor".into()))?,
            None => 0,
        };
        let items: Vec<HistoryItem> = all
            .iter()
            .skip(start)
            .take(limit)
            .map(|m| HistoryItem {
                message: (*m).clone(),
                delivery: s.delivery_of(m),
            })
            .collect();
        let next = start + items.len();
        Ok(HistoryPage {
            next_cursor: (next < all.len()).then(|| next.to_string()),
            items,
        })
    }
}

impl ApiKeyStore for InMemoryStore {
    async fn find_key(&self, key_hash: &str) -> Result<Option<KeyScope>, StoreError> {
        Ok(self.lock()?.keys.get(key_hash).cloned())
    }

    async fn put_key(
        &self,
        key_hash: &str,
        scope: &KeyScope,
        _label: &str,
    ) -> Result<(), StoreError> {
        self.lock()?.keys.insert(key_hash.to_owned(), scope.clone());
        Ok(())
    }
}

impl Quarantine for InMemoryStore {
    async fn quarantine(
        &self,
        body: &[u8],
        reason: &str,
        _received_at: i64,
    ) -> Result<String, StoreError> {
        let mut s = self.lock()?;
        s.quarantined.push((body.to_vec(), reason.to_owned()));
        Ok(format!("q{}", s.quarantined.len()))
    }
}

/// An event queue that keeps what it was given, deduplicating by dedup id as SQS FIFO does.
/// Unlimited by default; [`RecordingQueue::limited`] hands back events whose JSON is larger
/// than a message limit, as a real queue does.
#[derive(Default)]
pub struct RecordingQueue {
    events: Mutex<(Vec<InboundEvent>, std::collections::HashSet<String>)>,
    fail: AtomicBool,
    max_message_bytes: Option<usize>,
}

impl RecordingQueue {
    /// A queue whose messages (here: an event's JSON) hold at most `max_message_bytes`.
    pub fn limited(max_message_bytes: usize) -> Self {
        Self {
            max_message_bytes: Some(max_message_bytes),
            ..Self::default()
        }
    }

    /// Makes later publishes fail (or succeed again).
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    /// Everything queued, in order, duplicates removed.
    pub fn events(&self) -> Vec<InboundEvent> {
        self.events.lock().map(|e| e.0.clone()).unwrap_or_default()
    }
}

impl EventQueue for RecordingQueue {
    async fn publish(&self, events: Vec<InboundEvent>) -> Result<Published, QueueError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable(
                "recording queue told to fail".into(),
            ));
        }
        let mut published = Published::default();
        let mut fitting = Vec::with_capacity(events.len());
        for e in events {
            let Some(limit) = self.max_message_bytes else {
                fitting.push(e);
                continue;
            };
            let message =
                serde_json::to_string(&e).map_err(|err| QueueError::Unavailable(err.into()))?;
            if message.len() > limit {
                published.oversized.push(Oversized {
                    kind: e.kind,
                    field: e.field,
                    natural_key: e.natural_key,
                    message,
                    limit,
                });
            } else {
                fitting.push(e);
            }
        }
        let mut q = self
            .events
            .lock()
            .map_err(|_| QueueError::Unavailable("poisoned".into()))?;
        for e in fitting {
            published.queued += 1;
            if q.1.insert(e.dedup_id()) {
                q.0.push(e);
            }
        }
        Ok(published)
    }
}

impl InMemoryStore {
    /// A send as stored.
    pub fn send(&self, id: &SendId) -> Option<SendRecord> {
        self.state.lock().ok()?.sends.get(id).cloned()
    }

    /// Every send stored.
    pub fn sends(&self) -> Vec<SendRecord> {
        self.state
            .lock()
            .map(|s| s.sends.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl SendStore for InMemoryStore {
    async fn create_send(&self, r: &SendRecord, now_secs: i64) -> Result<Created, StoreError> {
        let mut s = self.lock()?;
        if s.sends.contains_key(&r.id) {
            return Err(StoreError::Corrupt(format!("send {} exists", r.id)));
        }
        if let Some(i) = &r.idempotency {
            let held = s
                .idempotency
                .get(&i.key_hash)
                .and_then(|id| s.sends.get(id))
                .filter(|e| {
                    e.idempotency
                        .as_ref()
                        .is_some_and(|x| x.expires_at > now_secs)
                });
            if let Some(existing) = held {
                return Ok(Created::Exists(Box::new(existing.clone())));
            }
            s.idempotency.insert(i.key_hash.clone(), r.id.clone());
        }
        let mut stored = r.clone();
        stored.version = 1;
        s.sends.insert(r.id.clone(), stored);
        Ok(Created::New)
    }

    async fn get_send(&self, id: &SendId) -> Result<Option<SendRecord>, StoreError> {
        let s = self.lock()?;
        Ok(s.sends.get(id).cloned().map(|mut r| {
            if let Some(d) = r.wamid.as_ref().and_then(|w| s.deliveries.get(w)) {
                r.statuses.add_receipts(&d.history);
            }
            r
        }))
    }

    async fn find_idempotent(
        &self,
        key_hash: &str,
        now_secs: i64,
    ) -> Result<Option<SendRecord>, StoreError> {
        let s = self.lock()?;
        Ok(s.idempotency
            .get(key_hash)
            .and_then(|id| s.sends.get(id))
            .filter(|e| {
                e.idempotency
                    .as_ref()
                    .is_some_and(|x| x.expires_at > now_secs)
            })
            .cloned())
    }

    async fn save_send(&self, r: &mut SendRecord) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        match s.sends.get(&r.id) {
            Some(stored) if stored.version == r.version => {
                r.version += 1;
                s.sends.insert(r.id.clone(), r.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn add_status(
        &self,
        id: &SendId,
        wamid: &str,
        status: DeliveryStatus,
        at_secs: i64,
        pricing: Option<&str>,
    ) -> Result<bool, StoreError> {
        // As the adapter's conditional write: an accepted send under `wamid`, and no earlier
        // (or equal) time of that status.
        let mut s = self.lock()?;
        let Some(r) = s.sends.get_mut(id) else {
            return Ok(false);
        };
        if status == DeliveryStatus::Failed
            || !matches!(r.state, SendState::Accepted { .. })
            || r.wamid.as_deref() != Some(wamid)
            || r.statuses.at(status).is_some_and(|t| t <= at_secs)
        {
            return Ok(false);
        }
        r.statuses.record(status, at_secs);
        if r.pricing.is_none() {
            r.pricing = pricing.map(str::to_owned);
        }
        r.version += 1;
        Ok(true)
    }

    async fn consents(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
    ) -> Result<Vec<ConsentRecord>, StoreError> {
        Ok(self
            .lock()?
            .consent
            .values()
            .filter(|c| c.phone_number_id == phone_number_id && &c.customer == customer)
            .cloned()
            .collect())
    }
}

/// An outbound queue that keeps its jobs, deduplicating by send id as SQS FIFO does (within
/// its memory, not five minutes).
#[derive(Default)]
pub struct RecordingOutbound {
    jobs: Mutex<Vec<SendJob>>,
    fail: AtomicBool,
}

impl RecordingOutbound {
    /// Makes later enqueues fail (or succeed again).
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    /// Every job queued, in order (each once).
    pub fn jobs(&self) -> Vec<SendJob> {
        self.jobs.lock().map(|j| j.clone()).unwrap_or_default()
    }
}

impl OutboundQueue for RecordingOutbound {
    async fn enqueue(&self, job: &SendJob) -> Result<(), QueueError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable(
                "recording outbound told to fail".into(),
            ));
        }
        let mut jobs = self
            .jobs
            .lock()
            .map_err(|_| QueueError::Unavailable("poisoned".into()))?;
        if !jobs.iter().any(|j| j.send_id == job.send_id) {
            jobs.push(job.clone());
        }
        Ok(())
    }
}

/// A Graph API that answers from a script (then accepts with `wamid.<n>`), recording every
/// body posted.
#[derive(Default)]
pub struct ScriptedGraph {
    script: Mutex<std::collections::VecDeque<GraphOutcome>>,
    posted: Mutex<Vec<(String, serde_json::Value)>>,
}

impl ScriptedGraph {
    /// Queues the next answers.
    pub fn answer(&self, outcomes: impl IntoIterator<Item = GraphOutcome>) {
        if let Ok(mut s) = self.script.lock() {
            s.extend(outcomes);
        }
    }

    /// Every (phone number id, body) posted, in order.
    pub fn posted(&self) -> Vec<(String, serde_json::Value)> {
        self.posted.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl GraphSender for ScriptedGraph {
    async fn post_message(&self, phone_number_id: &str, body: &serde_json::Value) -> GraphOutcome {
        let n = {
            let Ok(mut p) = self.posted.lock() else {
                return GraphOutcome::Transport(crate::outbound::TransportFailure::Other);
            };
            p.push((phone_number_id.to_owned(), body.clone()));
            p.len()
        };
        let next = self.script.lock().ok().and_then(|mut s| s.pop_front());
        next.unwrap_or_else(|| GraphOutcome::Accepted {
            wamid: format!("wamid.{n}"),
            message_status: None,
        })
    }
}

/// A clock that only moves when told to, or when slept on (sleeping jumps to the deadline).
#[derive(Default)]
pub struct ManualClock {
    now: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// A clock at `now_ms`.
    pub fn at(now_ms: i64) -> Self {
        Self {
            now: std::sync::atomic::AtomicI64::new(now_ms),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    async fn sleep_until(&self, until_ms: i64) {
        self.now.fetch_max(until_ms, Ordering::SeqCst);
    }
}

impl InMemoryStore {
    /// Tells the store which account a phone number belongs to.
    pub fn set_waba(&self, phone_number_id: &str, waba_id: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.numbers.insert(phone_number_id.into(), waba_id.into());
        }
    }
}

impl TemplateStore for InMemoryStore {
    async fn template(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
    ) -> Result<Option<TemplateDef>, StoreError> {
        let key = (waba_id.to_owned(), name.to_owned(), language.to_owned());
        Ok(self.lock()?.templates.get(&key).cloned())
    }

    async fn put_template(&self, t: &TemplateDef) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        let key = (t.waba_id.clone(), t.name.clone(), t.language.clone());
        match s.templates.get(&key) {
            Some(old) if old.updated_at > t.updated_at => {}
            _ => {
                s.templates.insert(key, t.clone());
            }
        }
        Ok(())
    }

    async fn templates(&self, waba_id: &str) -> Result<Vec<TemplateDef>, StoreError> {
        Ok(self
            .lock()?
            .templates
            .iter()
            .filter(|((w, _, _), _)| w == waba_id)
            .map(|(_, t)| t.clone())
            .collect())
    }

    async fn waba_of(&self, phone_number_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock()?.numbers.get(phone_number_id).cloned())
    }

    async fn remember_number(
        &self,
        phone_number_id: &str,
        waba_id: &str,
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if s.numbers.get(phone_number_id).map(String::as_str) != Some(waba_id) {
            s.numbers.insert(phone_number_id.into(), waba_id.into());
            s.number_writes += 1;
        }
        Ok(())
    }

    async fn mark_synced(&self, waba_id: &str, at: i64) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        let e = s.synced.entry(waba_id.into()).or_insert(at);
        *e = (*e).max(at);
        Ok(())
    }

    async fn synced_at(&self, waba_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.lock()?.synced.get(waba_id).copied())
    }
}

impl InMemoryStore {
    /// How many times [`TemplateStore::remember_number`] changed what the store knew.
    pub fn number_writes(&self) -> usize {
        self.state.lock().map(|s| s.number_writes).unwrap_or(0)
    }
}

/// The messaging limit kept like the DynamoDB adapter keeps it (one charge per portfolio and
/// customer, one counter per portfolio and hour): shared by API sends (send-api) and the
/// broadcast fakes in [`crate::broadcast::memory`], as both share the real table.
impl crate::broadcast::LimitStore for InMemoryStore {
    async fn tier(
        &self,
        portfolio: &str,
    ) -> Result<Option<crate::model::MessagingLimit>, StoreError> {
        let s = self.lock()?;
        Ok(s.accounts
            .get(&(portfolio.to_owned(), "messaging_limit".to_owned()))
            .and_then(|a| {
                a.attributes
                    .iter()
                    .find(|(k, _)| k == "tier")
                    .and_then(|(_, v)| crate::model::MessagingLimit::parse(v))
            }))
    }

    async fn charged_since(
        &self,
        portfolio: &str,
        customers: &[String],
        since: i64,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let s = self.lock()?;
        Ok(customers
            .iter()
            .filter_map(|c| {
                s.charges
                    .get(&(portfolio.to_owned(), c.clone()))
                    .filter(|at| **at > since)
                    .map(|at| (c.clone(), *at))
            })
            .collect())
    }

    async fn adjust_buckets(
        &self,
        portfolio: &str,
        deltas: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        for (bucket, delta) in deltas {
            let key = (portfolio.to_owned(), *bucket);
            if *delta >= 0 {
                *s.buckets.entry(key).or_default() += delta.unsigned_abs();
            } else if let Some(count) = s.buckets.get_mut(&key) {
                *count = count.saturating_sub(delta.unsigned_abs());
            }
        }
        Ok(())
    }

    async fn reserve(
        &self,
        portfolio: &str,
        want: u64,
        limit: u64,
        now: i64,
    ) -> Result<(u64, Option<i64>), StoreError> {
        use crate::broadcast::limit::{counted_buckets, grant};
        let mut s = self.lock()?;
        let buckets = counted_buckets(now);
        let counts: Vec<(i64, u64)> = buckets
            .iter()
            .map(|b| {
                let used = s.buckets.get(&(portfolio.to_owned(), *b)).copied();
                (*b, used.unwrap_or(0))
            })
            .collect();
        let (granted, retry) = grant(&counts, want, limit);
        if let Some(current) = buckets.last() {
            *s.buckets
                .entry((portfolio.to_owned(), *current))
                .or_default() += granted;
        }
        Ok((granted, retry))
    }

    async fn record_charges(
        &self,
        portfolio: &str,
        customers: &[String],
        at: i64,
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        for c in customers {
            s.charges.insert((portfolio.to_owned(), c.clone()), at);
        }
        Ok(())
    }
}

/// The `messages` of one thread of a coexistence `history` sync from `customer`: 300 past
/// texts, about 340 KiB once in a webhook, so that the change (one event: `history` has no
/// array the split walks into) is over SQS's 256 KiB message limit.
pub fn history_thread_over_256_kib(customer: &str) -> String {
    let text = "Hola, quisiera saber si el pedido ya salió. ".repeat(24);
    (0..300)
        .map(|i| {
            format!(
                r#"{{"from":"{customer}","id":"wamid.H{i}","timestamp":"{}","type":"text","text":{{"body":"{text} {i}"}},"history_context":{{"status":"READ"}}}}"#,
                1_795_000_000 + i,
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}
