//! The HTTP side: Meta's routes, the control API and the state they share.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::Hmac;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::config::SandboxConfig;
use crate::failure::{FailureMode, FailureRule, Rules};
use crate::meta::{digits, fbtrace_id, meta_error, plain_error_body, sync_error_body, wamid};
use crate::record::{CounterCells, RecordedSend, SendOutcome};
use crate::templates;
use crate::webhook::{self, StatusJob};

/// State shared by the handlers, the webhook tasks and the handle.
pub(crate) struct Shared {
    pub config: SandboxConfig,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    pub signer: Hmac<Sha256>,
    pub http: reqwest::Client,
    pub cancel: CancellationToken,
    pub tasks: TaskTracker,
    pub counters: CounterCells,
    webhook_url: RwLock<Option<reqwest::Url>>,
    latency_micros: AtomicU64,
    rules: Mutex<Rules>,
    sends: Mutex<VecDeque<RecordedSend>>,
    seq: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        config: SandboxConfig,
        base_url: String,
        signer: Hmac<Sha256>,
        http: reqwest::Client,
        webhook_url: Option<reqwest::Url>,
    ) -> Shared {
        let latency = config.latency;
        let shared = Shared {
            config,
            base_url,
            signer,
            http,
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            counters: CounterCells::default(),
            webhook_url: RwLock::new(webhook_url),
            latency_micros: AtomicU64::new(0),
            rules: Mutex::new(Rules::default()),
            sends: Mutex::new(VecDeque::new()),
            seq: AtomicU64::new(0),
        };
        shared.set_latency(latency);
        shared
    }

    pub(crate) fn webhook_url(&self) -> Option<reqwest::Url> {
        self.webhook_url
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn webhooks_enabled(&self) -> bool {
        self.webhook_url
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    pub(crate) fn set_webhook_url(&self, url: Option<reqwest::Url>) {
        *self
            .webhook_url
            .write()
            .unwrap_or_else(PoisonError::into_inner) = url;
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_micros.load(Ordering::Relaxed))
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.store(micros, Ordering::Relaxed);
    }

    pub(crate) fn rules(&self) -> MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn sends(&self) -> MutexGuard<'_, VecDeque<RecordedSend>> {
        self.sends.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn display_phone_number(&self, phone_number_id: &str) -> &str {
        self.config
            .display_phone_numbers
            .get(phone_number_id)
            .unwrap_or(&self.config.display_phone_number)
    }

    fn record(&self, send: RecordedSend) {
        let cap = self.config.max_recorded;
        if cap == 0 {
            return;
        }
        let mut sends = self.sends();
        while sends.len() >= cap {
            sends.pop_front();
        }
        sends.push_back(send);
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && token.trim() == self.config.access_token.expose_secret()
    }

    /// Waits the configured latency (or until shutdown).
    async fn wait_latency(&self) {
        let latency = self.latency();
        if !latency.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(latency) => {}
                _ = self.cancel.cancelled() => {}
            }
        }
    }
}

/// Every route: Meta's two, then the control API under `/_sandbox/`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{version}/{id}/messages", post(send_message))
        .route("/{version}/{id}/message_templates", get(list_templates))
        .route("/_sandbox/health", get(health))
        .route("/_sandbox/sends", get(list_sends).delete(clear_sends))
        .route(
            "/_sandbox/failures",
            get(list_failures).post(add_failure).delete(clear_failures),
        )
        .route("/_sandbox/latency", get(get_latency).post(put_latency))
        .route("/_sandbox/counters", get(counters))
        .fallback(unknown_path)
        .with_state(shared)
}

/// A Graph API answer: JSON, with Meta's trace headers.
fn graph_response(status: StatusCode, body: &Value, trace: &str, version: &str) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-fb-trace-id", trace.to_owned()),
        ("x-fb-request-id", fbtrace_id()),
        ("facebook-api-version", version.to_owned()),
    ] {
        if value.is_empty() {
            continue;
        }
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// What light validation found in a send body.
struct Parsed {
    read_receipt: bool,
    to: Option<String>,
    to_digits: Option<String>,
    recipient: Option<String>,
    callback_data: Option<String>,
    template: Option<(String, Option<String>)>,
}

/// Light validation, as Meta answers it (code 100): a JSON object, `messaging_product`
/// `whatsapp`, and `to` (with digits) or `recipient` — or, for a read receipt, `message_id`.
fn validate(body: Option<&Value>) -> Result<Parsed, String> {
    let Some(obj) = body.and_then(Value::as_object) else {
        return Err("(#100) The request body must be a JSON object".into());
    };
    let text = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    match obj.get("messaging_product").and_then(Value::as_str) {
        None => return Err("(#100) The parameter messaging_product is required.".into()),
        Some(p) if !p.eq_ignore_ascii_case("whatsapp") => {
            return Err(format!(
                "(#100) Param messaging_product must be one of {{WHATSAPP}} - got \"{p}\"."
            ));
        }
        Some(_) => {}
    }
    if obj.get("status").and_then(Value::as_str) == Some("read") {
        if text("message_id").is_none() {
            return Err("(#100) The parameter message_id is required.".into());
        }
        return Ok(Parsed {
            read_receipt: true,
            to: None,
            to_digits: None,
            recipient: None,
            callback_data: None,
            template: None,
        });
    }
    let to = text("to");
    let recipient = text("recipient");
    if to.is_none() && recipient.is_none() {
        return Err("(#100) The parameter to is required.".into());
    }
    let to_digits = to.as_deref().map(digits);
    if to_digits.as_deref() == Some("") {
        return Err("(#100) Param to must be a phone number.".into());
    }
    let template = (obj.get("type").and_then(Value::as_str) == Some("template"))
        .then(|| obj.get("template"))
        .flatten()
        .and_then(|t| {
            let name = t.get("name")?.as_str()?.to_owned();
            let language = t
                .get("language")
                .and_then(|l| l.get("code"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            Some((name, language))
        });
    Ok(Parsed {
        read_receipt: false,
        to,
        to_digits,
        recipient,
        callback_data: obj
            .get("biz_opaque_callback_data")
            .and_then(Value::as_str)
            .map(str::to_owned),
        template,
    })
}

/// `POST /{version}/{phone_number_id}/messages`.
async fn send_message(
    State(shared): State<Arc<Shared>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    CounterCells::bump(&shared.counters.requests);
    let received_at_ms = now_ms();
    let trace = fbtrace_id();
    let json: Option<Value> = serde_json::from_slice(&raw).ok();
    let parsed = validate(json.as_ref());
    let body = json.unwrap_or_else(|| Value::String(String::from_utf8_lossy(&raw).into_owned()));
    let record = |outcome: SendOutcome, body: Value| {
        shared.record(RecordedSend {
            seq,
            version: version.clone(),
            phone_number_id: phone_number_id.clone(),
            body,
            outcome,
            received_at_ms,
        });
    };

    if !shared.authorised(&headers) {
        CounterCells::bump(&shared.counters.rejected);
        record(
            SendOutcome::Rejected {
                http_status: 401,
                code: Some(190),
            },
            body,
        );
        let error = plain_error_body(
            190,
            "Invalid OAuth access token - Cannot parse access token",
            &trace,
        );
        return graph_response(StatusCode::UNAUTHORIZED, &error, &trace, &version);
    }
    let send = match parsed {
        Ok(send) => send,
        Err(message) => {
            CounterCells::bump(&shared.counters.rejected);
            record(
                SendOutcome::Rejected {
                    http_status: 400,
                    code: Some(100),
                },
                body,
            );
            shared.wait_latency().await;
            let error = plain_error_body(100, &message, &trace);
            return graph_response(StatusCode::BAD_REQUEST, &error, &trace, &version);
        }
    };
    if send.read_receipt {
        CounterCells::bump(&shared.counters.read_receipts);
        record(SendOutcome::ReadReceipt, body);
        shared.wait_latency().await;
        return graph_response(StatusCode::OK, &json!({"success": true}), &trace, &version);
    }

    let mode = shared.rules().take(
        &phone_number_id,
        send.to_digits.as_deref(),
        send.recipient.as_deref(),
    );
    let recipient_key = send
        .to_digits
        .as_deref()
        .or(send.recipient.as_deref())
        .unwrap_or_default();
    let wamid = wamid(recipient_key, seq);
    let category = match &send.template {
        None => "service".to_owned(),
        Some((name, language)) => shared
            .config
            .templates
            .iter()
            .find(|t| &t.name == name && language.as_deref().is_none_or(|l| l == t.language))
            .map_or_else(|| "marketing".to_owned(), |t| t.category.to_lowercase()),
    };
    let job = |failure_code: Option<i64>| StatusJob {
        wamid: wamid.clone(),
        phone_number_id: phone_number_id.clone(),
        recipient_id: send.to_digits.clone(),
        recipient_user_id: send.recipient.clone(),
        callback_data: send.callback_data.clone(),
        category: category.clone(),
        failure_code,
    };
    let success = || {
        let contact = match (&send.to, &send.to_digits, &send.recipient) {
            (Some(to), Some(digits), recipient) => {
                let mut c = json!({"input": to, "wa_id": digits});
                if let (Some(r), Some(obj)) = (recipient, c.as_object_mut()) {
                    obj.insert("user_id".into(), json!(r));
                }
                c
            }
            (_, _, recipient) => json!({"input": recipient, "user_id": recipient}),
        };
        let mut message = json!({"id": wamid});
        if let (Some(_), Some(obj)) = (&send.template, message.as_object_mut()) {
            obj.insert("message_status".into(), json!("accepted"));
        }
        json!({
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [message],
        })
    };

    debug!(
        seq,
        phone_number_id = %phone_number_id,
        mode = mode.as_ref().map_or("none", FailureMode::name),
        "sandbox send received"
    );
    match mode {
        None => {
            CounterCells::bump(&shared.counters.accepted);
            record(
                SendOutcome::Accepted {
                    wamid: wamid.clone(),
                },
                body,
            );
            // Scheduled before the latency: the message went out even if the client stops
            // waiting (and the connection, with this future, is dropped) meanwhile.
            webhook::schedule(&shared, job(None));
            shared.wait_latency().await;
            graph_response(StatusCode::OK, &success(), &trace, &version)
        }
        Some(FailureMode::AsyncFailure { code }) => {
            CounterCells::bump(&shared.counters.accepted);
            record(
                SendOutcome::AcceptedThenFailed {
                    wamid: wamid.clone(),
                    code,
                },
                body,
            );
            webhook::schedule(&shared, job(Some(code)));
            shared.wait_latency().await;
            graph_response(StatusCode::OK, &success(), &trace, &version)
        }
        Some(FailureMode::TimeoutAfterReceive) => {
            CounterCells::bump(&shared.counters.unanswered);
            record(
                SendOutcome::TimedOut {
                    wamid: wamid.clone(),
                },
                body,
            );
            // The message went out: its statuses follow even though the answer does not.
            webhook::schedule(&shared, job(None));
            tokio::select! {
                _ = tokio::time::sleep(shared.config.hold_for) => {}
                _ = shared.cancel.cancelled() => {}
            }
            graph_response(StatusCode::OK, &success(), &trace, &version)
        }
        Some(FailureMode::ResetAfterReceive) => {
            CounterCells::bump(&shared.counters.unanswered);
            record(
                SendOutcome::Reset {
                    wamid: wamid.clone(),
                },
                body,
            );
            webhook::schedule(&shared, job(None));
            shared.wait_latency().await;
            // A body that fails at once makes the server drop the connection mid-answer.
            let broken = futures::stream::iter([Err::<Bytes, std::io::Error>(
                std::io::Error::other("sandbox: connection reset after receive"),
            )]);
            Response::new(Body::from_stream(broken))
        }
        Some(FailureMode::Unavailable) => {
            CounterCells::bump(&shared.counters.rejected);
            record(
                SendOutcome::Rejected {
                    http_status: 503,
                    code: None,
                },
                body,
            );
            shared.wait_latency().await;
            // Meta's edge answers this one: no Cloud API body, only the trace header.
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/plain")],
                "Service Unavailable",
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&trace) {
                response.headers_mut().insert("x-fb-trace-id", value);
            }
            response
        }
        Some(sync) => {
            let code = sync.sync_code().unwrap_or(131000);
            let error = meta_error(code);
            CounterCells::bump(&shared.counters.rejected);
            record(
                SendOutcome::Rejected {
                    http_status: error.http_status,
                    code: Some(code),
                },
                body,
            );
            shared.wait_latency().await;
            let status = StatusCode::from_u16(error.http_status).unwrap_or(StatusCode::BAD_REQUEST);
            graph_response(status, &sync_error_body(&error, &trace), &trace, &version)
        }
    }
}

/// `GET /{version}/{waba_id}/message_templates`.
async fn list_templates(
    State(shared): State<Arc<Shared>>,
    Path((version, waba_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let trace = fbtrace_id();
    if !shared.authorised(&headers) {
        let error = plain_error_body(
            190,
            "Invalid OAuth access token - Cannot parse access token",
            &trace,
        );
        return graph_response(StatusCode::UNAUTHORIZED, &error, &trace, &version);
    }
    if waba_id != shared.config.waba_id {
        let message = format!(
            "Unsupported get request. Object with ID '{waba_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        );
        let error = plain_error_body(100, &message, &trace);
        return graph_response(StatusCode::BAD_REQUEST, &error, &trace, &version);
    }
    let page_url = format!("{}/{version}/{waba_id}/message_templates", shared.base_url);
    match templates::page(&shared.config.templates, &query, &page_url) {
        Ok(page) => graph_response(StatusCode::OK, &page, &trace, &version),
        Err(e) => graph_response(
            StatusCode::BAD_REQUEST,
            &plain_error_body(e.code, &e.message, &trace),
            &trace,
            &version,
        ),
    }
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn list_sends(State(shared): State<Arc<Shared>>) -> Response {
    let sends: Vec<RecordedSend> = shared.sends().iter().cloned().collect();
    axum::Json(sends).into_response()
}

async fn clear_sends(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.sends().clear();
    StatusCode::NO_CONTENT
}

async fn list_failures(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.rules().list()).into_response()
}

async fn add_failure(State(shared): State<Arc<Shared>>, raw: Bytes) -> Response {
    match serde_json::from_slice::<FailureRule>(&raw) {
        Ok(rule) => {
            shared.rules().add(rule.clone());
            (StatusCode::CREATED, axum::Json(rule)).into_response()
        }
        Err(e) => control_error(&e.to_string()),
    }
}

async fn clear_failures(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.rules().clear();
    StatusCode::NO_CONTENT
}

async fn get_latency(State(shared): State<Arc<Shared>>) -> Response {
    let ms = u64::try_from(shared.latency().as_millis()).unwrap_or(u64::MAX);
    axum::Json(json!({"latency_ms": ms})).into_response()
}

async fn put_latency(State(shared): State<Arc<Shared>>, raw: Bytes) -> Response {
    let ms = serde_json::from_slice::<Value>(&raw)
        .ok()
        .and_then(|v| v.get("latency_ms").and_then(Value::as_u64));
    match ms {
        Some(ms) => {
            shared.set_latency(Duration::from_millis(ms));
            axum::Json(json!({"latency_ms": ms})).into_response()
        }
        None => control_error("expected {\"latency_ms\": <non-negative integer>}"),
    }
}

async fn counters(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.counters.snapshot()).into_response()
}

fn control_error(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"message": message}})),
    )
        .into_response()
}

/// Anything else: Meta's answer to an unknown path.
async fn unknown_path() -> Response {
    let trace = fbtrace_id();
    let error = plain_error_body(
        100,
        "Unsupported request - method type or path is not supported by the sandbox Graph API",
        &trace,
    );
    graph_response(StatusCode::BAD_REQUEST, &error, &trace, "")
}
