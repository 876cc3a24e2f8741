//! The template registry API: what a WhatsApp Business Account's templates are, and a sync of
//! them from the Graph API now.
//!
//! - `GET /v1/templates?waba_id=…` → `{"waba_id","templates":[{name, language, status,
//!   category, id, quality, placeholders:{header, body, buttons}}], "synced_at": rfc3339|null}`
//!   from the registry ([`TemplateStore`]); `synced_at` null means the account was never
//!   synced in full, and send checks do not apply to it yet.
//! - `POST /v1/templates/sync`, body `{"waba_id":"…"}` → reads the whole listing through the
//!   [`TemplateSource`] (`wa-graph`) with [`sync`] → 200 `{"waba_id","pages","listed",
//!   "deleted","skipped","synced_at"}`.
//!
//! Authorisation: an `AnyNumber` key may use any account; a key scoped to numbers only an
//! account one of its numbers belongs to ([`TemplateStore::waba_of`]), else 403. Answers: 401
//! without a known key, 400 for a bad query or body, 405 for another method, 404 when the
//! Graph API knows no such account (code 100), 502 when it refused or garbled the listing, 503 when the store or the Graph API is unavailable (or no
//! Graph client is configured); errors in the Cloud API error shape, mapped in
//! [`into_response`].

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use wa_domain::auth::{AuthError, authenticate};
use wa_domain::clock::rfc3339;
use wa_domain::outbound::cloud_api_error_body;
use wa_domain::ports::{ApiKeyStore, KeyScope, StoreError};
use wa_domain::templates::{
    HeaderShape, SourceError, SyncError, TemplateDef, TemplateShape, TemplateSource, TemplateStore,
    sync,
};

/// The two routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/v1/templates`.
    List,
    /// `/v1/templates/sync`.
    Sync,
}

/// The route of `path`, if it is a template route.
pub fn route(path: &str) -> Option<Route> {
    match path.trim_end_matches('/') {
        "/v1/templates" => Some(Route::List),
        "/v1/templates/sync" => Some(Route::Sync),
        _ => None,
    }
}

/// Why a template request was not served.
#[derive(Debug, thiserror::Error)]
pub enum TemplatesError {
    /// Authentication or authorisation failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The method is not served on this path.
    #[error("method not allowed")]
    Method,
    /// The query or body is invalid; the text says what to fix.
    #[error("{0}")]
    Bad(&'static str),
    /// The store failed.
    #[error("store unavailable")]
    Store(#[from] StoreError),
    /// No Graph client is configured.
    #[error("no Graph API client configured")]
    NoSource,
    /// The sync failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// The one place template errors become answers.
fn into_response(err: &TemplatesError, trace: &str) -> Response<Body> {
    let unavailable = (
        StatusCode::SERVICE_UNAVAILABLE,
        2,
        "Service temporarily unavailable",
        "Nothing was changed that a retry would not redo; retry.",
    );
    let (status, code, message, details) = match err {
        TemplatesError::Auth(AuthError::Unauthenticated) => (
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            "Send `Authorization: Bearer <API key>` with a Ventana API key.",
        ),
        TemplatesError::Auth(AuthError::Forbidden) => (
            StatusCode::FORBIDDEN,
            10,
            "(#10) Application does not have permission for this action",
            "This API key has no phone number in this WhatsApp Business Account.",
        ),
        TemplatesError::Method => (
            StatusCode::METHOD_NOT_ALLOWED,
            100,
            "Unsupported request",
            "Use GET /v1/templates?waba_id=… or POST /v1/templates/sync.",
        ),
        TemplatesError::Bad(why) => (
            StatusCode::BAD_REQUEST,
            100,
            "(#100) Invalid parameter",
            *why,
        ),
        TemplatesError::Sync(SyncError::Source(SourceError::Refused {
            status: 400 | 404,
            code: Some(100),
            ..
        })) => (
            StatusCode::NOT_FOUND,
            100,
            "Unknown WhatsApp Business Account",
            "The Graph API knows no such account for this access token; nothing was changed.",
        ),
        TemplatesError::Sync(SyncError::Source(SourceError::Refused { .. }))
        | TemplatesError::Sync(SyncError::Source(SourceError::Malformed(_)))
        | TemplatesError::Sync(SyncError::Endless) => (
            StatusCode::BAD_GATEWAY,
            100,
            "The Graph API did not give the template listing",
            "Check the account id and the access token's permissions; nothing was marked deleted.",
        ),
        TemplatesError::Auth(AuthError::Store(_))
        | TemplatesError::Store(_)
        | TemplatesError::NoSource
        | TemplatesError::Sync(_) => unavailable,
    };
    json(status, &cloud_api_error_body(code, message, details, trace))
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

/// Serves a template route at `now` (unix seconds); `source` lists templates for a sync
/// (`None`: sync answers 503); `trace` is the request id for error bodies.
pub async fn handle<S, G>(
    store: &S,
    source: Option<&G>,
    req: &Request,
    route: Route,
    now: i64,
    trace: &str,
) -> Response<Body>
where
    S: ApiKeyStore + TemplateStore,
    G: TemplateSource,
{
    match serve(store, source, req, route, now).await {
        Ok(body) => json(StatusCode::OK, &body),
        Err(err) => {
            match &err {
                TemplatesError::Store(_)
                | TemplatesError::Auth(AuthError::Store(_))
                | TemplatesError::NoSource
                | TemplatesError::Sync(_) => {
                    tracing::error!(error = ?err, request_id = %trace, "template request failed")
                }
                other => {
                    tracing::info!(outcome = %other, request_id = %trace, "template request refused")
                }
            }
            into_response(&err, trace)
        }
    }
}

async fn serve<S, G>(
    store: &S,
    source: Option<&G>,
    req: &Request,
    route: Route,
    now: i64,
) -> Result<Value, TemplatesError>
where
    S: ApiKeyStore + TemplateStore,
    G: TemplateSource,
{
    let method = req.method().as_str();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    match (route, method) {
        (Route::List, "GET") => {
            let scope = authenticate(store, auth).await?;
            let q = req.query_string_parameters_ref();
            let waba = valid_waba(q.and_then(|q| q.first("waba_id")))?;
            allowed(store, &scope, waba).await?;
            let templates = store.templates(waba).await?;
            let synced_at = store.synced_at(waba).await?;
            Ok(json!({
                "waba_id": waba,
                "templates": templates.iter().map(template_json).collect::<Vec<_>>(),
                "synced_at": synced_at.map(rfc3339),
            }))
        }
        (Route::Sync, "POST") => {
            let scope = authenticate(store, auth).await?;
            let body: Value = serde_json::from_slice(req.body().as_ref())
                .map_err(|_| TemplatesError::Bad("The body must be {\"waba_id\":\"…\"}."))?;
            let waba = valid_waba(body.get("waba_id").and_then(Value::as_str))?;
            allowed(store, &scope, waba).await?;
            let source = source.ok_or(TemplatesError::NoSource)?;
            let report = sync(source, store, waba, now).await?;
            tracing::info!(
                waba_id = waba,
                pages = report.pages,
                listed = report.listed,
                deleted = report.deleted,
                "templates synced"
            );
            Ok(json!({
                "waba_id": waba,
                "pages": report.pages,
                "listed": report.listed,
                "deleted": report.deleted,
                "skipped": report.skipped,
                "synced_at": rfc3339(now),
            }))
        }
        _ => Err(TemplatesError::Method),
    }
}

fn valid_waba(waba: Option<&str>) -> Result<&str, TemplatesError> {
    waba.filter(|w| !w.is_empty() && w.len() <= 32 && w.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(TemplatesError::Bad(
            "waba_id (the WhatsApp Business Account id, digits) is required.",
        ))
}

/// An `AnyNumber` key may use any account; a scoped key only one its numbers belong to.
async fn allowed<S: TemplateStore>(
    store: &S,
    scope: &KeyScope,
    waba: &str,
) -> Result<(), TemplatesError> {
    let KeyScope::Numbers(numbers) = scope else {
        return Ok(());
    };
    for n in numbers {
        if store.waba_of(n).await?.as_deref() == Some(waba) {
            return Ok(());
        }
    }
    Err(AuthError::Forbidden.into())
}

fn template_json(t: &TemplateDef) -> Value {
    let shape = TemplateShape::of(&t.components);
    let header = match &shape.header {
        Some(HeaderShape::Text(p)) => json!({"type": "text", "params": p.names}),
        Some(HeaderShape::Media(kind)) => json!({"type": kind}),
        Some(HeaderShape::Location) => json!({"type": "location"}),
        Some(HeaderShape::Other(format)) => json!({"type": format}),
        None => Value::Null,
    };
    json!({
        "name": t.name,
        "language": t.language,
        "status": t.status.as_str(),
        "category": t.category.as_str(),
        "id": t.id,
        "quality": t.quality,
        "placeholders": {
            "header": header,
            "body": shape.body.names,
            "buttons": shape.buttons.iter().map(|b| json!({"type": b.kind, "dynamic": b.dynamic})).collect::<Vec<_>>(),
        },
    })
}

#[cfg(test)]
#[path = "templates_tests.rs"]
mod tests;
