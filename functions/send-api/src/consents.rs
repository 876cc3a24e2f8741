//! The consent API: a business records what its customers agreed to (or asked to stop) and
//! reads what is in force.
//!
//! - `PUT /v1/consents/{phone_number_id}/{customer}`, body
//!   `{"scope":"marketing"|"all","status":"opted_in"|"opted_out","source":"web_form","proof":"…"?}`
//!   → 200 with the stored record. The record is newest-wins with the ones webhooks write
//!   (a STOP keyword, `user_preferences`, 131050): it takes the request's time.
//! - `GET /v1/consents/{phone_number_id}/{customer}` → the customer's records and the
//!   effective answers ([`wa_domain::consent::may_send`]): `marketing` (with and without a
//!   required opt-in) and `all` (session and utility messages).
//!
//! `customer` is a BSUID or phone digits, as in `GET /v1/conversations/…`. Answers: 401 without
//! a known key, 403 for a key of another number, 400 for a bad body or path, 503 when the
//! store is unavailable; errors in the Cloud API error shape, mapped in [`into_response`].

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use wa_domain::auth::{AuthError, authorize};
use wa_domain::clock::rfc3339;
use wa_domain::consent::{Purpose, SCOPE_ALL, SCOPE_MARKETING, may_send};
use wa_domain::customer::CustomerKey;
use wa_domain::outbound::cloud_api_error_body;
use wa_domain::ports::{
    ApiKeyStore, Consent, ConsentDetail, ConsentRecord, ConsentSource, ConversationReader,
    InboundStore, SendStore, StoreError,
};

/// The longest `source` taken.
const MAX_SOURCE: usize = 64;
/// The longest `proof` taken.
const MAX_PROOF: usize = 4_096;

/// Why a consent request was not served.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// Authentication or authorisation failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The method is not served on this path.
    #[error("method not allowed")]
    Method,
    /// The path or body is invalid; the text says what to fix.
    #[error("{0}")]
    Bad(String),
    /// The store failed.
    #[error("store unavailable")]
    Store(#[from] StoreError),
}

/// The one place consent errors become answers.
fn into_response(err: &ConsentError, trace: &str) -> Response<Body> {
    let (status, code, message, details) = match err {
        ConsentError::Auth(AuthError::Unauthenticated) => (
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            "Send `Authorization: Bearer <API key>` with a Ventana API key.".to_owned(),
        ),
        ConsentError::Auth(AuthError::Forbidden) => (
            StatusCode::FORBIDDEN,
            10,
            "(#10) Application does not have permission for this action",
            "This API key may not act for this phone number id.".to_owned(),
        ),
        ConsentError::Method => (
            StatusCode::METHOD_NOT_ALLOWED,
            100,
            "Unsupported request",
            "Use GET or PUT on /v1/consents/{phone_number_id}/{customer}.".to_owned(),
        ),
        ConsentError::Bad(why) => (
            StatusCode::BAD_REQUEST,
            100,
            "(#100) Invalid parameter",
            why.clone(),
        ),
        ConsentError::Auth(AuthError::Store(_)) | ConsentError::Store(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            2,
            "Service temporarily unavailable",
            "Nothing was recorded; retry.".to_owned(),
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
    res.headers_mut().insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    res
}

/// `(phone_number_id, customer)` if the path is a consent route.
pub fn route(path: &str) -> Option<(String, String)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "consents", pnid, customer] => Some(((*pnid).to_owned(), (*customer).to_owned())),
        _ => None,
    }
}

/// Serves a consent route at `now_ms`; `trace` is the request id for error bodies.
pub async fn handle<S>(
    store: &S,
    req: &Request,
    pnid: &str,
    customer: &str,
    now_ms: i64,
    trace: &str,
) -> Response<Body>
where
    S: SendStore + ConversationReader + ApiKeyStore + InboundStore,
{
    match serve(store, req, pnid, customer, now_ms).await {
        Ok(body) => json(StatusCode::OK, &body),
        Err(err) => {
            match &err {
                ConsentError::Store(_) | ConsentError::Auth(AuthError::Store(_)) => {
                    tracing::error!(error = ?err, request_id = %trace, "consent request failed")
                }
                other => {
                    tracing::info!(outcome = %other, request_id = %trace, "consent request refused")
                }
            }
            into_response(&err, trace)
        }
    }
}

async fn serve<S>(
    store: &S,
    req: &Request,
    pnid: &str,
    customer: &str,
    now_ms: i64,
) -> Result<Value, ConsentError>
where
    S: SendStore + ConversationReader + ApiKeyStore + InboundStore,
{
    let method = req.method().as_str();
    if method != "GET" && method != "PUT" {
        return Err(ConsentError::Method);
    }
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    authorize(store, auth, pnid).await?;
    if pnid.is_empty() || pnid.len() > 32 || !pnid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConsentError::Bad(
            "The phone number id must be digits.".into(),
        ));
    }
    let asked = CustomerKey::parse_client(customer)
        .ok_or_else(|| ConsentError::Bad("customer must be a BSUID or a phone number".into()))?;
    let key = store.lookup_customer(pnid, &asked).await?;
    if method == "PUT" {
        let record = parse_put(req.body().as_ref(), pnid, &key, now_ms)?;
        store.record_consent(&record).await?;
        let stored = store
            .consents(pnid, &key)
            .await?
            .into_iter()
            .find(|c| c.scope == record.scope)
            .unwrap_or(record);
        return Ok(record_json(&stored));
    }
    let consents = store.consents(pnid, &key).await?;
    let answer = |purpose, require_opt_in| {
        let r = may_send(&consents, purpose, require_opt_in);
        json!({"may_send": r.is_ok(), "reason": r.err().map(|b| b.as_str())})
    };
    Ok(json!({
        "phone_number_id": pnid,
        "customer": key,
        "consents": consents.iter().map(record_json).collect::<Vec<_>>(),
        "effective": {
            SCOPE_MARKETING: answer(Purpose::Marketing, false),
            "marketing_requiring_opt_in": answer(Purpose::Marketing, true),
            SCOPE_ALL: answer(Purpose::Other, false),
        },
    }))
}

fn parse_put(
    body: &[u8],
    pnid: &str,
    key: &CustomerKey,
    now_ms: i64,
) -> Result<ConsentRecord, ConsentError> {
    let bad = |s: &str| ConsentError::Bad(s.to_owned());
    let shape = "The body must be {\"scope\":\"marketing\"|\"all\",\"status\":\"opted_in\"|\"opted_out\",\"source\":\"…\",\"proof\":\"…\"}.";
    let b: Value = serde_json::from_slice(body).map_err(|_| bad(shape))?;
    let obj = b.as_object().ok_or_else(|| bad(shape))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["scope", "status", "source", "proof"].contains(&k.as_str()))
    {
        return Err(ConsentError::Bad(format!("unknown field {k:?}. {shape}")));
    }
    let field = |name: &str| obj.get(name).and_then(Value::as_str);
    let scope = match field("scope") {
        Some(s @ (SCOPE_MARKETING | SCOPE_ALL)) => s.to_owned(),
        _ => return Err(bad("scope must be \"marketing\" or \"all\".")),
    };
    let consent = match field("status") {
        Some("opted_in") => Consent::OptedIn,
        Some("opted_out") => Consent::OptedOut,
        _ => return Err(bad("status must be \"opted_in\" or \"opted_out\".")),
    };
    let proof = match obj.get("proof") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.trim().to_owned()).filter(|p| !p.is_empty()),
        Some(_) => return Err(bad("proof must be a string.")),
    };
    let origin = field("source").unwrap_or_default().trim();
    if origin.is_empty()
        || origin.len() > MAX_SOURCE
        || !origin
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':'))
    {
        return Err(bad(
            "source must be 1 to 64 letters, digits or _ - . : (e.g. \"web_form\").",
        ));
    }
    if proof.as_ref().is_some_and(|p| p.len() > MAX_PROOF) {
        return Err(bad("proof must be at most 4096 bytes."));
    }
    Ok(ConsentRecord {
        phone_number_id: pnid.to_owned(),
        customer: key.clone(),
        scope,
        consent,
        source: ConsentSource::Api,
        at: now_ms.div_euclid(1000),
        detail: Some(ConsentDetail {
            origin: origin.to_owned(),
            proof,
        }),
    })
}

/// A record as the API shows it: `source` is the business's own word for API records
/// (`web_form`) and the channel otherwise (`keyword`, `user_preferences`, `error_131050`).
fn record_json(c: &ConsentRecord) -> Value {
    json!({
        "scope": c.scope,
        "status": match c.consent {
            Consent::OptedIn => "opted_in",
            Consent::OptedOut => "opted_out",
        },
        "source": c.detail.as_ref().map_or(c.source.as_str(), |d| d.origin.as_str()),
        "recorded_via": c.source.as_str(),
        "proof": c.detail.as_ref().and_then(|d| d.proof.as_deref()),
        "at": rfc3339(c.at),
    })
}

#[cfg(test)]
#[path = "consents_tests.rs"]
mod tests;
