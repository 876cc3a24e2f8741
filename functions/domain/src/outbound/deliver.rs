//! deliver-worker's use case: one queued send, delivered at most once to the Graph API within
//! the number's rate and the recipient's pair rate, and what came of it recorded.
//!
//! [`Deliverer::deliver`] reads the send, decides with [`plan`] (pure), and answers the queue
//! with a [`JobOutcome`]: done (delete the message), defer it (make it visible again later;
//! the FIFO group, that is this customer's later sends, waits behind it), or move it to the
//! dead-letter queue with a reason.
//!
//! # Never twice
//!
//! - Every state change is saved over the version read ([`SendStore::save_send`]); the
//!   *claim* (`Attempting`, with a lease) is saved before the Graph API is called, so two
//!   deliveries of the same queue message (SQS is at least once) cannot both post it.
//! - A settled send (accepted, failed, dead-lettered) is never posted again.
//! - A call that may have reached Meta without an answer (timeout after the request left, a
//!   worker that died mid-call: its lease ran out) makes the send *unconfirmed*: it waits
//!   [`DeliverConfig::unconfirmed_grace_ms`] for a status webhook carrying its id in
//!   `biz_opaque_callback_data` (applied by inbound-processor, [`SendRecord::apply_status`]),
//!   and is resent at most once if none came. A second unconfirmed call goes to the DLQ.
//!
//! # What Meta's answer changes besides the send
//!
//! - A "stop sending" code (an expired token, a locked or unpaid account: [`Disposition::
//!   StopSending`]) dead-letters the send (redrivable once fixed) and answers
//!   [`JobOutcome::StopSending`] so that the worker alerts operations; for
//!   [`DeliverConfig::stop_hold_ms`] every worker then dead-letters the number's other sends
//!   without calling Meta, instead of failing a whole backlog against a dead token. The
//!   hold, like the slow-down after a throughput error, is kept in the pacing store
//!   ([`BrakeStore`]), which every worker process reads at most once a
//!   [`BRAKES_FRESH_MS`] per number.
//! - A 131047 (window closed, by Meta's own clock) for a session message that has a fallback
//!   template switches it to the template, as the recheck at dequeue does, and tries again.
//! - A fallback the worker switches to is business-initiated: it is charged against the
//!   messaging limit of the number's portfolio, and waits (deferred, not sent, not failed)
//!   while the limit is full.
//! - 132015 / 132016 (template paused / disabled) mark the template so in the registry, so
//!   that send-api refuses it at once and the broadcast planner pauses its jobs.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::send::{SendFailure, SendKind, SendRecord, SendState};
use super::{Disposition, GraphOutcome, classify, code_rule, policy};
use crate::broadcast::LimitStore;
use crate::broadcast::limit::{BUCKET_SECS, LimitFull, charge_one, portfolio_of};
use crate::customer::CustomerKey;
use crate::model::MessagingLimit;
use crate::pacing::pair::{PairGate, PairPolicy, PairStore};
use crate::pacing::{Acquire, BrakeStore, Brakes, LeaseStore, Pacer, PacerConfig, Permit};
use crate::ports::{
    Clock, Consent, ConsentRecord, ConsentSource, ConversationReader, Direction, GraphSender,
    InboundStore, MessageRecord, SendJob, SendStore, StoreError,
};
use crate::templates::{
    TemplateChange, TemplateRef, TemplateStatus, TemplateStore, Verdict, apply_change, check_send,
    name_and_language,
};

/// How the worker delivers.
#[derive(Debug, Clone)]
pub struct DeliverConfig {
    /// The window is treated as closing this much early at dequeue (seconds).
    pub window_margin_secs: i64,
    /// How long an unconfirmed send waits for a status webhook before its one resend (ms).
    pub unconfirmed_grace_ms: i64,
    /// Graph API calls before a send that keeps failing transiently is dead-lettered.
    pub max_attempts: u32,
    /// How long a claim lasts (ms): longer than the pacer wait plus the Graph API timeout. A
    /// claim that outlives it is taken for a worker that died mid-call.
    pub lease_ms: i64,
    /// The longest the worker waits in-process for the number's rate (ms); longer waits
    /// defer the message instead.
    pub max_inline_wait_ms: i64,
    /// The longest retry backoff (ms).
    pub max_backoff_ms: i64,
    /// Messages per second for numbers without their own limit.
    pub default_limit: u32,
    /// Per-number limits (phone number id → messages per second).
    pub limits: HashMap<String, u32>,
    /// After a throughput error the number runs at half its limit for this long, in every
    /// worker (ms).
    pub slow_down_ms: i64,
    /// How long outbound history is kept (seconds).
    pub retention_secs: i64,
    /// After Meta answers a "stop sending" code for a number, its other sends are
    /// dead-lettered without calling Meta for this long, by every worker (ms); then the next
    /// send tries Meta again.
    pub stop_hold_ms: i64,
    /// The messaging-limit tier assumed for a portfolio no webhook has told the tier of, when
    /// a fallback template is charged (as send-api and the broadcast planner assume it).
    pub default_tier: MessagingLimit,
}

impl Default for DeliverConfig {
    fn default() -> Self {
        Self {
            window_margin_secs: 60,
            unconfirmed_grace_ms: 120_000,
            max_attempts: 5,
            lease_ms: 30_000,
            max_inline_wait_ms: 2_000,
            max_backoff_ms: 900_000,
            default_limit: crate::pacing::DEFAULT_LIMIT,
            limits: HashMap::new(),
            slow_down_ms: 60_000,
            retention_secs: 90 * 86_400,
            stop_hold_ms: 60_000,
            default_tier: MessagingLimit::Tier250,
        }
    }
}

impl DeliverConfig {
    /// The configured limit of a number.
    pub fn limit_of(&self, phone_number_id: &str) -> u32 {
        self.limits
            .get(phone_number_id)
            .copied()
            .unwrap_or(self.default_limit)
    }
}

/// What to do with the queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Finished (sent, failed for good, or nothing left to do): delete it.
    Done,
    /// Try again in `delay_ms` (make it visible again then).
    Defer {
        /// How long to wait.
        delay_ms: i64,
    },
    /// Give up: move it to the dead-letter queue with this reason (the send is recorded as
    /// dead-lettered with the same reason).
    DeadLetter {
        /// Why.
        reason: String,
    },
    /// Meta said stop sending from this number or account (an expired token, say): move it
    /// to the dead-letter queue like [`JobOutcome::DeadLetter`] (the send is recorded as
    /// dead-lettered with Meta's code, and a redrive sends it once the cause is fixed), and
    /// alert operations.
    StopSending {
        /// Meta's code.
        code: i64,
        /// Why (the code and what it means; never a body or a token).
        reason: String,
    },
}

/// What [`plan`] decided for a send read at dequeue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to do: it is settled.
    Done,
    /// Not yet: ask again at this instant (unix ms).
    WaitUntil(i64),
    /// Post it (again, after an unconfirmed attempt, when `resend`).
    Attempt {
        /// Whether this is the one resend of an unconfirmed send.
        resend: bool,
    },
    /// An attempt may have reached Meta and none is confirmed: the send becomes unconfirmed
    /// since this instant (a claim whose worker died).
    MarkUnconfirmed {
        /// Since when.
        since_ms: i64,
        /// Whether the lost call was already the one resend.
        resent: bool,
    },
    /// Give up with this reason.
    DeadLetter(String),
}

/// Decides what to do with a send read at `now_ms` (pure).
pub fn plan(r: &SendRecord, now_ms: i64, cfg: &DeliverConfig) -> Plan {
    match &r.state {
        SendState::Accepted { .. } | SendState::Failed | SendState::DeadLettered => Plan::Done,
        SendState::Attempting { lease_until_ms, .. } if now_ms < *lease_until_ms => {
            Plan::WaitUntil(*lease_until_ms)
        }
        SendState::Attempting {
            lease_until_ms,
            resend,
        } => Plan::MarkUnconfirmed {
            since_ms: *lease_until_ms,
            resent: *resend,
        },
        SendState::Unconfirmed { since_ms, resent } => {
            let until = since_ms.saturating_add(cfg.unconfirmed_grace_ms);
            if now_ms < until {
                Plan::WaitUntil(until)
            } else if *resent {
                Plan::DeadLetter(
                    "unconfirmed: no answer and no status webhook after the one resend; it may have been delivered".into(),
                )
            } else {
                Plan::Attempt { resend: true }
            }
        }
        SendState::Pending { not_before_ms } if now_ms < *not_before_ms => {
            Plan::WaitUntil(*not_before_ms)
        }
        SendState::Pending { .. } if r.attempts >= cfg.max_attempts => Plan::DeadLetter(gave_up(r)),
        SendState::Pending { .. } => Plan::Attempt { resend: false },
    }
}

/// The DLQ reason of a send that used up its attempts: how many, and its last error.
fn gave_up(r: &SendRecord) -> String {
    let last = r.error.as_ref().map_or_else(
        || "no error recorded".to_owned(),
        |e| format!("code {} ({})", e.code, e.message),
    );
    format!("gave up after {} attempts: {last}", r.attempts)
}

/// How long a worker trusts its copy of a number's [`Brakes`] before reading them again
/// (ms): what another worker process learnt from Meta reaches this one within it.
pub const BRAKES_FRESH_MS: i64 = 1_000;

/// This process's copies of numbers' brakes, each with when it was read.
#[derive(Debug, Default)]
struct BrakeCache {
    numbers: Mutex<HashMap<String, (Brakes, i64)>>,
}

impl BrakeCache {
    fn get(&self, pnid: &str) -> Option<(Brakes, i64)> {
        let map = self.numbers.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(pnid).copied()
    }

    /// Keeps `b` (read at `at_ms`) with what this process knew: the later of each brake, so a
    /// brake this process just set is not lost to a read that does not show it yet.
    fn merge(&self, pnid: &str, b: Brakes, at_ms: i64) -> Brakes {
        let mut map = self.numbers.lock().unwrap_or_else(PoisonError::into_inner);
        let e = map
            .entry(pnid.to_owned())
            .or_insert((Brakes::default(), at_ms));
        e.0.slow_until_ms = e.0.slow_until_ms.max(b.slow_until_ms);
        if b.hold
            .is_some_and(|(t, _)| e.0.hold.is_none_or(|(mine, _)| mine < t))
        {
            e.0.hold = b.hold;
        }
        e.1 = at_ms;
        e.0
    }
}

/// The deliver-worker's engine: shared by every message of every batch of a process.
pub struct Deliverer<S, L, P, G, C> {
    store: S,
    pacer: Pacer<L>,
    pair: PairGate<P>,
    graph: G,
    clock: C,
    config: DeliverConfig,
    brakes: BrakeCache,
}

/// How many times a save is retried over a fresh read when someone else saved in between.
const SAVE_ATTEMPTS: usize = 5;

impl<S, L, P, G, C> Deliverer<S, L, P, G, C>
where
    S: SendStore + InboundStore + ConversationReader + TemplateStore + LimitStore,
    L: LeaseStore + BrakeStore,
    P: PairStore,
    G: GraphSender,
    C: Clock,
{
    /// An engine over its ports. `seed` spreads the pacer's random back-off between workers.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: S,
        leases: L,
        pairs: P,
        graph: G,
        clock: C,
        config: DeliverConfig,
        pacer: PacerConfig,
        pair: PairPolicy,
        seed: u64,
    ) -> Self {
        Self {
            store,
            pacer: Pacer::with_config(leases, seed, pacer),
            pair: PairGate::new(pairs, pair),
            graph,
            clock,
            config,
            brakes: BrakeCache::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The Graph API client.
    pub fn graph(&self) -> &G {
        &self.graph
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The configuration.
    pub fn config(&self) -> &DeliverConfig {
        &self.config
    }

    /// The pacer (for its counters).
    pub fn pacer(&self) -> &Pacer<L> {
        &self.pacer
    }

    /// Delivers one queued send. `backlog` is how many sends of the same number this process
    /// has ready at once (the rest of its batch), so the pacer leases tokens for all of them
    /// in one request. A store failure is returned: the message should simply be retried
    /// later (nothing was posted after a failed save).
    pub async fn deliver(&self, job: &SendJob, backlog: u32) -> Result<JobOutcome, StoreError> {
        let Some(mut r) = self.store.get_send(&job.send_id).await? else {
            return Ok(JobOutcome::DeadLetter {
                reason: format!("no send {} in the store", job.send_id),
            });
        };
        for _ in 0..SAVE_ATTEMPTS {
            let now = self.clock.now_ms();
            let resend = match plan(&r, now, &self.config) {
                Plan::Done => return Ok(JobOutcome::Done),
                Plan::WaitUntil(t) => return Ok(defer(t - now)),
                Plan::DeadLetter(reason) => {
                    if matches!(r.state, SendState::Unconfirmed { .. }) {
                        // Not a failure Meta reported: say what is known, that it may have
                        // gone out.
                        r.error = Some(SendFailure::new(0, reason.clone()));
                    }
                    return self.dead_letter(r, reason).await;
                }
                Plan::MarkUnconfirmed { since_ms, resent } => {
                    r.state = SendState::Unconfirmed { since_ms, resent };
                    if !self.store.save_send(&mut r).await? {
                        r = self.reload(&r).await?;
                    }
                    continue;
                }
                Plan::Attempt { resend } => resend,
            };
            if let Some(code) = self.brakes_of(&r.phone_number_id, now).await.held(now) {
                return self.held_back(r, code).await;
            }
            // Checked again at dequeue: the window may have closed, the customer opted out.
            if let Some(outcome) = self.recheck(&mut r, now).await? {
                return Ok(outcome);
            }
            // The recipient's pair-rate slot, taken here and handed back below if the send
            // does not go after all.
            let paired = match (&r.customer, r.kind) {
                (Some(c), SendKind::Session | SendKind::Template) => {
                    if let Some(t) = self.pair.reserve(&r.phone_number_id, c, now).await? {
                        return Ok(defer(t - self.clock.now_ms()));
                    }
                    Some(c.clone())
                }
                _ => None,
            };
            let lease_until = self.clock.now_ms() + self.config.lease_ms;
            r.claim(lease_until, resend);
            if !self.store.save_send(&mut r).await? {
                // Another delivery of the same message got there first; look again.
                self.give_back_pair(&r.phone_number_id, paired.as_ref())
                    .await?;
                r = self.reload(&r).await?;
                continue;
            }
            let Some(_permit) = self.permit(&r.phone_number_id, backlog).await? else {
                // The number is saturated: hand the claim back and come back later.
                r.state = SendState::Pending { not_before_ms: 0 };
                r.attempts -= 1;
                self.save_or_reload(&mut r).await?;
                self.give_back_pair(&r.phone_number_id, paired.as_ref())
                    .await?;
                return Ok(defer(self.config.max_inline_wait_ms));
            };
            let outcome = self
                .graph
                .post_message(&r.phone_number_id, &r.graph_body())
                .await;
            return self.settle(r, outcome, resend).await;
        }
        Ok(defer(1_000))
    }

    /// Hands the pair-rate slot of a send that did not go back to its recipient, if it took
    /// one.
    async fn give_back_pair(
        &self,
        pnid: &str,
        customer: Option<&CustomerKey>,
    ) -> Result<(), StoreError> {
        match customer {
            Some(c) => self.pair.give_back(pnid, c).await,
            None => Ok(()),
        }
    }

    async fn reload(&self, r: &SendRecord) -> Result<SendRecord, StoreError> {
        self.store
            .get_send(&r.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("send {} vanished", r.id)))
    }

    /// Saves `r`; if someone saved in between, re-reads it into `r` (their change wins) and
    /// returns `false`.
    async fn save_or_reload(&self, r: &mut SendRecord) -> Result<bool, StoreError> {
        if self.store.save_send(r).await? {
            return Ok(true);
        }
        *r = self.reload(r).await?;
        Ok(false)
    }

    /// The number's brakes: this process's copy while it is fresher than
    /// [`BRAKES_FRESH_MS`], else read from the store (shared by every worker) and merged with
    /// what this process set itself. A failed read keeps the copy: the brakes are advice, and
    /// the send's own store calls report a store that is down.
    async fn brakes_of(&self, pnid: &str, now_ms: i64) -> Brakes {
        match self.brakes.get(pnid) {
            Some((b, at)) if now_ms - at < BRAKES_FRESH_MS => b,
            cached => match self.pacer.store().brakes(pnid).await {
                Ok(stored) => self.brakes.merge(pnid, stored, now_ms),
                Err(_) => cached.map(|(b, _)| b).unwrap_or_default(),
            },
        }
    }

    /// A permit of the number's rate, waiting for it in-process up to
    /// [`DeliverConfig::max_inline_wait_ms`]; `None` past that.
    async fn permit(&self, pnid: &str, backlog: u32) -> Result<Option<Permit>, StoreError> {
        let start = self.clock.now_ms();
        loop {
            let now = self.clock.now_ms();
            let limit = self
                .brakes_of(pnid, now)
                .await
                .limit(self.config.limit_of(pnid), now);
            match self
                .pacer
                .acquire_for(pnid, limit, backlog.max(1), now)
                .await?
            {
                Acquire::Permit(p) if p.is_valid_at(self.clock.now_ms()) => return Ok(Some(p)),
                Acquire::Permit(_) => {}
                Acquire::Wait { until_ms } => {
                    if until_ms - start > self.config.max_inline_wait_ms {
                        return Ok(None);
                    }
                    self.clock.sleep_until(until_ms).await;
                }
            }
        }
    }

    /// The window and consent, again at dequeue. A send that may no longer go is failed (or
    /// switched to its fallback template, which is charged against the messaging limit and
    /// waits while the limit is full).
    async fn recheck(
        &self,
        r: &mut SendRecord,
        now_ms: i64,
    ) -> Result<Option<JobOutcome>, StoreError> {
        let Some(customer) = r.customer.clone() else {
            return Ok(None);
        };
        if r.kind == SendKind::ReadReceipt {
            return Ok(None);
        }
        let now = now_ms.div_euclid(1000);
        let window = self
            .store
            .window(&r.phone_number_id, &customer)
            .await?
            .map(|(w, _)| w);
        let consents = self.store.consents(&r.phone_number_id, &customer).await?;
        let margin = self.config.window_margin_secs;
        let mut verdict = policy::check(r.kind, window.as_ref(), &consents, now, margin);
        // The session message as it was, while its switch to the fallback is not charged.
        let mut session = None;
        if verdict == Err(policy::Refusal::WindowClosed) && r.fallback.is_some() {
            let before = r.clone();
            if r.switch_to_fallback() {
                session = Some(before);
                verdict = policy::check(r.kind, window.as_ref(), &consents, now, margin);
            }
        }
        if r.kind == SendKind::Template
            && matches!(&verdict, Err(policy::Refusal::OptedOut { scope }) if scope == crate::consent::SCOPE_MARKETING)
            && !self.needs_marketing_consent(r).await?
        {
            // A marketing opt-out does not stop a utility or authentication template.
            verdict = policy::check_for(r.kind, false, window.as_ref(), &consents, now, margin);
        }
        let Err(refusal) = verdict else {
            let Some(session) = session else {
                return Ok(None);
            };
            // Open by Meta's measure (no margin) while closed by Ventana's: the template may
            // still arrive inside the window, as send-api counts it.
            let open = window
                .as_ref()
                .is_some_and(|w| w.allows_session_message(now, 0));
            let Err(full) = self.charge_fallback(r, open, now_ms).await? else {
                return Ok(None);
            };
            // Not sent, not failed: it waits as the session message it was (the window may
            // open again meanwhile, and then that goes, free).
            *r = session;
            let delay = wait_for_limit(r, full, now_ms);
            return Ok(Some(if self.save_or_reload(r).await? {
                defer(delay)
            } else {
                defer(0)
            }));
        };
        r.state = SendState::Failed;
        r.error = Some(SendFailure::new(
            refusal.code(),
            format!("{} (at dequeue)", refusal.message()),
        ));
        if self.save_or_reload(r).await? {
            Ok(Some(JobOutcome::Done))
        } else {
            // Someone changed it (a status webhook?): decide again from what they saved.
            Ok(Some(defer(0)))
        }
    }

    /// Whether the template of `r` needs marketing consent: its category in the registry
    /// (kept current by `template_category_update` webhooks) says so, or it is not known
    /// there (not sending is the safe side). Asked only when a marketing opt-out is in force.
    async fn needs_marketing_consent(&self, r: &SendRecord) -> Result<bool, StoreError> {
        let Some(template) = r.body.get("template") else {
            return Ok(true);
        };
        Ok(
            match check_send(&self.store, &r.phone_number_id, template).await? {
                Verdict::Fits(def) => def.category.needs_marketing_consent(),
                Verdict::Unchecked | Verdict::Refused(_) => true,
            },
        )
    }

    /// Charges a fallback template the worker switched `r` to against the messaging limit of
    /// the number's portfolio, as send-api charges an API template send
    /// ([`charge_one`]): free when the customer's window is open or they were charged in the
    /// last 24 hours (charging again after a lost save is therefore free too).
    async fn charge_fallback(
        &self,
        r: &SendRecord,
        window_open: bool,
        now_ms: i64,
    ) -> Result<Result<(), LimitFull>, StoreError> {
        let Some(customer) = &r.customer else {
            return Ok(Ok(()));
        };
        if window_open {
            return Ok(Ok(()));
        }
        let portfolio = portfolio_of(&self.store, &r.phone_number_id).await?;
        charge_one(
            &self.store,
            &portfolio,
            &customer.as_storage(),
            false,
            self.config.default_tier,
            now_ms.div_euclid(1000),
        )
        .await
    }

    /// Dead-letters a send of a number Meta told to stop sending from a moment ago, without
    /// calling Meta: a redrive sends it once the cause is fixed.
    async fn held_back(&self, mut r: SendRecord, code: i64) -> Result<JobOutcome, StoreError> {
        let reason = format!(
            "not sent: Meta answered code {code} ({}) for this number less than {} s ago; fix the access token or the account, then redrive",
            meaning_of(code),
            self.config.stop_hold_ms.div_euclid(1000),
        );
        r.error = Some(SendFailure::new(code, reason.clone()));
        self.dead_letter(r, reason).await
    }

    /// Marks the template of a template send `status` in the registry (at `now_ms`), as a
    /// status webhook would (an unknown template is added with it): newer news (a sync, a
    /// webhook) is kept. Nothing when the number's account is not known.
    async fn mark_template(
        &self,
        r: &SendRecord,
        status: TemplateStatus,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let Some((name, language)) = r.body.get("template").and_then(name_and_language) else {
            return Ok(());
        };
        let Some(waba_id) = self.store.waba_of(&r.phone_number_id).await? else {
            return Ok(());
        };
        let template = TemplateRef {
            waba_id: &waba_id,
            name,
            language,
            id: None,
        };
        let change = TemplateChange::Status {
            status,
            category: None,
        };
        apply_change(&self.store, template, change, now_ms.div_euclid(1000)).await?;
        Ok(())
    }

    /// Records what came of a Graph API call.
    async fn settle(
        &self,
        mut r: SendRecord,
        outcome: GraphOutcome,
        resend: bool,
    ) -> Result<JobOutcome, StoreError> {
        let now = self.clock.now_ms();
        // A read receipt is answered `{"success":true}`, without a message id; sending one
        // twice is harmless, so anything but a refusal counts as done.
        let disposition = if r.kind == SendKind::ReadReceipt
            && !matches!(outcome, GraphOutcome::Rejected { .. })
        {
            Disposition::Delivered {
                wamid: String::new(),
            }
        } else {
            classify(&outcome)
        };
        let failure = failure_of(&outcome);
        // Meta paused or disabled the template: the registry learns it now, not at the next
        // webhook or sync.
        let template_status = match (&disposition, r.kind) {
            (Disposition::Permanent { code: 132_015 }, SendKind::Template) => {
                Some(TemplateStatus::Paused)
            }
            (Disposition::Permanent { code: 132_016 }, SendKind::Template) => {
                Some(TemplateStatus::Disabled)
            }
            _ => None,
        };
        let mut result = JobOutcome::Done;
        let mut history = None;
        match disposition {
            Disposition::Delivered { wamid } => {
                if !wamid.is_empty() {
                    r.wamid.get_or_insert(wamid.clone());
                    history = Some(wamid);
                }
                r.state = SendState::Accepted {
                    at_ms: now,
                    by_webhook: false,
                };
                r.error = None;
            }
            Disposition::Retry {
                backoff_hint,
                slow_number,
                max_retries,
            } => {
                if slow_number {
                    let until = now + self.config.slow_down_ms;
                    let brake = Brakes {
                        slow_until_ms: Some(until),
                        hold: None,
                    };
                    self.brakes.merge(&r.phone_number_id, brake, now);
                    // Shared with the other workers when the store takes it; this process
                    // slows down either way.
                    let _ = self
                        .pacer
                        .store()
                        .slow_down(&r.phone_number_id, until)
                        .await;
                }
                r.error = Some(failure);
                let over = max_retries.is_some_and(|m| r.attempts > m)
                    || r.attempts >= self.config.max_attempts;
                if over {
                    let reason = gave_up(&r);
                    return self.dead_letter(r, reason).await;
                }
                let hint = i64::try_from(backoff_hint.as_millis()).unwrap_or(i64::MAX);
                let factor = 1i64 << r.attempts.saturating_sub(1).min(20);
                let delay = hint
                    .saturating_mul(factor)
                    .min(self.config.max_backoff_ms)
                    .max(1_000);
                r.state = SendState::Pending {
                    not_before_ms: now + delay,
                };
                result = defer(delay);
            }
            Disposition::PairRateLimited => {
                r.error = Some(failure);
                let retry_at = match &r.customer {
                    Some(c) => self.pair.rate_limited(&r.phone_number_id, c, now).await?,
                    None => now + 1_000,
                };
                if r.attempts >= self.config.max_attempts {
                    let reason = gave_up(&r);
                    return self.dead_letter(r, reason).await;
                }
                r.state = SendState::Pending {
                    not_before_ms: retry_at,
                };
                result = defer(retry_at - now);
            }
            Disposition::WindowClosed if r.kind == SendKind::Session && r.fallback.is_some() => {
                // Meta's clock says the window is closed (Ventana's said open): the fallback
                // goes instead, as at dequeue, and this attempt of the session message does
                // not count against the template.
                r.attempts = r.attempts.saturating_sub(1);
                r.error = Some(failure);
                let mut switched = r.clone();
                switched.switch_to_fallback();
                let delay = match self.charge_fallback(&switched, false, now).await? {
                    Ok(()) => {
                        r = switched;
                        r.state = SendState::Pending { not_before_ms: now };
                        0
                    }
                    // It waits as the session message (tried again then, in case the customer
                    // wrote meanwhile).
                    Err(full) => wait_for_limit(&mut r, full, now),
                };
                result = defer(delay);
            }
            Disposition::StopSending { code } => {
                r.error = Some(failure);
                let until = now + self.config.stop_hold_ms;
                let brake = Brakes {
                    slow_until_ms: None,
                    hold: Some((until, code)),
                };
                self.brakes.merge(&r.phone_number_id, brake, now);
                // Shared with the other workers when the store takes it; this process holds
                // the number either way.
                let _ = self
                    .pacer
                    .store()
                    .hold(&r.phone_number_id, until, code)
                    .await;
                let reason = format!(
                    "Meta said stop sending: code {code} ({}); fix the access token or the account, then redrive",
                    meaning_of(code)
                );
                return Ok(match self.dead_letter(r, reason).await? {
                    JobOutcome::DeadLetter { reason } => JobOutcome::StopSending { code, reason },
                    other => other,
                });
            }
            Disposition::WindowClosed | Disposition::Permanent { .. } => {
                r.state = SendState::Failed;
                r.error = Some(failure);
            }
            Disposition::OptedOut => {
                r.state = SendState::Failed;
                r.error = Some(failure);
                if let Some(c) = &r.customer {
                    self.store
                        .record_consent(&ConsentRecord {
                            phone_number_id: r.phone_number_id.clone(),
                            customer: c.clone(),
                            scope: "marketing".into(),
                            consent: Consent::OptedOut,
                            source: ConsentSource::Error131050,
                            at: now.div_euclid(1000),
                            detail: None,
                        })
                        .await?;
                }
            }
            Disposition::Unconfirmed => {
                r.error = Some(failure);
                r.state = SendState::Unconfirmed {
                    since_ms: now,
                    resent: resend,
                };
                result = defer(self.config.unconfirmed_grace_ms);
            }
        }
        let decided = r.state.clone();
        if !self.store.save_send(&mut r).await? {
            // A status webhook saved it in between (it can only have confirmed or failed the
            // send): keep its view, add the wamid if it lacked one.
            for _ in 0..SAVE_ATTEMPTS {
                r = self.reload(&r).await?;
                if let (Some(w), None) = (&history, &r.wamid) {
                    r.wamid = Some(w.clone());
                } else {
                    break;
                }
                if self.store.save_send(&mut r).await? {
                    break;
                }
            }
            if !matches!(decided, SendState::Accepted { .. }) && r.is_settled() {
                result = JobOutcome::Done;
            }
        }
        if let Some(wamid) = history {
            self.record_history(&r, &wamid, now).await?;
        }
        if let Some(status) = template_status {
            self.mark_template(&r, status, now).await?;
        }
        Ok(result)
    }

    /// Adds the send to the customer's conversation history (once, by wamid).
    async fn record_history(
        &self,
        r: &SendRecord,
        wamid: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let Some(m) = history_record(r, wamid, now_ms, self.config.retention_secs) else {
            return Ok(());
        };
        self.store.record_message(&m).await.map(|_| ())
    }

    async fn dead_letter(
        &self,
        mut r: SendRecord,
        reason: String,
    ) -> Result<JobOutcome, StoreError> {
        r.state = SendState::DeadLettered;
        if r.error.is_none() {
            r.error = Some(SendFailure::new(0, reason.clone()));
        }
        if !self.save_or_reload(&mut r).await? && r.is_settled() {
            return Ok(JobOutcome::Done);
        }
        Ok(JobOutcome::DeadLetter { reason })
    }
}

/// The history item of an accepted send (`None` for a group send or a read receipt).
pub fn history_record(
    r: &SendRecord,
    wamid: &str,
    now_ms: i64,
    retention_secs: i64,
) -> Option<MessageRecord> {
    let (Some(customer), Some(who)) = (&r.customer, &r.who) else {
        return None;
    };
    if r.kind == SendKind::ReadReceipt {
        return None;
    }
    let now = now_ms.div_euclid(1000);
    Some(MessageRecord {
        id: r.id.as_str().to_owned(),
        wamid: wamid.to_owned(),
        phone_number_id: r.phone_number_id.clone(),
        customer: customer.clone(),
        who: who.clone(),
        direction: Direction::Outbound,
        message_type: r.message_type.clone(),
        timestamp: now,
        raw: r.body.to_string(),
        expires_at: now.saturating_add(retention_secs),
    })
}

/// Holds `r` until the messaging limit has room (when [`charge_one`] said, else in an hour:
/// capacity only comes back as an hour leaves the rolling window); returns the delay (ms).
fn wait_for_limit(r: &mut SendRecord, full: LimitFull, now_ms: i64) -> i64 {
    let now = now_ms.div_euclid(1000);
    let retry_at = full.retry_at.unwrap_or(now + BUCKET_SECS).max(now + 1);
    let refusal = policy::Refusal::LimitReached {
        limit: full.limit,
        retry_at: Some(retry_at),
    };
    r.state = SendState::Pending {
        not_before_ms: retry_at.saturating_mul(1000),
    };
    r.error = Some(SendFailure::new(
        refusal.code(),
        format!(
            "fallback template waiting: the messaging limit ({} unique customers a day) is reached until {}",
            full.limit,
            crate::clock::rfc3339(retry_at)
        ),
    ));
    retry_at.saturating_mul(1000) - now_ms
}

/// What Meta's table says a code means.
fn meaning_of(code: i64) -> &'static str {
    code_rule(code).map_or("not in Meta's table", |r| r.meaning)
}

fn defer(delay_ms: i64) -> JobOutcome {
    JobOutcome::Defer {
        delay_ms: delay_ms.max(0),
    }
}

/// The failure to record for an outcome (never the message body).
fn failure_of(outcome: &GraphOutcome) -> SendFailure {
    match outcome {
        GraphOutcome::Accepted { .. } => SendFailure::new(0, "accepted"),
        GraphOutcome::Rejected {
            http_status,
            code,
            message,
            ..
        } => SendFailure::new(*code, format!("{message} (HTTP {http_status})")),
        GraphOutcome::Transport(t) => {
            SendFailure::new(0, format!("no answer from the Graph API: {t:?}"))
        }
    }
}

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;
