//! `POST /v1/broadcasts`: validate the request, write the ledger of inline recipients, store
//! the job and queue its first planner step.

use serde::Deserialize;
use serde_json::Value;

use crate::customer::CustomerRef;
use crate::outbound::MessagesRequest;
use crate::ports::{QueueError, Recorded, StoreError};
use crate::templates::{TemplateDef, TemplateRefusal, TemplateStore, check, status_refusal};

use super::limit::portfolio_of;
use super::{
    Broadcast, BroadcastId, BroadcastState, BroadcastStore, Counts, LedgerEntry, PauseReason,
    RecipientList, RecipientRow, Release, StepQueue, TemplateRef, template_body,
};

/// The most inline recipients one request may carry (the body is capped at 1 MB anyway).
pub const INLINE_MAX: usize = 10_000;

/// How many ledger entries are written per store call.
pub const WRITE_CHUNK: usize = 500;

/// Why a broadcast was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The request is malformed; the message names what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The registry refuses the template (not approved, paused, disabled, or unknown to an
    /// account that was synced), or inline recipients' parameters or buttons do not fit it:
    /// Meta's code for it, and what is wrong, naming the rows.
    #[error("{}", .0.details)]
    Template(TemplateRefusal),
    /// The `Idempotency-Key` was used with another body in the last 24 hours.
    #[error(
        "this Idempotency-Key was used with a different request body in the last 24 hours; use a new key for a new broadcast"
    )]
    IdempotencyReused,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The step queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The broadcast was stored but the step queue refused its first step: it is paused
    /// ([`PauseReason::NotStarted`]) rather than left running with no step to move it, and
    /// `resume` (or the same request again with its `Idempotency-Key`) starts it.
    #[error("broadcast {id} was stored but not started: {source}")]
    NotStarted {
        /// The broadcast.
        id: BroadcastId,
        /// The step queue's error.
        source: QueueError,
    },
}

#[derive(Deserialize)]
struct Wire {
    phone_number_id: Option<String>,
    template: Option<WireTemplate>,
    #[serde(default)]
    recipients: Option<Vec<Value>>,
    #[serde(default)]
    recipients_csv: Option<RecipientList>,
    #[serde(default)]
    require_opt_in: bool,
    #[serde(default)]
    release: Option<WireRelease>,
}

#[derive(Deserialize)]
struct WireTemplate {
    name: Option<String>,
    language: Option<Value>,
}

#[derive(Deserialize)]
struct WireRelease {
    percent: Option<u32>,
    every_secs: Option<i64>,
    #[serde(default)]
    all_at_once: bool,
}

/// A parsed `POST /v1/broadcasts` body.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    /// The number to send from.
    pub phone_number_id: String,
    /// The template.
    pub template: TemplateRef,
    /// Inline recipients (each checked: an invalid one is kept with its problem).
    pub recipients: Vec<RecipientRow>,
    /// Or a list to import.
    pub recipients_csv: Option<RecipientList>,
    /// Whether recipients need an opt-in.
    pub require_opt_in: bool,
    /// The release schedule.
    pub release: Release,
    /// The request's `Idempotency-Key`, if it had one (set by the route, not the body).
    pub idempotency: Option<Idempotent>,
}

/// An `Idempotency-Key` on `POST /v1/broadcasts`: the same key with the same body within
/// 24 hours is the same broadcast (its id again, nothing written twice), so a client that
/// lost the answer can retry without sending the list twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotent {
    /// The key's hash, scoped to the API key and the number
    /// ([`crate::outbound::idempotency_hash`]).
    pub key_hash: String,
    /// The hash of the request body.
    pub body_hash: String,
}

impl Idempotent {
    /// The key `key` sent with `body` by the API key whose hash is `api_key_hash`, for a
    /// broadcast from `phone_number_id`.
    pub fn of(api_key_hash: &str, phone_number_id: &str, key: &str, body: &[u8]) -> Self {
        Self {
            key_hash: crate::outbound::idempotency_hash(api_key_hash, phone_number_id, key),
            body_hash: crate::outbound::accept::sha256_hex(body),
        }
    }
}

fn invalid(s: impl Into<String>) -> CreateError {
    CreateError::Invalid(s.into())
}

/// Parses and checks a request body. A recipient whose row does not make a valid Cloud API
/// template message (bad phone, malformed components) is kept with its `problem`, to be
/// reported as `skipped_invalid`; a malformed template, number or release is refused.
pub fn parse(body: &[u8]) -> Result<CreateRequest, CreateError> {
    let w: Wire = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("body is not a valid broadcast request: {e}")))?;
    let phone_number_id = w
        .phone_number_id
        .filter(|p| !p.is_empty() && p.len() <= 64 && p.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| invalid("phone_number_id is required (digits)"))?;
    let t = w.template.ok_or_else(|| invalid("template is required"))?;
    let name = t
        .name
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 512
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .ok_or_else(|| invalid("template.name is required: lowercase letters, digits and _"))?;
    // `language` as a code, or as the Cloud API's {"code": …}.
    let language = match t.language {
        Some(Value::String(s)) => Some(s),
        Some(Value::Object(o)) => o.get("code").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
    .filter(|l| {
        !l.is_empty()
            && l.len() <= 15
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
    .ok_or_else(|| invalid("template.language is required, e.g. \"es\" or \"en_US\""))?;
    let template = TemplateRef { name, language };
    let release = match w.release {
        None => Release::default(),
        Some(r) if r.all_at_once => Release::ALL_AT_ONCE,
        Some(r) => {
            let d = Release::default();
            let percent = r.percent.unwrap_or(d.percent);
            let every_secs = r.every_secs.unwrap_or(d.every_secs);
            if !(1..=100).contains(&percent) {
                return Err(invalid("release.percent must be 1..100"));
            }
            if !(1..=86_400).contains(&every_secs) {
                return Err(invalid("release.every_secs must be 1..86400"));
            }
            Release {
                percent,
                every_secs,
            }
        }
    };
    let recipients = match (w.recipients, &w.recipients_csv) {
        (Some(r), None) if r.is_empty() => return Err(invalid("recipients is empty")),
        (Some(r), None) if r.len() > INLINE_MAX => {
            return Err(invalid(format!(
                "at most {INLINE_MAX} inline recipients; use recipients_csv for more"
            )));
        }
        (Some(r), None) => r.into_iter().map(|v| row_of(&template, v)).collect(),
        (None, Some(_)) => Vec::new(),
        _ => {
            return Err(invalid(
                "give either recipients (inline) or recipients_csv {bucket, key}",
            ));
        }
    };
    if let Some(l) = &w.recipients_csv
        && (l.bucket.is_empty() || l.key.is_empty())
    {
        return Err(invalid("recipients_csv needs bucket and key"));
    }
    Ok(CreateRequest {
        phone_number_id,
        template,
        recipients,
        recipients_csv: w.recipients_csv,
        require_opt_in: w.require_opt_in,
        release,
        idempotency: None,
    })
}

/// Reads one inline recipient, keeping a problem instead of failing the request.
fn row_of(t: &TemplateRef, v: Value) -> RecipientRow {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut row = RecipientRow {
        to: s("to"),
        recipient: s("recipient"),
        components: v.get("components").cloned().unwrap_or(Value::Null),
        problem: None,
    };
    row.problem = check_row(t, &row);
    row
}

/// Why a row does not make a valid template message, if it does not.
pub fn check_row(t: &TemplateRef, row: &RecipientRow) -> Option<String> {
    recipient_of(row, &template_body(t, row)).err()
}

/// The customer a row names, if the row makes a valid Cloud API template message (phone or
/// BSUID, components shaped as Meta requires); otherwise what is wrong with it. `body` is the
/// row's message ([`template_body`]), made once by the caller, who uses it too.
pub fn recipient_of(row: &RecipientRow, body: &Value) -> Result<CustomerRef, String> {
    if let Some(p) = &row.problem {
        return Err(p.clone());
    }
    if !matches!(row.components, Value::Null | Value::Array(_)) {
        return Err("components must be an array".into());
    }
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    match MessagesRequest::parse(&bytes) {
        Ok(MessagesRequest::Send(req)) => req
            .customer()
            .cloned()
            .ok_or_else(|| "not a customer".to_owned()),
        Ok(_) => Err("not a message".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// How many misfitting rows a refusal names.
const MISFITS_NAMED: usize = 3;

/// Whether the registry lets the broadcast's template be sent, and whether every inline row
/// fits it (rows already invalid in shape are left to be skipped as invalid).
fn check_against(
    def: &TemplateDef,
    t: &TemplateRef,
    rows: &[RecipientRow],
) -> Result<(), TemplateRefusal> {
    if let Some(r) = status_refusal(def) {
        return Err(r);
    }
    let mut misfits = rows.iter().enumerate().filter_map(|(i, row)| {
        if row.problem.is_some() {
            return None;
        }
        check(&template_body(t, row)["template"], def)
            .err()
            .map(|r| (i, r))
    });
    let Some((i, first)) = misfits.next() else {
        return Ok(());
    };
    let mut named = vec![format!("recipients[{i}]: {}", first.details)];
    let mut more = 0usize;
    for (i, r) in misfits {
        if named.len() < MISFITS_NAMED {
            named.push(format!("recipients[{i}]: {}", r.details));
        } else {
            more += 1;
        }
    }
    let mut details = named.join("; ");
    if more > 0 {
        details.push_str(&format!("; and {more} more"));
    }
    Err(TemplateRefusal {
        kind: first.kind,
        details,
    })
}

/// Creates the broadcast: checks the template against the registry when it knows it (its
/// status, and every inline row's parameters and buttons; an account that was synced must
/// have it), writes the inline ledger, stores the job (running, chain 1) and queues its first step.
/// Returns its id.
pub async fn create<S, T, Q>(
    store: &S,
    templates: &T,
    steps: &Q,
    req: CreateRequest,
    now_ms: i64,
    random: [u8; 10],
    retention_secs: i64,
) -> Result<BroadcastId, CreateError>
where
    S: BroadcastStore,
    T: TemplateStore,
    Q: StepQueue,
{
    let now = now_ms.div_euclid(1000);
    let waba_id = portfolio_of(templates, &req.phone_number_id).await?;
    match templates
        .template(&waba_id, &req.template.name, &req.template.language)
        .await?
    {
        Some(def) => {
            check_against(&def, &req.template, &req.recipients).map_err(CreateError::Template)?
        }
        None if templates.synced_at(&waba_id).await?.is_some() => {
            return Err(CreateError::Template(TemplateRefusal::unknown(
                &req.template.name,
                &req.template.language,
            )));
        }
        None => {}
    }
    let mut id = BroadcastId::new(now_ms, random);
    // Whether the id is one an earlier request with the same key claimed (its job may exist
    // by now: a request racing this one made it).
    let mut claimed_before = false;
    if let Some(k) = &req.idempotency {
        let until = now + crate::outbound::IDEMPOTENCY_SECS;
        match store
            .claim_creation(&k.key_hash, &id, &k.body_hash, until, now)
            .await?
        {
            None => {}
            Some((held, hash)) if hash == k.body_hash => {
                if let Some(b) = store.get_broadcast(&held).await? {
                    // The same request again: the same broadcast. Its step is queued again,
                    // in case the first request failed there (a duplicate step is harmless);
                    // one the first request could not start is started now.
                    let not_started = BroadcastState::Paused {
                        reason: PauseReason::NotStarted,
                    };
                    if b.state == not_started {
                        resume(store, steps, &held).await?;
                    } else {
                        steps.schedule(&held, b.chain, 0).await?;
                    }
                    return Ok(held);
                }
                // Claimed by a request that stopped before the job was stored: made now,
                // under that id (the ledger's positions are the same, written again).
                id = held;
                claimed_before = true;
            }
            Some(_) => return Err(CreateError::IdempotencyReused),
        }
    }
    let expires_at = now + retention_secs;
    let total = req.recipients.len() as u64;
    let mut chunk = Vec::with_capacity(WRITE_CHUNK.min(req.recipients.len()));
    for (i, row) in req.recipients.into_iter().enumerate() {
        chunk.push(LedgerEntry::pending(&id, i as u64, row, expires_at));
        if chunk.len() == WRITE_CHUNK {
            store.put_entries(&chunk).await?;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        store.put_entries(&chunk).await?;
    }
    let imported = req.recipients_csv.is_none();
    let b = Broadcast {
        id: id.clone(),
        phone_number_id: req.phone_number_id,
        waba_id,
        template: req.template,
        require_opt_in: req.require_opt_in,
        release: req.release,
        state: BroadcastState::Running,
        source: req.recipients_csv,
        import_cursor: None,
        imported,
        total,
        released: 0,
        next_release_at: now,
        cursor: 0,
        limit_wait_until: None,
        settled: 0,
        counts: Counts::default(),
        chain: 1,
        page_claim: None,
        paced_until_ms: 0,
        created_at_ms: now_ms,
        completed_at: None,
        expires_at,
        version: 0,
    };
    if store.create_broadcast(&b).await? == Recorded::Duplicate && !claimed_before {
        return Err(StoreError::Corrupt(format!("broadcast id {id} collides")).into());
    }
    if let Err(source) = steps.schedule(&id, b.chain, 0).await {
        // Left running, the job would wait for a step that never comes. Paused, it says why
        // and `resume` starts it. If this save fails too, the job stays running without a
        // step: the error below names it either way.
        let _ = set_paused(store, &id, PauseReason::NotStarted).await;
        return Err(CreateError::NotStarted { id, source });
    }
    Ok(id)
}

/// Pauses a running broadcast (`POST /v1/broadcasts/{id}/pause`). Returns the broadcast as
/// saved; `None` if there is no such broadcast. Pausing a paused or completed one changes
/// nothing.
pub async fn pause<S: BroadcastStore>(
    store: &S,
    id: &BroadcastId,
) -> Result<Option<Broadcast>, StoreError> {
    set_paused(store, id, PauseReason::Api).await
}

/// Pauses a running broadcast for `reason` (see [`pause`]).
async fn set_paused<S: BroadcastStore>(
    store: &S,
    id: &BroadcastId,
    reason: PauseReason,
) -> Result<Option<Broadcast>, StoreError> {
    loop {
        let Some(mut b) = store.get_broadcast(id).await? else {
            return Ok(None);
        };
        if b.state != BroadcastState::Running {
            return Ok(Some(b));
        }
        b.state = BroadcastState::Paused { reason };
        b.chain += 1;
        if store.save_broadcast(&mut b).await? {
            return Ok(Some(b));
        }
    }
}

/// Resumes a paused broadcast (`POST /v1/broadcasts/{id}/resume`) with a new step chain; a
/// running one gets a fresh chain too (a kick, harmless: the old chain's steps are dropped).
/// The planner pauses it again at once if the reason still holds (template or quality).
pub async fn resume<S: BroadcastStore, Q: StepQueue>(
    store: &S,
    steps: &Q,
    id: &BroadcastId,
) -> Result<Option<Broadcast>, CreateError> {
    loop {
        let Some(mut b) = store.get_broadcast(id).await? else {
            return Ok(None);
        };
        if b.state == BroadcastState::Completed {
            return Ok(Some(b));
        }
        b.state = BroadcastState::Running;
        b.chain += 1;
        if store.save_broadcast(&mut b).await? {
            steps.schedule(&b.id, b.chain, 0).await?;
            return Ok(Some(b));
        }
    }
}
