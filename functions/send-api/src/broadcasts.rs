//! The broadcast routes, translated into [`wa_domain::broadcast`]'s use cases:
//!
//! - `POST /v1/broadcasts` (architecture §4 body; optional `release`
//!   `{"percent","every_secs"}` or `{"all_at_once":true}`, `require_opt_in`, and
//!   `recipients_csv` `{"bucket","key"}` instead of inline `recipients`) → 202 `{"id"}`; the
//!   job's first planner step is queued on the step queue ([`create::create`]);
//!   `recipients_csv` only for an upload of that number ([`crate::uploads::check_list`]).
//! - `POST /v1/broadcasts/uploads` `{"phone_number_id"}` → 201 with a presigned `PUT` URL
//!   for a recipient list ([`crate::uploads`]).
//! - `GET /v1/broadcasts/{id}` → the job's view ([`Broadcast::view`]): `id`, `state`,
//!   `counts` and more.
//! - `POST /v1/broadcasts/{id}/pause`, `/resume` → 200 with the view as saved.
//! - `GET /v1/broadcasts/{id}/recipients?format=json|csv&cursor=&limit=` → one page of the
//!   ledger in position order: JSON `{"data":[…],"next_cursor"}`, or CSV (header row) with
//!   the next cursor in the `x-next-cursor` header.
//!
//! The API key must allow the broadcast's `phone_number_id`: 401 without a known key, 403
//! for a new broadcast of another number, and 404 for an existing broadcast of another number
//! (as for an unknown id: nothing is told about other numbers' broadcasts). Errors are in the
//! Cloud API error shape, mapped in [`into_response`].

use lambda_http::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use wa_domain::auth::{AuthError, authenticate, bearer, hash_key};
use wa_domain::broadcast::create::{self, CreateError};
use wa_domain::broadcast::{Broadcast, BroadcastId, BroadcastStore, LedgerEntry, StepQueue};
use wa_domain::outbound::cloud_api_error_body;
use wa_domain::ports::{ApiKeyStore, StoreError};
use wa_domain::templates::{TemplateRefusal, TemplateStore};

/// The default ledger page.
pub const DEFAULT_PAGE: usize = 100;
/// The largest ledger page.
pub const MAX_PAGE: usize = 1_000;

/// What the broadcast routes need.
pub struct BroadcastDeps<B, T, P> {
    /// Broadcasts and their ledgers.
    pub store: B,
    /// The template registry (a known template must be sendable).
    pub templates: T,
    /// The planner's step queue.
    pub steps: P,
    /// How long a broadcast and its ledger are kept (s).
    pub retention_secs: i64,
    /// The recipients bucket (`VENTANA_RECIPIENTS_BUCKET`) and its upload signer; `None`:
    /// `recipients_csv` and the upload route are refused with 400.
    pub uploads: Option<crate::uploads::Uploads>,
}

/// A broadcast route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/broadcasts`.
    Create,
    /// `POST /v1/broadcasts/uploads`: an upload URL for a recipient list
    /// ([`crate::uploads`]).
    Upload,
    /// `GET /v1/broadcasts/{id}`.
    Get(String),
    /// `POST /v1/broadcasts/{id}/pause`.
    Pause(String),
    /// `POST /v1/broadcasts/{id}/resume`.
    Resume(String),
    /// `GET /v1/broadcasts/{id}/recipients`.
    Recipients(String),
    /// Under `/v1/broadcasts` but no such route or method.
    Other,
}

/// The broadcast route of `method path`, `None` when the path is not under `/v1/broadcasts`.
pub fn route(method: &str, path: &str) -> Option<Route> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let r = match (method, segments.as_slice()) {
        (_, ["v1", "broadcasts", ..]) => match (method, &segments[2..]) {
            ("POST", []) => Route::Create,
            ("POST", ["uploads"]) => Route::Upload,
            ("GET", [id]) => Route::Get((*id).to_owned()),
            ("POST", [id, "pause"]) => Route::Pause((*id).to_owned()),
            ("POST", [id, "resume"]) => Route::Resume((*id).to_owned()),
            ("GET", [id, "recipients"]) => Route::Recipients((*id).to_owned()),
            _ => Route::Other,
        },
        _ => return None,
    };
    Some(r)
}

/// Why a broadcast request was not served.
#[derive(Debug, thiserror::Error)]
pub enum BroadcastApiError {
    /// Authentication or authorisation failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No such route, no such broadcast, or one of another number.
    #[error("not found")]
    NotFound,
    /// The body is over the limit.
    #[error("body of {0} bytes is over the limit")]
    TooLarge(usize),
    /// A bad request; the text says what to fix.
    #[error("{0}")]
    Bad(String),
    /// The registry refuses the template or the rows do not fit it.
    #[error(transparent)]
    Template(TemplateRefusal),
    /// The `Idempotency-Key` was used with another body.
    #[error(
        "This Idempotency-Key was used with a different request body in the last 24 hours; use a new key for a new broadcast."
    )]
    KeyReused,
    /// The store or the step queue failed.
    #[error("unavailable")]
    Unavailable(String),
    /// The broadcast was stored, but the step queue refused its first step: it is paused.
    #[error(
        "Broadcast {0} was stored but could not be started: it is paused (reason not_started). POST /v1/broadcasts/{0}/resume starts it, as does this request sent again with its Idempotency-Key."
    )]
    NotStarted(BroadcastId),
}

impl From<CreateError> for BroadcastApiError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::Invalid(why) => BroadcastApiError::Bad(why),
            CreateError::Template(r) => BroadcastApiError::Template(r),
            CreateError::IdempotencyReused => BroadcastApiError::KeyReused,
            CreateError::Store(e) => BroadcastApiError::Unavailable(e.to_string()),
            CreateError::Queue(e) => BroadcastApiError::Unavailable(e.to_string()),
            CreateError::NotStarted { id, .. } => BroadcastApiError::NotStarted(id),
        }
    }
}

impl From<StoreError> for BroadcastApiError {
    fn from(e: StoreError) -> Self {
        BroadcastApiError::Unavailable(e.to_string())
    }
}

/// The one place broadcast errors become answers.
fn into_response(err: &BroadcastApiError, trace: &str) -> Response<Body> {
    let (status, code, message, details) = match err {
        BroadcastApiError::Auth(AuthError::Unauthenticated) => (
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            "Send `Authorization: Bearer <API key>` with a Ventana API key.".to_owned(),
        ),
        BroadcastApiError::Auth(AuthError::Forbidden) => (
            StatusCode::FORBIDDEN,
            10,
            "(#10) Application does not have permission for this action",
            "This API key may not act for this phone number id.".to_owned(),
        ),
        BroadcastApiError::NotFound => (
            StatusCode::NOT_FOUND,
            100,
            "Unknown broadcast",
            "No such broadcast or route.".to_owned(),
        ),
        BroadcastApiError::TooLarge(_) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            100,
            "(#100) Invalid parameter",
            err.to_string(),
        ),
        BroadcastApiError::KeyReused => (
            StatusCode::UNPROCESSABLE_ENTITY,
            100,
            "(#100) Invalid parameter",
            err.to_string(),
        ),
        BroadcastApiError::Bad(why) => (
            StatusCode::BAD_REQUEST,
            100,
            "(#100) Invalid parameter",
            why.clone(),
        ),
        BroadcastApiError::Template(r) => (
            StatusCode::BAD_REQUEST,
            r.kind.code(),
            r.kind.message(),
            r.details.clone(),
        ),
        BroadcastApiError::Auth(AuthError::Store(_)) | BroadcastApiError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            2,
            "Service temporarily unavailable",
            "Retry later.".to_owned(),
        ),
        BroadcastApiError::NotStarted(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            2,
            "Service temporarily unavailable",
            err.to_string(),
        ),
    };
    json(
        status,
        &cloud_api_error_body(code, message, &details, trace),
    )
}

fn json(status: StatusCode, body: &Value) -> Response<Body> {
    let mut res = Response::new(Body::Text(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// Serves a broadcast route at `now_ms`, with `random` bits for a new broadcast's id; `keys`
/// authenticates the request.
pub async fn handle<K, B, T, P>(
    keys: &K,
    deps: Option<&BroadcastDeps<B, T, P>>,
    req: &Request,
    route: Route,
    now_ms: i64,
    random: [u8; 10],
    trace: &str,
) -> Response<Body>
where
    K: ApiKeyStore,
    B: BroadcastStore,
    T: TemplateStore,
    P: StepQueue,
{
    let served = match deps {
        Some(deps) => serve(keys, deps, req, route, now_ms, random).await,
        None => Err(BroadcastApiError::Unavailable(
            "BROADCAST_QUEUE_URL is not set".into(),
        )),
    };
    match served {
        Ok(res) => res,
        Err(err) => {
            match &err {
                BroadcastApiError::Unavailable(_)
                | BroadcastApiError::Auth(AuthError::Store(_)) => {
                    tracing::error!(error = ?err, request_id = %trace, "broadcast request failed")
                }
                other => {
                    tracing::info!(outcome = %other, request_id = %trace, "broadcast request refused")
                }
            }
            into_response(&err, trace)
        }
    }
}

async fn serve<K, B, T, P>(
    keys: &K,
    deps: &BroadcastDeps<B, T, P>,
    req: &Request,
    route: Route,
    now_ms: i64,
    random: [u8; 10],
) -> Result<Response<Body>, BroadcastApiError>
where
    K: ApiKeyStore,
    B: BroadcastStore,
    T: TemplateStore,
    P: StepQueue,
{
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let scope = authenticate(keys, authorization).await?;
    // A broadcast of this key's numbers, else 404.
    let visible = |b: Option<Broadcast>| {
        b.filter(|b| scope.allows(&b.phone_number_id))
            .ok_or(BroadcastApiError::NotFound)
    };
    let parse_id = |s: &str| BroadcastId::parse(s).ok_or(BroadcastApiError::NotFound);
    match route {
        Route::Other => Err(BroadcastApiError::NotFound),
        Route::Create => {
            let body: &[u8] = req.body().as_ref();
            if body.len() > crate::handler::MAX_BODY_BYTES {
                return Err(BroadcastApiError::TooLarge(body.len()));
            }
            let mut parsed = create::parse(body)?;
            if !scope.allows(&parsed.phone_number_id) {
                return Err(AuthError::Forbidden.into());
            }
            if let Some(key) = crate::handler::idempotency_key(req)
                .map_err(|why| BroadcastApiError::Bad(why.to_owned()))?
            {
                // authenticate() succeeded, so the header holds a key.
                let api_key_hash = hash_key(bearer(authorization).unwrap_or_default());
                parsed.idempotency = Some(create::Idempotent::of(
                    &api_key_hash,
                    &parsed.phone_number_id,
                    key,
                    body,
                ));
            }
            if let Some(list) = &parsed.recipients_csv {
                crate::uploads::check_list(deps.uploads.as_ref(), &parsed.phone_number_id, list)?;
            }
            let total = parsed.recipients.len();
            let id = create::create(
                &deps.store,
                &deps.templates,
                &deps.steps,
                parsed,
                now_ms,
                random,
                deps.retention_secs,
            )
            .await?;
            tracing::info!(broadcast_id = %id, recipients = total, "broadcast created");
            Ok(json(StatusCode::ACCEPTED, &json!({"id": id.as_str()})))
        }
        Route::Upload => {
            let body: &[u8] = req.body().as_ref();
            if body.len() > 4096 {
                return Err(BroadcastApiError::TooLarge(body.len()));
            }
            let pnid = crate::uploads::parse(body)?;
            if !scope.allows(&pnid) {
                return Err(AuthError::Forbidden.into());
            }
            let uploads = deps.uploads.as_ref().ok_or_else(|| {
                BroadcastApiError::Bad(
                    "uploads are not available: no recipients bucket is configured".into(),
                )
            })?;
            let answer = crate::uploads::create(uploads, &pnid, now_ms, random).await?;
            tracing::info!(phone_number_id = %pnid, "recipient list upload URL made");
            Ok(json(StatusCode::CREATED, &answer))
        }
        Route::Get(id) => {
            let b = visible(deps.store.get_broadcast(&parse_id(&id)?).await?)?;
            Ok(json(StatusCode::OK, &b.view()))
        }
        Route::Pause(id) => {
            let id = parse_id(&id)?;
            visible(deps.store.get_broadcast(&id).await?)?;
            let b = create::pause(&deps.store, &id)
                .await?
                .ok_or(BroadcastApiError::NotFound)?;
            tracing::info!(broadcast_id = %id, state = b.state.name(), "broadcast paused");
            Ok(json(StatusCode::OK, &b.view()))
        }
        Route::Resume(id) => {
            let id = parse_id(&id)?;
            visible(deps.store.get_broadcast(&id).await?)?;
            let b = create::resume(&deps.store, &deps.steps, &id)
                .await?
                .ok_or(BroadcastApiError::NotFound)?;
            tracing::info!(broadcast_id = %id, state = b.state.name(), "broadcast resumed");
            Ok(json(StatusCode::OK, &b.view()))
        }
        Route::Recipients(id) => {
            let id = parse_id(&id)?;
            visible(deps.store.get_broadcast(&id).await?)?;
            let q = req.query_string_parameters_ref();
            let param = |name: &str| q.and_then(|q| q.first(name)).filter(|v| !v.is_empty());
            let csv = match param("format") {
                None | Some("json") => false,
                Some("csv") => true,
                Some(_) => return Err(BroadcastApiError::Bad("format must be json or csv".into())),
            };
            let limit = match param("limit") {
                None => DEFAULT_PAGE,
                Some(l) => l
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| {
                        BroadcastApiError::Bad(format!("limit must be 1 to {MAX_PAGE}"))
                    })?,
            };
            let from = match param("cursor") {
                None => 0,
                Some(c) => c
                    .parse::<u64>()
                    .map_err(|_| BroadcastApiError::Bad("cursor is not valid".into()))?,
            };
            let mut entries = deps.store.entries(&id, from, limit).await?;
            // Receipts that came after an entry settled (a read after the settling) show.
            wa_domain::broadcast::with_latest_receipts(&deps.store, &mut entries).await?;
            let next = (entries.len() == limit)
                .then(|| entries.last().map(|e| (e.index + 1).to_string()))
                .flatten();
            if csv {
                let mut res = Response::new(Body::Text(to_csv(&entries)));
                res.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/csv"));
                if let Some(n) = next.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
                    res.headers_mut().insert("x-next-cursor", n);
                }
                Ok(res)
            } else {
                let data: Vec<Value> = entries.iter().map(LedgerEntry::view).collect();
                Ok(json(
                    StatusCode::OK,
                    &json!({"data": data, "next_cursor": next}),
                ))
            }
        }
    }
}

/// The CSV columns of a ledger page.
const CSV_COLUMNS: [&str; 7] = [
    "index",
    "to",
    "recipient",
    "outcome",
    "send_id",
    "error_code",
    "error",
];

/// A ledger page as CSV (header row; RFC 4180 quoting).
fn to_csv(entries: &[LedgerEntry]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for e in entries {
        let v = e.view();
        let cells: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|c| match &v[*c] {
                Value::Null => String::new(),
                Value::String(s) => quote(s),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn quote(s: &str) -> String {
    // A leading =, +, - or @ is prefixed so that a spreadsheet does not run it as a formula.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
#[path = "broadcasts_tests.rs"]
mod tests;
