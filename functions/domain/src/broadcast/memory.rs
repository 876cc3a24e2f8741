//! In-memory fakes of the broadcast ports, over [`InMemoryStore`] (which keeps the sends,
//! windows, consents and account records), following the adapters' rules.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::customer::CustomerRef;
use crate::model::MessagingLimit;
use crate::outbound::{SendId, SendRecord};
use crate::ports::{ConversationReader, QueueError, Recorded, SendJob, SendStore, StoreError};
use crate::testing::InMemoryStore;

use super::{
    Audience, Broadcast, BroadcastId, BroadcastStore, LedgerEntry, LimitStore, OutboundBatch,
    RecipientList, RecipientPage, RecipientRow, RecipientSource, StepQueue,
};

#[derive(Default)]
struct State {
    broadcasts: HashMap<BroadcastId, Broadcast>,
    ledger: BTreeMap<(BroadcastId, u64), LedgerEntry>,
    quality_red: HashSet<String>,
    jobs: Vec<SendJob>,
    job_ids: HashSet<SendId>,
    steps: Vec<(BroadcastId, u64, i64)>,
    lists: HashMap<(String, String), Vec<RecipientRow>>,
    creations: HashMap<String, (BroadcastId, String, i64)>,
    /// Phone number id → until when its queued broadcast sends run (unix ms).
    paced: HashMap<String, i64>,
}

/// Broadcasts, ledger, limit, outbound and step queues in memory. Sends, windows, consents
/// and account records live in the wrapped [`InMemoryStore`].
#[derive(Clone)]
pub struct MemoryBroadcasts {
    /// The store of sends, windows, consents and accounts.
    pub store: Arc<InMemoryStore>,
    state: Arc<Mutex<State>>,
    fail_queue: Arc<AtomicBool>,
    fail_steps: Arc<AtomicBool>,
}

impl MemoryBroadcasts {
    /// Fakes over `store`.
    pub fn new(store: Arc<InMemoryStore>) -> Self {
        Self {
            store,
            state: Arc::default(),
            fail_queue: Arc::default(),
            fail_steps: Arc::default(),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Corrupt("poisoned".into()))
    }

    /// Every job queued on the outbound queue (once per send id, as FIFO dedup does).
    pub fn jobs(&self) -> Vec<SendJob> {
        self.state
            .lock()
            .map(|s| s.jobs.clone())
            .unwrap_or_default()
    }

    /// Takes the step messages scheduled so far: (broadcast, chain, delay).
    pub fn take_steps(&self) -> Vec<(BroadcastId, u64, i64)> {
        self.state
            .lock()
            .map(|mut s| std::mem::take(&mut s.steps))
            .unwrap_or_default()
    }

    /// Every ledger entry of a broadcast, in position order.
    pub fn ledger(&self, id: &BroadcastId) -> Vec<LedgerEntry> {
        self.state
            .lock()
            .map(|s| {
                s.ledger
                    .range((id.clone(), 0)..=(id.clone(), u64::MAX))
                    .map(|(_, e)| e.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Marks a number's quality RED (or not).
    pub fn set_quality_red(&self, phone_number_id: &str, red: bool) {
        if let Ok(mut s) = self.state.lock() {
            if red {
                s.quality_red.insert(phone_number_id.to_owned());
            } else {
                s.quality_red.remove(phone_number_id);
            }
        }
    }

    /// Stores a recipient list for the [`RecipientSource`] fake.
    pub fn put_list(&self, list: &RecipientList, rows: Vec<RecipientRow>) {
        if let Ok(mut s) = self.state.lock() {
            s.lists
                .insert((list.bucket.clone(), list.key.clone()), rows);
        }
    }

    /// Makes the outbound queue fail (or work again).
    pub fn set_queue_failing(&self, fail: bool) {
        self.fail_queue.store(fail, Ordering::SeqCst);
    }

    /// Makes the step queue fail (or work again).
    pub fn set_steps_failing(&self, fail: bool) {
        self.fail_steps.store(fail, Ordering::SeqCst);
    }
}

impl BroadcastStore for MemoryBroadcasts {
    async fn claim_creation(
        &self,
        key: &str,
        id: &BroadcastId,
        body_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Option<(BroadcastId, String)>, StoreError> {
        let mut s = self.lock()?;
        if let Some((held, hash, until)) = s.creations.get(key)
            && *until > now
        {
            return Ok(Some((held.clone(), hash.clone())));
        }
        s.creations.insert(
            key.to_owned(),
            (id.clone(), body_hash.to_owned(), expires_at),
        );
        Ok(None)
    }

    async fn create_broadcast(&self, b: &Broadcast) -> Result<Recorded, StoreError> {
        let mut s = self.lock()?;
        if s.broadcasts.contains_key(&b.id) {
            return Ok(Recorded::Duplicate);
        }
        let mut stored = b.clone();
        stored.version = 1;
        s.broadcasts.insert(b.id.clone(), stored);
        Ok(Recorded::New)
    }

    async fn get_broadcast(&self, id: &BroadcastId) -> Result<Option<Broadcast>, StoreError> {
        Ok(self.lock()?.broadcasts.get(id).cloned())
    }

    async fn save_broadcast(&self, b: &mut Broadcast) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        match s.broadcasts.get(&b.id) {
            Some(stored) if stored.version == b.version => {
                b.version += 1;
                s.broadcasts.insert(b.id.clone(), b.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn put_entries(&self, entries: &[LedgerEntry]) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        for e in entries {
            s.ledger
                .insert((e.broadcast_id.clone(), e.index), e.clone());
        }
        Ok(())
    }

    async fn entries(
        &self,
        id: &BroadcastId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        Ok(self
            .lock()?
            .ledger
            .range((id.clone(), from)..=(id.clone(), u64::MAX))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn send_owners(&self, ids: &[SendId]) -> Result<Vec<Option<u64>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(match self.store.get_send(id).await? {
                None => None,
                Some(r) => Some(r.broadcast_index.ok_or_else(|| {
                    StoreError::Corrupt(format!("send {id} has no broadcast position"))
                })?),
            });
        }
        Ok(out)
    }

    async fn create_sends(
        &self,
        sends: &[SendRecord],
        first_attempt: bool,
    ) -> Result<(), StoreError> {
        for r in sends {
            match self.store.get_send(&r.id).await? {
                None => {
                    self.store.create_send(r, 0).await?;
                }
                // A store writing without checking would have reset this send.
                Some(_) if first_attempt => {
                    return Err(StoreError::Corrupt(format!(
                        "send {} exists on a page's first attempt",
                        r.id
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    async fn get_sends(&self, ids: &[SendId]) -> Result<Vec<Option<SendRecord>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.store.get_send(id).await?);
        }
        Ok(out)
    }

    async fn audience(
        &self,
        phone_number_id: &str,
        who: &[CustomerRef],
        marketing: bool,
    ) -> Result<Vec<Audience>, StoreError> {
        let mut out = Vec::with_capacity(who.len());
        for w in who {
            let key = self
                .store
                .lookup_customer(phone_number_id, &w.direct_key())
                .await?;
            let window = self
                .store
                .window(phone_number_id, &key)
                .await?
                .map(|(w, _)| w);
            let mut consents = self.store.consents(phone_number_id, &key).await?;
            consents.retain(|c| marketing || c.scope != crate::consent::SCOPE_MARKETING);
            out.push(Audience {
                key: Some(key),
                window,
                consents,
            });
        }
        Ok(out)
    }

    async fn queue_pace(
        &self,
        phone_number_id: &str,
        now_ms: i64,
        add_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut s = self.lock()?;
        let until = s.paced.entry(phone_number_id.to_owned()).or_default();
        *until = (*until).max(now_ms) + add_ms;
        Ok(*until)
    }

    async fn quality_red(&self, _waba_id: &str, phone_number_id: &str) -> Result<bool, StoreError> {
        Ok(self.lock()?.quality_red.contains(phone_number_id))
    }
}

impl LimitStore for MemoryBroadcasts {
    async fn tier(&self, portfolio: &str) -> Result<Option<MessagingLimit>, StoreError> {
        self.store.tier(portfolio).await
    }

    async fn charged_since(
        &self,
        portfolio: &str,
        customers: &[String],
        since: i64,
    ) -> Result<HashMap<String, i64>, StoreError> {
        self.store.charged_since(portfolio, customers, since).await
    }

    async fn adjust_buckets(
        &self,
        portfolio: &str,
        deltas: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        self.store.adjust_buckets(portfolio, deltas).await
    }

    async fn reserve(
        &self,
        portfolio: &str,
        want: u64,
        limit: u64,
        now: i64,
    ) -> Result<(u64, Option<i64>), StoreError> {
        self.store.reserve(portfolio, want, limit, now).await
    }

    async fn record_charges(
        &self,
        portfolio: &str,
        customers: &[String],
        at: i64,
    ) -> Result<(), StoreError> {
        self.store.record_charges(portfolio, customers, at).await
    }
}

impl OutboundBatch for MemoryBroadcasts {
    async fn enqueue_batch(&self, jobs: &[SendJob]) -> Result<(), QueueError> {
        if self.fail_queue.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable("told to fail".into()));
        }
        let mut s = self
            .state
            .lock()
            .map_err(|_| QueueError::Unavailable("poisoned".into()))?;
        for j in jobs {
            if s.job_ids.insert(j.send_id.clone()) {
                s.jobs.push(j.clone());
            }
        }
        Ok(())
    }
}

impl StepQueue for MemoryBroadcasts {
    async fn schedule(
        &self,
        id: &BroadcastId,
        chain: u64,
        delay_secs: i64,
    ) -> Result<(), QueueError> {
        if self.fail_steps.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable("told to fail".into()));
        }
        if let Ok(mut s) = self.state.lock() {
            s.steps.push((id.clone(), chain, delay_secs));
        }
        Ok(())
    }
}

impl RecipientSource for MemoryBroadcasts {
    async fn page(
        &self,
        list: &RecipientList,
        cursor: Option<&str>,
        max_rows: usize,
    ) -> Result<RecipientPage, StoreError> {
        let s = self.lock()?;
        let rows = s
            .lists
            .get(&(list.bucket.clone(), list.key.clone()))
            .ok_or_else(|| StoreError::Corrupt("no such list".into()))?;
        let from: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let to = (from + max_rows).min(rows.len());
        Ok(RecipientPage {
            rows: rows[from.min(to)..to].to_vec(),
            next_cursor: (to < rows.len()).then(|| to.to_string()),
        })
    }
}
