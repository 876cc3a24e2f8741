//! A fake SQS endpoint that speaks just `SendMessageBatch` (JSON protocol), for what moto
//! cannot show: volume (moto rescans a queue for every message it accepts, so 1,000 messages
//! take minutes), concurrency, and entries reported as failed.
//!
//! It keeps what it accepted, deduplicating by `MessageDeduplicationId` as a FIFO queue does,
//! and can be told to fail given entries a number of times.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMessage {
    /// The body.
    pub body: String,
    /// `MessageGroupId`.
    pub group: String,
    /// `MessageDeduplicationId`.
    pub dedup: String,
}

#[derive(Default)]
struct Inner {
    messages: Mutex<Vec<FakeMessage>>,
    seen: Mutex<HashSet<String>>,
    failures: Mutex<HashMap<String, u32>>,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    latency_ms: AtomicUsize,
}

/// A running fake SQS endpoint on a loopback port; stops when dropped.
pub struct FakeSqs {
    /// The endpoint URL to give the SDK.
    pub endpoint: String,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSqs {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeSqs {
    /// Starts the fake; each request takes `latency` (so concurrency shows).
    pub async fn start(latency: Duration) -> FakeSqs {
        let inner = Arc::new(Inner::default());
        inner.latency_ms.store(
            usize::try_from(latency.as_millis()).unwrap_or(usize::MAX),
            Ordering::Relaxed,
        );
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("fake SQS cannot bind: {e}"),
        };
        let endpoint = match listener.local_addr() {
            Ok(a) => format!("http://{a}"),
            Err(e) => panic!("fake SQS has no address: {e}"),
        };
        let app = Router::new()
            .route("/", post(handle))
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSqs {
            endpoint,
            inner,
            server,
        }
    }

    /// Makes the entry with this deduplication id fail `times` times before it is accepted.
    pub fn fail(&self, dedup_id: &str, times: u32) {
        lock(&self.inner.failures).insert(dedup_id.to_owned(), times);
    }

    /// The messages accepted, in arrival order, duplicates removed.
    pub fn messages(&self) -> Vec<FakeMessage> {
        lock(&self.inner.messages).clone()
    }

    /// Requests received.
    pub fn requests(&self) -> usize {
        self.inner.requests.load(Ordering::SeqCst)
    }

    /// The most requests that were in progress at once.
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight.load(Ordering::SeqCst)
    }
}

fn error(code: &str, message: &str) -> (StatusCode, HeaderMap, String) {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    let body = json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": message});
    (StatusCode::BAD_REQUEST, headers, body.to_string())
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, HeaderMap, String) {
    inner.requests.fetch_add(1, Ordering::SeqCst);
    let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    inner.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let latency = inner.latency_ms.load(Ordering::Relaxed) as u64;
    tokio::time::sleep(Duration::from_millis(latency)).await;
    let reply = answer(&inner, &headers, &body);
    inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    reply
}

fn answer(inner: &Inner, headers: &HeaderMap, body: &str) -> (StatusCode, HeaderMap, String) {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target != "AmazonSQS.SendMessageBatch" {
        return error("InvalidAction", &format!("fake SQS does not do {target:?}"));
    }
    let Ok(request) = serde_json::from_str::<Value>(body) else {
        return error("MalformedInput", "not JSON");
    };
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() || entries.len() > 10 {
        return error("TooManyEntriesInBatchRequest", "1 to 10 entries");
    }
    let total: usize = entries
        .iter()
        .map(|e| e["MessageBody"].as_str().map_or(0, str::len))
        .sum();
    if total > 256 * 1024 {
        return error("BatchRequestTooLong", "over 256 KiB");
    }
    let mut successful = Vec::new();
    let mut failed = Vec::new();
    for e in &entries {
        let id = e["Id"].as_str().unwrap_or_default();
        let dedup = e["MessageDeduplicationId"].as_str().unwrap_or_default();
        let group = e["MessageGroupId"].as_str().unwrap_or_default();
        {
            let mut failures = lock(&inner.failures);
            if let Some(left) = failures.get_mut(dedup).filter(|n| **n > 0) {
                *left -= 1;
                failed.push(
                    json!({"Id": id, "SenderFault": false, "Code": "InternalError",
                                   "Message": "told to fail"}),
                );
                continue;
            }
        }
        if lock(&inner.seen).insert(dedup.to_owned()) {
            lock(&inner.messages).push(FakeMessage {
                body: e["MessageBody"].as_str().unwrap_or_default().to_owned(),
                group: group.to_owned(),
                dedup: dedup.to_owned(),
            });
        }
        successful.push(json!({"Id": id, "MessageId": format!("m-{dedup}"),
                               "MD5OfMessageBody": "00000000000000000000000000000000"}));
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    let body = json!({"Successful": successful, "Failed": failed});
    (StatusCode::OK, headers, body.to_string())
}
