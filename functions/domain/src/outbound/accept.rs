//! send-api's use case: a Cloud API body in, a send recorded and queued (or refused), the
//! Cloud API answer out.

use std::borrow::Cow;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::policy::{self, Refusal};
use super::send::{
    IDEMPOTENCY_SECS, Idempotency, SendFailure, SendId, SendKind, SendRecord, SendState,
    StoredAnswer, idempotency_hash,
};
use super::{MessagesRequest, SendError, SendRequest, cloud_api_error_body};
use crate::broadcast::LimitStore;
use crate::broadcast::limit::{charge_one, portfolio_of};
use crate::model::MessagingLimit;
use crate::ports::{
    ConversationReader, Created, OutboundQueue, QueueError, SendJob, SendStore, StoreError,
};
use crate::templates::{TemplateStore, Verdict, check_send};

/// The request field (Ventana's, not Meta's) that names a template to send instead of a
/// session message when the customer's window is closed. It is removed before the body is
/// validated and never reaches Meta.
pub const FALLBACK_FIELD: &str = "fallback_template";

/// How send-api decides.
#[derive(Debug, Clone, Copy)]
pub struct AcceptConfig {
    /// The window is treated as closing this much early (seconds), so a message queued at
    /// its edge is not refused by Meta. The deliver-worker checks again at dequeue.
    pub window_margin_secs: i64,
    /// How long send records are kept (seconds).
    pub retention_secs: i64,
    /// The messaging-limit tier assumed for a portfolio no webhook has told the tier of
    /// (Meta's default for a new portfolio is 250), as the broadcast planner assumes it.
    pub default_tier: MessagingLimit,
}

impl Default for AcceptConfig {
    fn default() -> Self {
        Self {
            window_margin_secs: 60,
            retention_secs: 90 * 86_400,
            default_tier: MessagingLimit::Tier250,
        }
    }
}

/// One request to the send route, as the handler read it.
#[derive(Debug, Clone, Copy)]
pub struct SendCall<'a> {
    /// The number in the path.
    pub phone_number_id: &'a str,
    /// The raw body.
    pub body: &'a [u8],
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<&'a str>,
    /// The hash of the API key that made the call (scopes the idempotency key).
    pub api_key_hash: &'a str,
    /// Now, unix milliseconds.
    pub now_ms: i64,
    /// 80 random bits for the new send's id.
    pub random: [u8; 10],
    /// A trace id for error bodies (`fbtrace_id`).
    pub trace_id: &'a str,
}

/// The answer to give the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub http_status: u16,
    /// JSON body.
    pub body: Value,
    /// The send it is about, when one was recorded.
    pub send_id: Option<SendId>,
    /// Whether it is the stored answer of an earlier request with the same `Idempotency-Key`.
    pub replayed: bool,
    /// For a 429: seconds until trying again can succeed (the `Retry-After` header).
    pub retry_after_secs: Option<i64>,
}

/// Why send-api could not decide: nothing is known to be queued, the client should retry.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The store failed.
    #[error("store failed")]
    Store(#[from] StoreError),
    /// The queue failed (the send was recorded as failed, best effort).
    #[error("queue failed")]
    Queue(#[from] QueueError),
}

fn refused(err: &SendError, trace: &str) -> Answer {
    Answer {
        http_status: 400,
        body: err.to_cloud_api_error(trace),
        send_id: None,
        replayed: false,
        retry_after_secs: None,
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Takes the fallback template out of the body, if the client gave one. A body that does not
/// even mention the field is passed on as it is, parsed once (by the caller), not twice.
fn split_fallback(body: &[u8]) -> Result<(Cow<'_, [u8]>, Option<Value>), SendError> {
    let needle = FALLBACK_FIELD.as_bytes();
    if !body.windows(needle.len()).any(|w| w == needle) {
        return Ok((Cow::Borrowed(body), None));
    }
    let mut value: Value = serde_json::from_slice(body).map_err(SendError::NotJson)?;
    let Value::Object(obj) = &mut value else {
        return Err(SendError::NotAnObject);
    };
    match obj.remove(FALLBACK_FIELD) {
        None => Ok((Cow::Borrowed(body), None)),
        Some(Value::Object(t)) => {
            let bytes = serde_json::to_vec(&value).map_err(SendError::NotJson)?;
            Ok((Cow::Owned(bytes), Some(Value::Object(t))))
        }
        Some(_) => Err(SendError::Invalid {
            field: FALLBACK_FIELD.into(),
            reason: "must be a template object (name, language, components)".into(),
        }),
    }
}

/// A registry refusal of the fallback template says so.
fn fallback_error(e: SendError) -> SendError {
    match e {
        SendError::Template(mut r) => {
            r.details = format!("{FALLBACK_FIELD}: {}", r.details);
            SendError::Template(r)
        }
        other => other,
    }
}

/// The template send that replaces `req` when its window is closed: same recipient, the
/// fallback as its `template`. Validated like any template send.
fn fallback_request(req: &SendRequest, template: &Value) -> Result<SendRequest, SendError> {
    let original = req.graph_body("");
    let mut body = Map::new();
    for k in ["messaging_product", "recipient_type", "to", "recipient"] {
        if let Some(v) = original.get(k) {
            body.insert(k.into(), v.clone());
        }
    }
    body.insert("type".into(), json!("template"));
    body.insert("template".into(), template.clone());
    let bytes = serde_json::to_vec(&body).map_err(SendError::NotJson)?;
    SendRequest::parse(&bytes).map_err(|e| match e {
        SendError::Missing { field } => SendError::Missing {
            field: format!("{FALLBACK_FIELD}.{}", field.trim_start_matches("template.")),
        },
        SendError::Invalid { field, reason } => SendError::Invalid {
            field: format!("{FALLBACK_FIELD}.{}", field.trim_start_matches("template.")),
            reason,
        },
        other => other,
    })
}

/// Checks a template against the number's template registry: whether a marketing opt-out
/// applies to it (its category needs marketing consent, or it is not known), or why it is
/// refused. A number whose account's templates were never synced passes unchecked.
async fn registry_check<S: TemplateStore>(
    store: &S,
    phone_number_id: &str,
    template: &Value,
) -> Result<Result<bool, SendError>, StoreError> {
    Ok(match check_send(store, phone_number_id, template).await? {
        Verdict::Fits(def) => Ok(def.category.needs_marketing_consent()),
        Verdict::Unchecked => Ok(true),
        Verdict::Refused(r) => Err(SendError::Template(r)),
    })
}

fn body_without_callback(req: &SendRequest) -> Value {
    let mut v: Value = req.graph_body("");
    if let Value::Object(o) = &mut v {
        o.remove("biz_opaque_callback_data");
    }
    v
}

/// Handles `POST /{version}/{phone_number_id}/messages` after authentication: validates,
/// checks consent and the window, records the send and queues it.
///
/// - A replay of an `Idempotency-Key` (same API key, number and key within 24 h) gets the
///   first answer back and queues nothing new (a send still pending is queued again: the
///   queue deduplicates it and the worker never sends a settled send twice); the same key
///   with another body is refused (422).
/// - A session message to a customer whose window is closed is refused with 131047, unless
///   the body has a `fallback_template`, which is then what is sent; an opted-out customer is
///   refused with 131050 (a marketing opt-out only for templates that need marketing consent).
/// - A template send, and a `fallback_template`, are checked against the template registry
///   ([`check_send`]): an unknown, unapproved or mismatched template is refused with Meta's
///   code (132000, 132001, 132012, 132015, 132016).
///
/// Nothing is queued for a refusal.
pub async fn accept<S, Q>(
    store: &S,
    queue: &Q,
    config: &AcceptConfig,
    call: SendCall<'_>,
) -> Result<Answer, AcceptError>
where
    S: SendStore + ConversationReader + TemplateStore + LimitStore,
    Q: OutboundQueue,
{
    let now_secs = call.now_ms.div_euclid(1000);
    let body_sha256 = sha256_hex(call.body);
    let key_hash = call
        .idempotency_key
        .map(|k| idempotency_hash(call.api_key_hash, call.phone_number_id, k));
    if let Some(h) = &key_hash
        && let Some(existing) = store.find_idempotent(h, now_secs).await?
    {
        return replay(queue, &existing, &body_sha256, call.trace_id).await;
    }

    let (body, fallback) = match split_fallback(call.body) {
        Ok(x) => x,
        Err(e) => return Ok(refused(&e, call.trace_id)),
    };
    let parsed = match MessagesRequest::parse(&body) {
        Ok(p) => p,
        Err(e) => return Ok(refused(&e, call.trace_id)),
    };
    let id = SendId::new(call.now_ms, call.random);
    let idempotency = key_hash.map(|key_hash| Idempotency {
        key_hash,
        body_sha256,
        expires_at: now_secs + IDEMPOTENCY_SECS,
    });
    let mut record = SendRecord {
        idempotency,
        ..SendRecord::pending(
            id.clone(),
            call.phone_number_id,
            SendKind::Session,
            call.now_ms,
            now_secs + config.retention_secs,
        )
    };

    let answer = match parsed {
        MessagesRequest::Read(_) => {
            record.kind = SendKind::ReadReceipt;
            record.message_type = "read".into();
            record.body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            json!({"success": true})
        }
        MessagesRequest::Send(req) => {
            let mut req = *req;
            let mut marketing = true;
            if let Some(t) = req.template_object() {
                match registry_check(store, call.phone_number_id, t).await? {
                    Ok(m) => marketing = m,
                    Err(e) => return Ok(refused(&e, call.trace_id)),
                }
            }
            let mut fallback_marketing = true;
            if req.is_session_message()
                && let Some(t) = &fallback
            {
                match registry_check(store, call.phone_number_id, t).await? {
                    Ok(m) => fallback_marketing = m,
                    Err(e) => return Ok(refused(&fallback_error(e), call.trace_id)),
                }
            }
            if let Some(who) = req.customer().cloned() {
                let key = store
                    .lookup_customer(call.phone_number_id, &who.direct_key())
                    .await?;
                let window = store
                    .window(call.phone_number_id, &key)
                    .await?
                    .map(|(w, _)| w);
                let consents = store.consents(call.phone_number_id, &key).await?;
                let kind = kind_of(&req);
                let mut verdict = policy::check_for(
                    kind,
                    marketing,
                    window.as_ref(),
                    &consents,
                    now_secs,
                    config.window_margin_secs,
                );
                if verdict == Err(Refusal::WindowClosed)
                    && let Some(template) = &fallback
                {
                    req = match fallback_request(&req, template) {
                        Ok(r) => r,
                        Err(e) => return Ok(refused(&e, call.trace_id)),
                    };
                    verdict = policy::check_for(
                        SendKind::Template,
                        fallback_marketing,
                        window.as_ref(),
                        &consents,
                        now_secs,
                        config.window_margin_secs,
                    );
                }
                if verdict.is_ok() && kind_of(&req) == SendKind::Template {
                    let open = window
                        .as_ref()
                        .is_some_and(|w| w.allows_session_message(now_secs, 0));
                    verdict =
                        charge(store, config, call.phone_number_id, &key, open, now_secs).await?;
                }
                record.who = Some(who);
                record.customer = Some(key);
                if let Err(refusal) = verdict {
                    return refuse(store, record, &refusal, call.trace_id, now_secs).await;
                }
            }
            if req.is_session_message()
                && let Some(template) = &fallback
            {
                // Kept for the worker: the window may close before dequeue.
                if let Ok(f) = fallback_request(&req, template) {
                    record.fallback = Some(body_without_callback(&f));
                }
            }
            record.kind = kind_of(&req);
            record.message_type = req.kind().as_str().to_owned();
            record.client_callback_data = req.client_callback_data().map(str::to_owned);
            record.body = body_without_callback(&req);
            req.response_body(id.as_str())
        }
    };

    let stored = StoredAnswer {
        http_status: 200,
        body: answer.to_string(),
    };
    if record.idempotency.is_some() {
        record.answer = Some(stored);
    }
    match store.create_send(&record, now_secs).await? {
        Created::Exists(existing) => {
            let sha = record
                .idempotency
                .as_ref()
                .map(|i| i.body_sha256.clone())
                .unwrap_or_default();
            return replay(queue, &existing, &sha, call.trace_id).await;
        }
        Created::New => record.version = 1,
    }
    if let Err(e) = queue.enqueue(&SendJob::for_send(&record)).await {
        // With an Idempotency-Key the send stays pending: the client's retry queues it.
        // Without one, it is marked failed so that nobody waits for it (best effort: a send
        // nothing queued is never delivered anyway).
        if record.idempotency.is_none() {
            record.state = SendState::Failed;
            record.error = Some(SendFailure::new(0, "could not be queued"));
            let _ = store.save_send(&mut record).await;
        }
        return Err(e.into());
    }
    Ok(Answer {
        http_status: 200,
        body: answer,
        send_id: Some(id),
        replayed: false,
        retry_after_secs: None,
    })
}

/// Charges a template send against the messaging limit of the number's portfolio (its
/// WhatsApp Business Account, as the broadcast planner charges it): free inside the
/// customer-service window or for a customer charged in the last 24 hours. A number whose
/// account is not known yet (no webhook, no sync) is charged under its own name
/// ([`portfolio_of`]), as its broadcasts are.
async fn charge<S: TemplateStore + LimitStore>(
    store: &S,
    config: &AcceptConfig,
    phone_number_id: &str,
    customer: &crate::customer::CustomerKey,
    window_open: bool,
    now_secs: i64,
) -> Result<Result<(), Refusal>, StoreError> {
    if window_open {
        return Ok(Ok(()));
    }
    let waba = portfolio_of(store, phone_number_id).await?;
    let who = customer.as_storage();
    let charged = charge_one(store, &waba, &who, false, config.default_tier, now_secs).await?;
    Ok(charged.map_err(|full| Refusal::LimitReached {
        limit: full.limit,
        retry_at: full.retry_at,
    }))
}

fn kind_of(req: &SendRequest) -> SendKind {
    if req.is_session_message() {
        SendKind::Session
    } else {
        SendKind::Template
    }
}

/// The answer of a refusal; with an `Idempotency-Key` the refusal is recorded so that a
/// replay gets the same answer.
async fn refuse<S: SendStore>(
    store: &S,
    mut record: SendRecord,
    refusal: &Refusal,
    trace: &str,
    now_secs: i64,
) -> Result<Answer, AcceptError> {
    let body = cloud_api_error_body(refusal.code(), refusal.message(), &refusal.details(), trace);
    let status = refusal.http_status();
    let retry_after = refusal.retry_at().map(|t| (t - now_secs).max(1));
    if record.idempotency.is_some() && !refusal.is_transient() {
        record.state = SendState::Failed;
        record.error = Some(SendFailure::new(refusal.code(), refusal.message()));
        record.answer = Some(StoredAnswer {
            http_status: status,
            body: body.to_string(),
        });
        if let Created::Exists(existing) = store.create_send(&record, now_secs).await?
            && let Some(a) = &existing.answer
        {
            return Ok(stored_answer(&existing, a));
        }
    }
    Ok(Answer {
        http_status: status,
        body,
        send_id: None,
        replayed: false,
        retry_after_secs: retry_after,
    })
}

fn stored_answer(r: &SendRecord, a: &StoredAnswer) -> Answer {
    Answer {
        http_status: a.http_status,
        body: serde_json::from_str(&a.body).unwrap_or(Value::Null),
        send_id: (a.http_status == 200).then(|| r.id.clone()),
        replayed: true,
        retry_after_secs: None,
    }
}

/// The answer to a request whose `Idempotency-Key` is held by `existing`.
async fn replay<Q: OutboundQueue>(
    queue: &Q,
    existing: &SendRecord,
    body_sha256: &str,
    trace: &str,
) -> Result<Answer, AcceptError> {
    let same_body = existing
        .idempotency
        .as_ref()
        .is_some_and(|i| i.body_sha256 == body_sha256);
    if !same_body {
        return Ok(Answer {
            http_status: 422,
            body: cloud_api_error_body(
                100,
                "(#100) Invalid parameter",
                "This Idempotency-Key was used with a different request body in the last 24 hours; use a new key for a new message.",
                trace,
            ),
            send_id: None,
            replayed: true,
            retry_after_secs: None,
        });
    }
    let Some(answer) = &existing.answer else {
        return Err(AcceptError::Store(StoreError::Corrupt(
            "idempotent send without its answer".into(),
        )));
    };
    if matches!(existing.state, SendState::Pending { .. }) {
        // The first request may have failed to queue it; the queue and the worker make
        // queuing it again harmless.
        queue.enqueue(&SendJob::for_send(existing)).await?;
    }
    Ok(stored_answer(existing, answer))
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
