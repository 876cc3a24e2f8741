//! Translates `POST /{version}/{phone_number_id}/messages` into
//! [`wa_domain::outbound::accept::accept`] and its answer back into HTTP, in the Cloud API's
//! shapes (so an existing SDK works by changing its base URL):
//!
//! - success: `{"messaging_product":"whatsapp","contacts":[…],"messages":[{"id":"vnt.…","message_status":"accepted"}]}`
//!   (`{"success":true}` for a read receipt);
//! - errors: `{"error":{"message","type","code","error_data":{"details"},"fbtrace_id"}}`, with
//!   `fbtrace_id` = the Lambda request id. 400 invalid body (131008/131009/100), 400 window
//!   closed (131047) or opted out (131050), 401 no or unknown key (190), 403 key for another
//!   number (10), 404 other routes, 413 body too large, 422 `Idempotency-Key` reused with
//!   another body, 503 store or queue unavailable (code 2: retry; nothing was queued unless
//!   the retry carries the same `Idempotency-Key`).
//!
//! Every refusal is mapped to its answer in [`into_response`], the one place.

use lambda_http::http::{
    HeaderValue, StatusCode,
    header::{CONTENT_TYPE, RETRY_AFTER},
};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;
use wa_domain::auth::{AuthError, authorize, hash_key};
use wa_domain::broadcast::LimitStore;
use wa_domain::outbound::accept::{AcceptConfig, AcceptError, SendCall, accept};
use wa_domain::outbound::cloud_api_error_body;
use wa_domain::ports::{ApiKeyStore, ConversationReader, InboundStore, OutboundQueue, SendStore};
use wa_domain::templates::TemplateStore;

/// The largest body taken at all (the contract: bigger is 413 before anything else).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The largest send kept: a send is stored in one DynamoDB item and queued by id, and any
/// body Meta's limits allow is far smaller (a 4,096-character text is < 20 KiB).
pub const MAX_SEND_BYTES: usize = 256 * 1024;

/// The longest `Idempotency-Key` taken.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The request's `Idempotency-Key` header, if it has one; a malformed one is refused with
/// the words given.
pub(crate) fn idempotency_key(req: &Request) -> Result<Option<&str>, &'static str> {
    req.headers()
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
                .ok_or("Idempotency-Key must be 1 to 255 visible ASCII characters.")
        })
        .transpose()
}

/// What the handler needs.
pub struct Deps<S, Q> {
    /// Sends, windows, consents and API keys.
    pub store: S,
    /// The outbound queue.
    pub queue: Q,
    /// How send-api decides.
    pub config: AcceptConfig,
}

/// Everything that stops a request before the domain answers it.
#[derive(Debug, thiserror::Error)]
pub enum SendApiError {
    /// Authentication or authorisation failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No such route.
    #[error("no such route")]
    NotFound,
    /// The body is over a limit.
    #[error("body of {size} bytes is over the {limit} bytes limit")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// A header or path parameter is invalid.
    #[error("{0}")]
    BadParameter(&'static str),
    /// The store or queue failed: nothing is known to be queued.
    #[error("send not accepted")]
    Unavailable(#[from] AcceptError),
}

/// The one place errors become answers (Cloud API error shape).
fn into_response(err: &SendApiError, trace: &str) -> Response<Body> {
    let (status, code, message, details): (StatusCode, i64, &str, String) = match err {
        SendApiError::Auth(AuthError::Unauthenticated) => (
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            "Send `Authorization: Bearer <API key>` with a Ventana API key.".into(),
        ),
        SendApiError::Auth(AuthError::Forbidden) => (
            StatusCode::FORBIDDEN,
            10,
            "(#10) Application does not have permission for this action",
            "This API key may not send from this phone number id.".into(),
        ),
        SendApiError::NotFound => (
            StatusCode::NOT_FOUND,
            100,
            "Unsupported post request",
            "Only POST /{version}/{phone_number_id}/messages is served here.".into(),
        ),
        SendApiError::TooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            100,
            "(#100) Invalid parameter",
            err.to_string(),
        ),
        SendApiError::BadParameter(why) => (
            StatusCode::BAD_REQUEST,
            100,
            "(#100) Invalid parameter",
            (*why).to_owned(),
        ),
        SendApiError::Auth(AuthError::Store(_)) | SendApiError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            2,
            "Service temporarily unavailable",
            "Nothing was queued; retry (with the same Idempotency-Key to be safe).".into(),
        ),
    };
    json_response(
        status,
        &cloud_api_error_body(code, message, &details, trace),
    )
}

/// Handles one request at `now_ms`, with `random` bits for a new send's id.
pub async fn handle<S, Q>(
    deps: &Deps<S, Q>,
    req: Request,
    now_ms: i64,
    random: [u8; 10],
) -> Response<Body>
where
    S: SendStore + ConversationReader + ApiKeyStore + InboundStore + TemplateStore + LimitStore,
    Q: OutboundQueue,
{
    if crate::openapi::is_route(&req) {
        return crate::openapi::response();
    }
    let trace = request_id(&req);
    if let Some((pnid, customer)) = crate::consents::route(req.raw_http_path()) {
        return crate::consents::handle(&deps.store, &req, &pnid, &customer, now_ms, &trace).await;
    }
    match send(deps, &req, now_ms, random, &trace).await {
        Ok(res) => res,
        Err(err) => {
            match &err {
                SendApiError::Unavailable(_) | SendApiError::Auth(AuthError::Store(_)) => {
                    tracing::error!(error = ?err, request_id = %trace, "send failed")
                }
                other => tracing::info!(outcome = %other, request_id = %trace, "send refused"),
            }
            into_response(&err, &trace)
        }
    }
}

/// Handles one request of send-api's routes, the broadcast routes ([`crate::broadcasts`])
/// included: what the Lambda runs. Without `broadcasts` (no step queue configured) those
/// routes answer 503.
pub async fn handle_all<S, Q, B, T, P>(
    deps: &Deps<S, Q>,
    broadcasts: Option<&crate::broadcasts::BroadcastDeps<B, T, P>>,
    req: Request,
    now_ms: i64,
    random: [u8; 10],
) -> Response<Body>
where
    S: SendStore + ConversationReader + ApiKeyStore + InboundStore + TemplateStore + LimitStore,
    Q: OutboundQueue,
    B: wa_domain::broadcast::BroadcastStore,
    T: TemplateStore,
    P: wa_domain::broadcast::StepQueue,
{
    if let Some(r) = crate::broadcasts::route(req.method().as_str(), req.raw_http_path()) {
        let trace = request_id(&req);
        return crate::broadcasts::handle(&deps.store, broadcasts, &req, r, now_ms, random, &trace)
            .await;
    }
    handle(deps, req, now_ms, random).await
}

/// The id to give back as `fbtrace_id`: API Gateway's request id (what its access log
/// shows), else the Lambda request id.
pub fn request_id(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.request_id.clone().unwrap_or_default(),
        _ => req
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default(),
    }
}

/// `(version, phone_number_id)` of a send route, from API Gateway's path parameters or the
/// raw path.
fn route(req: &Request) -> Option<(String, String)> {
    if req.method().as_str() != "POST" {
        return None;
    }
    let path = req.raw_http_path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let [version, pnid, "messages"] = segments.as_slice() else {
        return None;
    };
    let params = req.path_parameters_ref();
    let version = params.and_then(|p| p.first("version")).unwrap_or(version);
    let pnid = params
        .and_then(|p| p.first("phone_number_id"))
        .unwrap_or(pnid);
    Some((version.to_owned(), pnid.to_owned()))
}

fn is_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let mut parts = rest.split('.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next();
    !major.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor.is_none_or(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_none()
}

async fn send<S, Q>(
    deps: &Deps<S, Q>,
    req: &Request,
    now_ms: i64,
    random: [u8; 10],
    trace: &str,
) -> Result<Response<Body>, SendApiError>
where
    S: SendStore + ConversationReader + ApiKeyStore + TemplateStore + LimitStore,
    Q: OutboundQueue,
{
    let (version, pnid) = route(req).ok_or(SendApiError::NotFound)?;
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(SendApiError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let authorization = header("authorization");
    authorize(&deps.store, authorization, &pnid).await?;
    if !is_version(&version) {
        return Err(SendApiError::BadParameter(
            "The version must look like v25.0.",
        ));
    }
    if pnid.is_empty() || pnid.len() > 32 || !pnid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SendApiError::BadParameter(
            "The phone number id must be digits.",
        ));
    }
    if body.len() > MAX_SEND_BYTES {
        return Err(SendApiError::TooLarge {
            size: body.len(),
            limit: MAX_SEND_BYTES,
        });
    }
    let idempotency_key = idempotency_key(req).map_err(SendApiError::BadParameter)?;
    // authorize() succeeded, so the header holds a key.
    let api_key_hash = hash_key(wa_domain::auth::bearer(authorization).unwrap_or_default());
    let answer = accept(
        &deps.store,
        &deps.queue,
        &deps.config,
        SendCall {
            phone_number_id: &pnid,
            body,
            idempotency_key,
            api_key_hash: &api_key_hash,
            now_ms,
            random,
            trace_id: trace,
        },
    )
    .await?;
    tracing::info!(
        status = answer.http_status,
        send_id = answer.send_id.as_ref().map(|s| s.as_str()),
        replayed = answer.replayed,
        request_id = %trace,
        "send answered"
    );
    let status = StatusCode::from_u16(answer.http_status).unwrap_or(StatusCode::OK);
    let mut res = json_response(status, &answer.body);
    if answer.replayed {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some(secs) = answer.retry_after_secs {
        res.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    Ok(res)
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut res = Response::new(Body::Text(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "bad_input_tests.rs"]
mod bad_input_tests;
