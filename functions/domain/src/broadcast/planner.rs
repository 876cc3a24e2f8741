//! The broadcast planner's step: what `broadcast-planner` does with one step message.
//!
//! A step loads the job, drops the message if it belongs to an older chain (a pause or resume
//! started a new one), then works page by page — import a page of a CSV list, or plan a
//! page of released recipients, or settle a page of queued ones — saving the job after each
//! page over the version it read. A save that loses (someone else saved: a pause, or a
//! duplicate step of the same chain) ends the step without a next one: whoever won goes on.
//!
//! Planning a page: entries `cursor..` are read; invalid rows, opted-out customers (and,
//! with `require_opt_in`, customers without an opt-in) and customers an earlier row already
//! has a send for (its id is derived from the customer) are skipped; the others are charged
//! against the messaging limit (a customer charged in the last 24 h, or with an open
//! customer-service window, is free), cut at the first one the limit has no room for; their
//! sends are created, queued, the entries written, and only then is the cursor advanced,
//! with the counts, in the job's conditional save.
//!
//! Claims and read-ahead: before anything of a page is written, a step claims the page in a
//! save of the job (see `claim_page`), so two steps never plan one page at once. When the
//! step goes on to the next page (released, not cut by the limit, within the pace, in the
//! step's budget), it reads that page (entries, audience, the sends held for its customers)
//! while this page's sends, queue messages and entries are written, and claims it in the same
//! save that moves the cursor past this one: one save and the reads' round trips less per
//! page. Nothing is written for a page before the save that claims it, so a kill at any
//! point leaves what it left before. The one thing the early read can miss is a send of the
//! page being written, whose customers are carried to the next page in memory (`Ahead`).
//!
//! Pacing: the jobs of a number keep at most `queue_ahead_secs` of its sending queued (at
//! the deliver worker's rate for the number): each page's sends are added to the number's
//! queue time in the store (`BroadcastStore::queue_pace`, shared by every job of the
//! number), the job keeps what it was told (`paced_until_ms`), and waits before the next
//! page until the number's queue is that close to being sent. A job learns of another's
//! sends at its next page, so jobs running at once may each queue one page beyond. Without it, a list released
//! all at once would be queued in minutes and sent over far longer, and a pause (by the API,
//! a paused template, a RED quality rating) would stop nothing already queued.

use std::collections::{HashMap, HashSet};

use crate::consent::{Blocked, Purpose, may_send};
use crate::customer::CustomerRef;
use crate::model::MessagingLimit;
use crate::outbound::{SendFailure, SendId, SendKind, SendRecord, SendState};
use crate::ports::{Clock, QueueError, SendJob, StoreError};
use crate::status::DeliveryStatus;
use crate::templates::{TemplateDef, TemplateStatus, TemplateStore, check};

use super::create::recipient_of;
use super::limit::{BUCKET_SECS, UNKNOWN_ACCOUNT, WINDOW_SECS, portfolio_of, recount, tier_count};
use super::{
    Audience, Broadcast, BroadcastId, BroadcastState, BroadcastStore, LedgerEntry, LimitStore,
    OutboundBatch, Outcome, PageClaim, PauseReason, RecipientSource, send_id_for, template_body,
};

/// What the planner is tuned with.
#[derive(Debug, Clone)]
pub struct PlannerConfig {
    /// Recipients planned (or settled) per page: one batch of store calls.
    pub page: usize,
    /// Rows imported per page of a CSV list.
    pub import_page: usize,
    /// Pages one step works through before handing over to a fresh step message (bounds a
    /// Lambda invocation's time).
    pub pages_per_step: usize,
    /// Time (ms) after which a step hands over to a fresh step message at the end of the
    /// page it is on, whatever `pages_per_step` says: a slow store (moto on a laptop, a
    /// throttled table) must not run a step into the function's timeout.
    pub step_budget_ms: i64,
    /// How long after its creation a send that Meta accepted is settled as sent / delivered
    /// (a read or a failure settles it at once).
    pub settle_after_secs: i64,
    /// How soon to look again at sends not settled yet.
    pub recheck_secs: i64,
    /// How long sends are kept (unix s from creation).
    pub retention_secs: i64,
    /// The tier assumed while no webhook has told the portfolio's (Meta's default for a new
    /// portfolio is 250).
    pub default_tier: MessagingLimit,
    /// How far ahead of its number's sending rate a job queues (seconds): the queue holds
    /// at most this much of its sends at a time, so a pause (by the API, a paused template,
    /// a RED quality rating) stops its sends within about this time. 0: as fast as the
    /// planner goes (a pause then leaves whatever was queued to go).
    pub queue_ahead_secs: i64,
    /// Messages per second a number sends at (the deliver worker's `PACING_DEFAULT_MPS`).
    pub default_mps: u32,
    /// Per-number rates (phone number id → messages per second; `PACING_NUMBER_MPS`).
    pub number_mps: HashMap<String, u32>,
}

impl PlannerConfig {
    /// The rate `phone_number_id` sends at.
    pub fn mps_of(&self, phone_number_id: &str) -> u32 {
        self.number_mps
            .get(phone_number_id)
            .copied()
            .unwrap_or(self.default_mps)
            .max(1)
    }

    /// How long (ms) a job whose queued sends go until `paced_until_ms` must wait at `now_ms`
    /// before it may queue more: until they are within `queue_ahead_secs` of being sent.
    /// `None`: it may queue now.
    fn pacing_wait_ms(&self, paced_until_ms: i64, now_ms: i64) -> Option<i64> {
        if self.queue_ahead_secs <= 0 {
            return None;
        }
        let ahead = paced_until_ms - now_ms;
        (ahead > self.queue_ahead_secs * 1000).then(|| ahead - self.queue_ahead_secs * 1000)
    }
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            page: 100,
            import_page: 500,
            pages_per_step: 50,
            step_budget_ms: 20_000,
            settle_after_secs: 3600,
            recheck_secs: 60,
            retention_secs: 30 * 86_400,
            default_tier: MessagingLimit::Tier250,
            queue_ahead_secs: 30,
            default_mps: crate::pacing::DEFAULT_LIMIT,
            number_mps: HashMap::new(),
        }
    }
}

/// What the planner works with.
pub struct Deps<'a, S, L, T, R, O, C> {
    /// Broadcasts, ledgers, sends and the audience.
    pub store: &'a S,
    /// The messaging limit.
    pub limits: &'a L,
    /// The template registry.
    pub templates: &'a T,
    /// CSV lists.
    pub source: &'a R,
    /// The outbound queue.
    pub outbound: &'a O,
    /// Time.
    pub clock: &'a C,
}

/// What a step came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepResult {
    /// Run another step of the same chain after this many seconds.
    Again {
        /// Delay (0: at once).
        after_secs: i64,
        /// The chain to run.
        chain: u64,
    },
    /// No further step from this message: the job is paused or completed, the message was
    /// stale, or another step of the chain saved first and goes on.
    Idle,
}

/// Why a step failed (the message is retried by the queue).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The outbound queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Runs one step of broadcast `id` for a message of chain `chain`.
pub async fn step<S, L, T, R, O, C>(
    d: &Deps<'_, S, L, T, R, O, C>,
    cfg: &PlannerConfig,
    id: &BroadcastId,
    chain: u64,
) -> Result<StepResult, PlanError>
where
    S: BroadcastStore,
    L: LimitStore,
    T: TemplateStore,
    R: RecipientSource,
    O: OutboundBatch,
    C: Clock,
{
    let Some(mut b) = d.store.get_broadcast(id).await? else {
        return Ok(StepResult::Idle);
    };
    if b.chain != chain || b.state != BroadcastState::Running {
        return Ok(StepResult::Idle);
    }
    let mut terms = Terms {
        marketing: true,
        def: None,
        tier: cfg.default_tier,
    };
    let mut checked = false;
    let started_ms = d.clock.now_ms();
    let out_of_time = || d.clock.now_ms() - started_ms >= cfg.step_budget_ms;
    let pages = cfg.pages_per_step.max(1);
    let mut ahead: Option<Box<Ahead>> = None;
    for page in 0..pages {
        let now = d.clock.now_ms().div_euclid(1000);
        if !b.imported {
            import_page(d, cfg, &mut b).await?;
            if !d.store.save_broadcast(&mut b).await? {
                return Ok(StepResult::Idle);
            }
            if out_of_time() {
                break;
            }
            continue;
        }
        if !checked && b.cursor < b.total {
            checked = true;
            // An account learnt since the job was made (a webhook, a sync): its templates,
            // quality and limit apply from now on.
            if b.waba_id.starts_with(UNKNOWN_ACCOUNT) {
                b.waba_id = portfolio_of(d.templates, &b.phone_number_id).await?;
            }
            match sendability(d, &b).await? {
                Ok(known) => {
                    terms = Terms {
                        marketing: known
                            .as_ref()
                            .is_none_or(|t| t.category.needs_marketing_consent()),
                        def: known,
                        tier: d.limits.tier(&b.waba_id).await?.unwrap_or(cfg.default_tier),
                    };
                }
                Err(reason) => {
                    b.state = BroadcastState::Paused { reason };
                    b.chain += 1;
                    d.store.save_broadcast(&mut b).await?;
                    return Ok(StepResult::Idle);
                }
            }
        }
        let mut changed = false;
        if b.released < b.total && now >= b.next_release_at {
            b.released = (b.released + b.release.batch(b.total)).min(b.total);
            b.next_release_at = now + b.release.every_secs;
            changed = true;
        }
        if b.limit_wait_until.is_some_and(|t| now >= t) {
            b.limit_wait_until = None;
            changed = true;
        }
        let paced = cfg.pacing_wait_ms(b.paced_until_ms, d.clock.now_ms());
        // A page read and claimed ahead is planned whatever: the save holds its claim.
        let plan = ahead.is_some()
            || (b.cursor < b.released && b.limit_wait_until.is_none() && paced.is_none());
        let progressed = if plan {
            let go_on = page + 1 < pages && !out_of_time();
            match plan_page(d, cfg, &mut b, now, &terms, ahead.take(), go_on).await? {
                Page::Planned(next) => {
                    ahead = next;
                    true
                }
                Page::Busy { after_secs } => {
                    return Ok(StepResult::Again {
                        after_secs,
                        chain: b.chain,
                    });
                }
                Page::Lost => return Ok(StepResult::Idle),
            }
        } else if b.settled < b.cursor {
            settle_page(d.store, cfg, &mut b, now).await?
        } else {
            false
        };
        if !progressed && b.cursor >= b.total && b.settled >= b.total {
            b.state = BroadcastState::Completed;
            b.completed_at = Some(now);
            d.store.save_broadcast(&mut b).await?;
            return Ok(StepResult::Idle);
        }
        if (progressed || changed) && !d.store.save_broadcast(&mut b).await? {
            return Ok(StepResult::Idle);
        }
        if progressed {
            if out_of_time() && ahead.is_none() {
                break;
            }
            continue;
        }
        // Nothing to do now: come back at the next event.
        let mut next = i64::MAX;
        if b.released < b.total {
            next = next.min(b.next_release_at);
        }
        if let Some(t) = b.limit_wait_until {
            next = next.min(t);
        }
        if let Some(wait_ms) = paced.filter(|_| b.cursor < b.released) {
            next = next.min(now + (wait_ms + 999).div_euclid(1000));
        }
        if b.settled < b.cursor {
            next = next.min(now + cfg.recheck_secs);
        }
        if next == i64::MAX {
            next = now + cfg.recheck_secs;
        }
        return Ok(StepResult::Again {
            after_secs: (next - now).max(1),
            chain: b.chain,
        });
    }
    Ok(StepResult::Again {
        after_secs: 0,
        chain: b.chain,
    })
}

/// Whether the template may be sent (with the registry's definition, when it has one), or
/// why to pause.
async fn sendability<S, L, T, R, O, C>(
    d: &Deps<'_, S, L, T, R, O, C>,
    b: &Broadcast,
) -> Result<Result<Option<TemplateDef>, PauseReason>, StoreError>
where
    S: BroadcastStore,
    T: TemplateStore,
{
    let def = d
        .templates
        .template(&b.waba_id, &b.template.name, &b.template.language)
        .await?;
    if let Some(def) = &def {
        match def.status {
            TemplateStatus::Approved => {}
            TemplateStatus::Paused => return Ok(Err(PauseReason::TemplatePaused)),
            TemplateStatus::Disabled => return Ok(Err(PauseReason::TemplateDisabled)),
            _ => return Ok(Err(PauseReason::TemplateNotApproved)),
        }
    }
    if d.store.quality_red(&b.waba_id, &b.phone_number_id).await? {
        return Ok(Err(PauseReason::QualityRed));
    }
    // Unknown templates (no sync yet) are held to marketing rules (the safe side): see step.
    Ok(Ok(def))
}

async fn import_page<S, L, T, R, O, C>(
    d: &Deps<'_, S, L, T, R, O, C>,
    cfg: &PlannerConfig,
    b: &mut Broadcast,
) -> Result<(), PlanError>
where
    S: BroadcastStore,
    R: RecipientSource,
{
    let Some(list) = b.source.clone() else {
        b.imported = true;
        return Ok(());
    };
    let page = d
        .source
        .page(&list, b.import_cursor.as_deref(), cfg.import_page)
        .await?;
    let entries: Vec<LedgerEntry> = page
        .rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| LedgerEntry::pending(&b.id, b.total + i as u64, row, b.expires_at))
        .collect();
    // Written before the job's cursor moves: a re-run reads the same page again and writes
    // the same entries at the same positions.
    d.store.put_entries(&entries).await?;
    b.total += entries.len() as u64;
    b.import_cursor = page.next_cursor;
    b.imported = b.import_cursor.is_none();
    Ok(())
}

/// How long a page claim keeps other steps off the page: longer than the planner function
/// may run (its timeout is 60 s), so an older claim belongs to a step that is gone.
pub const PAGE_CLAIM_MS: i64 = 120_000;

/// What a step reads once, before it plans its first page: the template's terms and the
/// portfolio's messaging-limit tier (a change to either applies from the next step).
struct Terms {
    /// Whether recipients need marketing consent (the template's category; an unknown
    /// template is held to marketing rules).
    marketing: bool,
    /// The template as the registry knows it, if it does.
    def: Option<TemplateDef>,
    /// The portfolio's tier (the default until a webhook tells it).
    tier: MessagingLimit,
}

/// What became of a page.
enum Page {
    /// Planned: the cursor moved; with the next page when it was read and claimed ahead.
    Planned(Option<Box<Ahead>>),
    /// Another step holds the page's claim: try again then.
    Busy { after_secs: i64 },
    /// Another step saved the job meanwhile: this one stops.
    Lost,
}

/// Claims the page `b.cursor..b.cursor + n` for this step: saves the job with the claim,
/// conditionally on the version read, before anything of the page is written, so two steps
/// of one chain (a duplicated step message) never plan a page at the same time. Returns
/// whether the page was never claimed before (then none of its sends can exist).
async fn claim_page<S: BroadcastStore>(
    store: &S,
    b: &mut Broadcast,
    n: usize,
    now_ms: i64,
) -> Result<Result<bool, Page>, StoreError> {
    let first_attempt = match take_claim(b, n, now_ms) {
        Ok(first) => first,
        Err(after_secs) => return Ok(Err(Page::Busy { after_secs })),
    };
    if !store.save_broadcast(b).await? {
        return Ok(Err(Page::Lost));
    }
    Ok(Ok(first_attempt))
}

/// Sets the claim on the page `b.cursor..b.cursor + n` in `b` (saving it is the caller's):
/// whether the page was never claimed before, or, while another step's claim on it holds,
/// `Err` with the seconds until it lapses.
fn take_claim(b: &mut Broadcast, n: usize, now_ms: i64) -> Result<bool, i64> {
    let first_attempt = match b.page_claim {
        None => true,
        Some(c) if c.cursor == b.cursor && now_ms - c.at_ms < PAGE_CLAIM_MS => {
            let after_ms = PAGE_CLAIM_MS - (now_ms - c.at_ms);
            return Err((after_ms + 999).div_euclid(1000).max(1));
        }
        Some(c) => b.cursor >= c.end,
    };
    let end = (b.cursor + n as u64).max(b.page_claim.map_or(0, |c| c.end));
    b.page_claim = Some(PageClaim {
        cursor: b.cursor,
        end,
        at_ms: now_ms,
    });
    Ok(first_attempt)
}

/// What a row came to on its page: an outcome, with the reason for a skip.
type Decision = Option<(Outcome, Option<SendFailure>)>;

/// What planning a page reads: its entries and, for its recipients, their audience and the
/// sends a broadcast holds for them. No write of an earlier page changes any of it, except
/// which sends exist (see [`Ahead::planned`]), so it may be read while the page before is
/// being written.
struct PageRead {
    /// The page's first position.
    cursor: u64,
    entries: Vec<LedgerEntry>,
    /// Each row's message, made once: checked here, and the body of its send.
    bodies: Vec<serde_json::Value>,
    /// Rows decided by the read alone (invalid, or not fitting the template).
    decided: Vec<Decision>,
    /// The other rows: (entry index, who they name).
    refs: Vec<(usize, CustomerRef)>,
    /// The audience of each of `refs`, in the same order.
    audience: Vec<Audience>,
    /// Customer (storage key) → the position of the row whose send this broadcast holds for
    /// them (`None`: no send yet).
    owners: HashMap<String, Option<u64>>,
}

/// The next page, read while the one before it was written and claimed in the save that
/// moved the cursor past that one: the step plans it next.
struct Ahead {
    read: PageRead,
    /// The claim the save recorded.
    claim: PageClaim,
    /// Whether the page was never claimed before.
    first_attempt: bool,
    /// The customers the page before planned sends for (storage key → position): their sends
    /// may have been written after `read` looked for them.
    planned: HashMap<String, u64>,
}

/// Reads what planning the `n` entries from `cursor` needs (see [`PageRead`]).
async fn read_page<S: BroadcastStore>(
    store: &S,
    b: &Broadcast,
    cursor: u64,
    n: usize,
    terms: &Terms,
) -> Result<PageRead, PlanError> {
    let entries = store.entries(&b.id, cursor, n).await?;
    for (i, e) in entries.iter().enumerate() {
        if e.index != cursor + i as u64 {
            return Err(StoreError::Corrupt(format!(
                "ledger of {} has no entry {}",
                b.id,
                cursor + i as u64
            ))
            .into());
        }
    }
    if entries.is_empty() {
        return Err(StoreError::Corrupt(format!("ledger of {} ends early", b.id)).into());
    }
    // Valid rows that fit the template as the registry knows it, and who they name.
    let mut decided: Vec<Decision> = vec![None; entries.len()];
    let mut refs: Vec<(usize, CustomerRef)> = Vec::new();
    let bodies: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| template_body(&b.template, &e.row))
        .collect();
    for (i, e) in entries.iter().enumerate() {
        let misfit = terms.def.as_ref().and_then(|def| {
            check(&bodies[i]["template"], def)
                .err()
                .map(|r| SendFailure::new(r.kind.code(), r.details))
        });
        match (recipient_of(&e.row, &bodies[i]), misfit) {
            (Ok(r), None) => refs.push((i, r)),
            (Ok(_), Some(misfit)) => decided[i] = Some((Outcome::SkippedInvalid, Some(misfit))),
            (Err(problem), _) => {
                decided[i] = Some((Outcome::SkippedInvalid, Some(SendFailure::new(0, problem))))
            }
        }
    }
    let who: Vec<CustomerRef> = refs.iter().map(|(_, r)| r.clone()).collect();
    let audience = store
        .audience(&b.phone_number_id, &who, terms.marketing)
        .await?;
    // The sends held for these customers (their ids are derived from the customer).
    let mut keys: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for (k, (_, r)) in refs.iter().enumerate() {
        let key = audience
            .get(k)
            .and_then(|a| a.key.clone())
            .unwrap_or_else(|| r.direct_key())
            .as_storage();
        if seen.insert(key.clone()) {
            keys.push(key);
        }
    }
    let ids: Vec<SendId> = keys
        .iter()
        .map(|k| send_id_for(&b.id, b.created_at_ms, k))
        .collect();
    let owners = keys
        .into_iter()
        .zip(store.send_owners(&ids).await?)
        .collect();
    Ok(PageRead {
        cursor,
        entries,
        bodies,
        decided,
        refs,
        audience,
        owners,
    })
}

/// Plans the page at `b.cursor`: from `ahead` when it was read and claimed in advance,
/// otherwise claimed and read now. `go_on`: the step plans the next page after this one if
/// it may, so its reads run while this page is written, and its claim goes into the save
/// that moves the cursor (the `Ahead` returned).
#[allow(clippy::too_many_arguments)]
async fn plan_page<S, L, T, R, O, C>(
    d: &Deps<'_, S, L, T, R, O, C>,
    cfg: &PlannerConfig,
    b: &mut Broadcast,
    now: i64,
    terms: &Terms,
    ahead: Option<Box<Ahead>>,
    go_on: bool,
) -> Result<Page, PlanError>
where
    S: BroadcastStore,
    L: LimitStore,
    O: OutboundBatch,
    C: Clock,
{
    let (read, first_attempt, before) = match ahead {
        Some(a) if a.read.cursor == b.cursor && b.page_claim == Some(a.claim) => {
            let a = *a;
            (a.read, a.first_attempt, a.planned)
        }
        _ => {
            let n = usize::try_from(b.released - b.cursor)
                .unwrap_or(usize::MAX)
                .min(cfg.page);
            let first_attempt = match claim_page(d.store, b, n, d.clock.now_ms()).await? {
                Ok(first) => first,
                Err(page) => return Ok(page),
            };
            let read = read_page(d.store, b, b.cursor, n, terms).await?;
            (read, first_attempt, HashMap::new())
        }
    };
    let PageRead {
        mut entries,
        mut bodies,
        mut decided,
        refs,
        audience,
        owners,
        ..
    } = read;
    // 1. Consent.
    let purpose = if terms.marketing {
        Purpose::Marketing
    } else {
        Purpose::Other
    };
    let mut cand = Vec::new(); // (entry idx, ref idx, key, window open)
    for (k, (i, r)) in refs.iter().enumerate() {
        let i = *i;
        let a = audience.get(k).cloned().unwrap_or_default();
        let key = a.key.clone().unwrap_or_else(|| r.direct_key());
        match may_send(&a.consents, purpose, b.require_opt_in) {
            Ok(()) => {}
            Err(Blocked::NoOptIn) => {
                decided[i] = Some((Outcome::SkippedNotOptedIn, None));
                continue;
            }
            Err(Blocked::OptedOut(_)) => {
                decided[i] = Some((Outcome::SkippedOptedOut, None));
                continue;
            }
        }
        let open = a.window.is_some_and(|w| w.allows_session_message(now, 0));
        cand.push((i, k, key, open));
    }
    // 2. Duplicates: a customer is sent to once, by the first of their rows that gets here.
    // Earlier on this page: kept in `first`. On an earlier page: that row's send exists, under
    // the id derived from the customer, and names its row (or, for the page just before,
    // whose sends may have been written after they were looked for: `before`). A customer
    // skipped for consent is decided again at each of their rows (the same way, unless their
    // consent changed).
    let mut first: HashSet<String> = HashSet::new();
    let mut sendable = Vec::new(); // (entry idx, ref idx, key, window open, send id)
    for (i, k, key, open) in cand {
        let storage = key.as_storage();
        if !first.insert(storage.clone()) {
            decided[i] = Some((Outcome::SkippedDuplicate, None));
            continue;
        }
        let owner = owners
            .get(&storage)
            .copied()
            .flatten()
            .or_else(|| before.get(&storage).copied());
        match owner {
            Some(row) if row != entries[i].index => {
                decided[i] = Some((Outcome::SkippedDuplicate, None));
            }
            _ => {
                let id = send_id_for(&b.id, b.created_at_ms, &storage);
                sendable.push((i, k, key, open, id));
            }
        }
    }
    // 3. The messaging limit: cut the page at the first customer it has no room for.
    let mut cut = entries.len();
    let portfolio = b.waba_id.clone();
    if let Some(limit) = tier_count(terms.tier) {
        let chargeable: Vec<String> = sendable
            .iter()
            .filter(|s| !s.3)
            .map(|s| s.2.as_storage())
            .collect();
        let already = if chargeable.is_empty() {
            Default::default()
        } else {
            d.limits
                .charged_since(&portfolio, &chargeable, now - WINDOW_SECS)
                .await?
        };
        let need: Vec<(usize, String)> = sendable
            .iter()
            .filter(|s| !s.3)
            .map(|s| (s.0, s.2.as_storage()))
            .filter(|(_, k)| !already.contains_key(k))
            .collect();
        if !need.is_empty() {
            let (granted, retry) = d
                .limits
                .reserve(&portfolio, need.len() as u64, limit, now)
                .await?;
            let granted = usize::try_from(granted)
                .unwrap_or(usize::MAX)
                .min(need.len());
            if granted < need.len() {
                cut = need[granted].0;
                b.limit_wait_until = Some(retry.unwrap_or(now + BUCKET_SECS).max(now + 1));
            }
            let charged: Vec<String> = need[..granted].iter().map(|(_, k)| k.clone()).collect();
            if !charged.is_empty() {
                d.limits.record_charges(&portfolio, &charged, now).await?;
            }
        }
        // Customers charged earlier in the window and sent to again on this page stay
        // counted for 24 h from now.
        let again: HashMap<String, i64> = sendable
            .iter()
            .filter(|s| !s.3 && s.0 < cut)
            .filter_map(|s| {
                let k = s.2.as_storage();
                already.get(&k).map(|at| (k, *at))
            })
            .collect();
        recount(d.limits, &portfolio, &again, now).await?;
    }
    // 4. Sends for the sendable entries before the cut, then the queue, then the ledger.
    let now_ms = d.clock.now_ms();
    let who: Vec<&CustomerRef> = refs.iter().map(|(_, r)| r).collect();
    let mut sends = Vec::new();
    let mut planned = HashMap::new();
    for (i, k, key, _, id) in sendable.into_iter().filter(|s| s.0 < cut) {
        planned.insert(key.as_storage(), entries[i].index);
        sends.push(SendRecord {
            customer: Some(key),
            who: Some(who[k].clone()),
            message_type: "template".into(),
            body: std::mem::take(&mut bodies[i]),
            broadcast_id: Some(b.id.as_str().to_owned()),
            broadcast_index: Some(entries[i].index),
            ..SendRecord::pending(
                id.clone(),
                &b.phone_number_id,
                SendKind::Template,
                now_ms,
                now + cfg.retention_secs,
            )
        });
        decided[i] = Some((Outcome::Queued, None));
        entries[i].send_id = Some(id);
    }
    entries.truncate(cut);
    for (e, dec) in entries.iter_mut().zip(decided) {
        if let Some((o, err)) = dec {
            e.outcome = o;
            e.error = err;
        }
    }
    // The number sends them at its rate, after what was queued before: by this job as far
    // as it knows (the estimate the read-ahead goes by), by every job of the number as the
    // store counts it once they are queued.
    let add_ms = if sends.is_empty() {
        0
    } else {
        let rate = i64::from(cfg.mps_of(&b.phone_number_id));
        let n = i64::try_from(sends.len()).unwrap_or(i64::MAX);
        n.saturating_mul(1000) / rate
    };
    let paced_until_ms = b.paced_until_ms.max(now_ms) + add_ms;
    // The page after this one, when the step goes on to plan it at once: not cut by the
    // limit, released, and within the pace (checked again below against the number's).
    let cursor = b.cursor + entries.len() as u64;
    let next = (go_on
        && b.limit_wait_until.is_none()
        && cursor < b.released
        && cfg.pacing_wait_ms(paced_until_ms, now_ms).is_none())
    .then(|| {
        usize::try_from(b.released - cursor)
            .unwrap_or(usize::MAX)
            .min(cfg.page)
    });
    let writes = async {
        let mut paced = None;
        if !sends.is_empty() {
            d.store.create_sends(&sends, first_attempt).await?;
            let jobs: Vec<SendJob> = sends.iter().map(SendJob::for_send).collect();
            d.outbound.enqueue_batch(&jobs).await?;
            if cfg.queue_ahead_secs > 0 {
                // Advice, not a record: a store that fails here leaves the job's own estimate.
                paced = d
                    .store
                    .queue_pace(&b.phone_number_id, now_ms, add_ms)
                    .await
                    .ok();
            }
        }
        if !entries.is_empty() {
            d.store.put_entries(&entries).await?;
        }
        Ok::<Option<i64>, PlanError>(paced)
    };
    let read_next = async {
        match next {
            Some(n) => read_page(d.store, b, cursor, n, terms).await.ok(),
            None => None,
        }
    };
    let (written, next_read) = futures::future::join(writes, read_next).await;
    let paced_until_ms = written?.unwrap_or(paced_until_ms);
    b.paced_until_ms = paced_until_ms;
    // Another job of the number may have queued meanwhile: then the next page waits.
    let next_read = next_read.filter(|_| cfg.pacing_wait_ms(paced_until_ms, now_ms).is_none());
    for e in &entries {
        b.counts.add(e.outcome, e.error.as_ref());
    }
    b.cursor = cursor;
    let ahead = next_read.and_then(|read| {
        let first_attempt = take_claim(b, read.entries.len(), now_ms).ok()?;
        Some(Box::new(Ahead {
            claim: b.page_claim?,
            read,
            first_attempt,
            planned,
        }))
    });
    Ok(Page::Planned(ahead))
}

/// Meta's code for a customer who opted out of (marketing) messages, which the deliver worker
/// also gives a send it refuses at dequeue for an opt-out.
const OPTED_OUT: i64 = 131_050;

/// The final outcome of a send, if it has one at `now`.
fn settled_outcome(
    s: Option<&SendRecord>,
    now: i64,
    cfg: &PlannerConfig,
) -> Option<(Outcome, Option<SendFailure>)> {
    let Some(s) = s else {
        return Some((
            Outcome::Failed,
            Some(SendFailure::new(0, "the send is gone (expired)")),
        ));
    };
    match (&s.state, s.statuses.current()) {
        // Opted out after it was queued: refused at dequeue, or by Meta (the customer
        // stopped marketing messages): skipped as opted out, like one found at planning.
        (SendState::Failed, _) if s.error.as_ref().is_some_and(|e| e.code == OPTED_OUT) => {
            return Some((Outcome::SkippedOptedOut, s.error.clone()));
        }
        (SendState::Failed | SendState::DeadLettered, _) | (_, Some(DeliveryStatus::Failed)) => {
            return Some((Outcome::Failed, s.error.clone()));
        }
        (_, Some(DeliveryStatus::Read | DeliveryStatus::Played)) => {
            return Some((Outcome::Read, None));
        }
        _ => {}
    }
    if now < s.created_at_ms.div_euclid(1000) + cfg.settle_after_secs {
        return None;
    }
    match (&s.state, s.statuses.current()) {
        (_, Some(DeliveryStatus::Delivered)) => Some((Outcome::Delivered, None)),
        (_, Some(DeliveryStatus::Sent)) | (SendState::Accepted { .. }, _) => {
            Some((Outcome::Sent, None))
        }
        (SendState::Unconfirmed { .. }, _) => Some((
            Outcome::Failed,
            Some(SendFailure::new(
                0,
                "unconfirmed: no status report from Meta",
            )),
        )),
        _ => None,
    }
}

/// Settles the longest prefix of queued entries from `b.settled` whose sends have a final
/// outcome; returns whether any was settled.
async fn settle_page<S: BroadcastStore>(
    store: &S,
    cfg: &PlannerConfig,
    b: &mut Broadcast,
    now: i64,
) -> Result<bool, PlanError> {
    let n = usize::try_from(b.cursor - b.settled)
        .unwrap_or(usize::MAX)
        .min(cfg.page);
    let mut entries = store.entries(&b.id, b.settled, n).await?;
    let ids: Vec<_> = entries.iter().filter_map(|e| e.send_id.clone()).collect();
    let sends = store.get_sends(&ids).await?;
    let by_id: HashMap<_, _> = ids.iter().zip(sends.iter()).collect();
    let mut done = 0;
    for e in entries.iter_mut() {
        // Every entry that was queued is settled from its send, whatever the ledger says: a
        // step killed after writing the entries but before saving the cursor re-does the
        // page, and the counts move only with the cursor.
        if e.send_id.is_some() {
            let s = e
                .send_id
                .as_ref()
                .and_then(|id| by_id.get(id))
                .and_then(|s| s.as_ref());
            let Some((o, err)) = settled_outcome(s, now, cfg) else {
                break;
            };
            e.outcome = o;
            e.error = err;
            b.counts.queued = b.counts.queued.saturating_sub(1);
            b.counts.add(o, e.error.as_ref());
        }
        done += 1;
    }
    if done == 0 {
        return Ok(false);
    }
    entries.truncate(done);
    let changed: Vec<LedgerEntry> = entries
        .into_iter()
        .filter(|e| e.send_id.is_some())
        .collect();
    if !changed.is_empty() {
        store.put_entries(&changed).await?;
    }
    b.settled += done as u64;
    Ok(true)
}
