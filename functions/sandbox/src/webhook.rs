//! Status webhooks: built in Meta's shape, signed with the app secret, posted back to the
//! configured URL at the configured delays, retried with backoff when not answered 200.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use rand::seq::SliceRandom;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::meta::{meta_json, webhook_error};
use crate::record::CounterCells;
use crate::server::Shared;

/// The header Meta signs webhooks with.
const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// A status a webhook reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Sent,
    Delivered,
    Read,
    Failed(i64),
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
            Status::Failed(_) => "failed",
        }
    }
}

/// Everything the status webhooks of one send need.
#[derive(Debug, Clone)]
pub(crate) struct StatusJob {
    pub wamid: String,
    pub phone_number_id: String,
    /// The digits of `to`.
    pub recipient_id: Option<String>,
    /// `recipient` (a BSUID).
    pub recipient_user_id: Option<String>,
    pub callback_data: Option<String>,
    /// The pricing category (`service`, or the template's category in lower case).
    pub category: String,
    /// `failed` with this code instead of sent/delivered/read.
    pub failure_code: Option<i64>,
}

/// Signs `body` as Meta does: `sha256=` + hex HMAC-SHA256 of the exact bytes.
pub(crate) fn sign(key: &Hmac<Sha256>, body: &[u8]) -> String {
    let mut mac = key.clone();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The HMAC key for `secret`.
pub(crate) fn signer(secret: &str) -> Option<Hmac<Sha256>> {
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()
}

/// Schedules the send's status webhooks; returns at once. Nothing is scheduled while
/// webhooks are disabled.
pub(crate) fn schedule(shared: &Arc<Shared>, job: StatusJob) {
    if !shared.webhooks_enabled() {
        return;
    }
    let delays = shared.config.status_delays;
    let plan: Vec<(Duration, Status)> = match job.failure_code {
        Some(code) => vec![(delays.sent.unwrap_or_default(), Status::Failed(code))],
        None => {
            let mut slots: Vec<(Duration, Status)> = [
                (delays.sent, Status::Sent),
                (delays.delivered, Status::Delivered),
                (delays.read, Status::Read),
            ]
            .into_iter()
            .filter_map(|(d, s)| d.map(|d| (d, s)))
            .collect();
            // Stable: equal delays keep the order sent, delivered, read.
            slots.sort_by_key(|(d, _)| *d);
            if shared.config.shuffle_statuses {
                let mut statuses: Vec<Status> = slots.iter().map(|(_, s)| *s).collect();
                statuses.shuffle(&mut rand::rng());
                for (slot, status) in slots.iter_mut().zip(statuses) {
                    slot.1 = status;
                }
            }
            slots
        }
    };
    shared
        .counters
        .webhooks_scheduled
        .fetch_add(plan.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let origin = Instant::now();
    let conversation_id = hex::encode(rand::random::<[u8; 16]>());
    let task_shared = Arc::clone(shared);
    shared.tasks.spawn(async move {
        let shared = task_shared;
        let total = plan.len();
        for (done, (delay, status)) in plan.into_iter().enumerate() {
            tokio::select! {
                _ = tokio::time::sleep_until(origin + delay) => {}
                _ = shared.cancel.cancelled() => {
                    abandon(&shared, total - done);
                    return;
                }
            }
            let body = status_body(&shared, &job, status, &conversation_id);
            post(&shared, body, &job.wamid, status).await;
        }
    });
}

fn abandon(shared: &Shared, n: usize) {
    shared
        .counters
        .webhooks_abandoned
        .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
}

/// The webhook body for one status, in Meta's shape and escaping.
fn status_body(shared: &Shared, job: &StatusJob, status: Status, conversation_id: &str) -> Bytes {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut item = Map::new();
    item.insert("id".into(), json!(job.wamid));
    item.insert("status".into(), json!(status.as_str()));
    item.insert("timestamp".into(), json!(now.to_string()));
    if let Some(r) = &job.recipient_id {
        item.insert("recipient_id".into(), json!(r));
    }
    if let Some(u) = &job.recipient_user_id {
        item.insert("recipient_user_id".into(), json!(u));
    }
    if let Some(data) = &job.callback_data {
        item.insert("biz_opaque_callback_data".into(), json!(data));
    }
    let service = job.category == "service";
    if status == Status::Sent {
        item.insert(
            "conversation".into(),
            json!({
                "id": conversation_id,
                "expiration_timestamp": (now + 24 * 3600).to_string(),
                "origin": {"type": job.category},
            }),
        );
    }
    // Meta puts pricing on `sent` and on one of delivered/read, never on `failed`.
    if matches!(status, Status::Sent | Status::Delivered) {
        item.insert(
            "pricing".into(),
            json!({
                "billable": !service,
                "pricing_model": "PMP",
                "type": if service { "free_customer_service" } else { "regular" },
                "category": job.category,
            }),
        );
    }
    if let Status::Failed(code) = status {
        item.insert("errors".into(), json!([webhook_error(code)]));
    }
    let value = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": shared.config.waba_id,
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": shared.display_phone_number(&job.phone_number_id),
                        "phone_number_id": job.phone_number_id,
                    },
                    "statuses": [Value::Object(item)],
                },
                "field": "messages",
            }],
        }],
    });
    Bytes::from(meta_json(&value))
}

/// Posts one webhook, retrying with doubling backoff until it is answered 200 or the retries
/// run out.
async fn post(shared: &Shared, body: Bytes, wamid: &str, status: Status) {
    let retry = shared.config.webhook_retry;
    let signature = sign(&shared.signer, &body);
    let mut backoff = retry.first_backoff;
    for attempt in 0..=retry.retries {
        if attempt > 0 {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shared.cancel.cancelled() => {
                    abandon(shared, 1);
                    return;
                }
            }
            backoff = (backoff * 2).min(retry.max_backoff);
        }
        let Some(url) = shared.webhook_url() else {
            // Webhooks were disabled meanwhile.
            abandon(shared, 1);
            return;
        };
        CounterCells::bump(&shared.counters.webhook_attempts);
        let request = shared
            .http
            .post(url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .timeout(retry.timeout)
            .body(body.clone())
            .send();
        let answer = tokio::select! {
            answer = request => answer,
            _ = shared.cancel.cancelled() => {
                abandon(shared, 1);
                return;
            }
        };
        match answer {
            Ok(response) if response.status() == reqwest::StatusCode::OK => {
                CounterCells::bump(&shared.counters.webhooks_delivered);
                debug!(
                    wamid,
                    status = status.as_str(),
                    attempt,
                    "status webhook delivered"
                );
                return;
            }
            Ok(response) => debug!(
                wamid,
                status = status.as_str(),
                attempt,
                http_status = response.status().as_u16(),
                "status webhook refused; will retry"
            ),
            Err(error) => debug!(
                wamid,
                status = status.as_str(),
                attempt,
                %error,
                "status webhook not delivered; will retry"
            ),
        }
    }
    abandon(shared, 1);
    warn!(
        wamid,
        status = status.as_str(),
        attempts = retry.retries + 1,
        "status webhook abandoned after every retry"
    );
}
