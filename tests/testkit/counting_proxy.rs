//! A counting proxy in front of moto: every AWS request made through it is forwarded to the
//! upstream and counted by operation (`dynamodb:PutItem`, `sqs:SendMessageBatch`, …) with its
//! request and response bytes, the items it carries and the time the upstream took to
//! answer. Point an SDK at [`CountingProxy::endpoint`] (`config_for`) to count its requests
//! on the wire (the SDK's retries included). Used by `tests/e2e_cost.rs` and
//! `tests/broadcast_scale.rs`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Requests, bytes, items and upstream time of one operation.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpCount {
    /// Requests.
    pub requests: u64,
    /// Request body bytes.
    pub req_bytes: u64,
    /// Response body bytes.
    pub resp_bytes: u64,
    /// Items carried: written (TransactWriteItems, BatchWriteItem), asked for
    /// (BatchGetItem), entries (SendMessageBatch, DeleteMessageBatch), or 1.
    pub items: u64,
    /// ReceiveMessage calls that returned at least one message.
    pub non_empty: u64,
    /// DynamoDB write request units of the writes, from the size of each item written (see
    /// [`tally`]); 0 for other operations.
    pub write_units: u64,
    /// Time from forwarding the request to having the upstream's whole answer (µs).
    pub upstream_us: u64,
}

impl OpCount {
    /// `self - before`, field by field.
    pub fn minus(&self, before: &OpCount) -> OpCount {
        OpCount {
            requests: self.requests - before.requests,
            req_bytes: self.req_bytes - before.req_bytes,
            resp_bytes: self.resp_bytes - before.resp_bytes,
            items: self.items - before.items,
            non_empty: self.non_empty - before.non_empty,
            write_units: self.write_units - before.write_units,
            upstream_us: self.upstream_us - before.upstream_us,
        }
    }
}

/// The largest request the proxy forwards: DynamoDB's BatchWriteItem limit (16 MB), and
/// room for its JSON.
const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

type Counts = Arc<Mutex<BTreeMap<String, OpCount>>>;

/// The proxy: listening on a loopback port until the runtime ends.
pub struct CountingProxy {
    /// `http://127.0.0.1:{port}`.
    pub endpoint: String,
    counts: Counts,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    counts: Counts,
}

/// The operation a request asks for: `X-Amz-Target` (JSON protocols), else `Action=` (query),
/// else an S3 object call by its method.
fn operation(method: &Method, headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(t) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return t
            .replace("DynamoDB_20120810.", "dynamodb:")
            .replace("AmazonSQS.", "sqs:");
    }
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .map_or_else(
            || match *method {
                Method::GET => "s3:GetObject".into(),
                Method::PUT => "s3:PutObject".into(),
                _ => "unknown".into(),
            },
            |a| format!("sqs:{a}"),
        )
}

/// The items and write units of a request, from one parse of its body.
fn tally(op: &str, body: &[u8]) -> (u64, u64) {
    let v = serde_json::from_slice::<Value>(body).ok();
    (
        items_in(op, v.as_ref()),
        write_units_in(op, v.as_ref(), body.len()),
    )
}

fn items_in(op: &str, v: Option<&Value>) -> u64 {
    let Some(v) = v else {
        return 1;
    };
    let per_table = |key: &str, inner: Option<&str>| {
        v[key].as_object().map_or(1, |m| {
            m.values()
                .filter_map(|t| match inner {
                    Some(k) => t[k].as_array(),
                    None => t.as_array(),
                })
                .map(|a| a.len() as u64)
                .sum()
        })
    };
    match op {
        "dynamodb:TransactWriteItems" | "dynamodb:TransactGetItems" => {
            v["TransactItems"].as_array().map_or(1, |a| a.len() as u64)
        }
        "dynamodb:BatchWriteItem" => per_table("RequestItems", None),
        "dynamodb:BatchGetItem" => per_table("RequestItems", Some("Keys")),
        "sqs:SendMessageBatch" | "sqs:DeleteMessageBatch" => {
            v["Entries"].as_array().map_or(1, |a| a.len() as u64)
        }
        _ => 1,
    }
}

/// The size DynamoDB counts for an attribute value (DynamoDB JSON), near enough: strings
/// and binaries by their bytes, numbers by about half their digits, containers with 3 bytes
/// of overhead and 1 per element.
fn value_size(v: &Value) -> u64 {
    let Some((t, x)) = v.as_object().and_then(|m| m.iter().next()) else {
        return 1;
    };
    match (t.as_str(), x) {
        ("S", Value::String(s)) => s.len() as u64,
        ("N", Value::String(n)) => n.len() as u64 / 2 + 1,
        ("B", Value::String(b)) => b.len() as u64 * 3 / 4,
        ("SS" | "NS" | "BS", Value::Array(a)) => a
            .iter()
            .map(|e| e.as_str().map_or(1, |s| s.len() as u64))
            .sum(),
        ("M", Value::Object(m)) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() as u64 + value_size(v) + 1)
                .sum::<u64>()
        }
        ("L", Value::Array(a)) => 3 + a.iter().map(|v| value_size(v) + 1).sum::<u64>(),
        _ => 1,
    }
}

/// Write units of putting `item` (DynamoDB JSON): one per started KB.
fn put_units(item: &Value) -> u64 {
    let size: u64 = item.as_object().map_or(0, |m| {
        m.iter().map(|(k, v)| k.len() as u64 + value_size(v)).sum()
    });
    size.div_ceil(1024).max(1)
}

/// The write request units of a DynamoDB write: each put item by its size; a delete, 1 (the
/// deleted item's size is not in the request); an update, its request's size in KB (the
/// updated item is not in the request: an estimate); a transaction's writes twice.
fn write_units_in(op: &str, v: Option<&Value>, body_len: usize) -> u64 {
    let Some(v) = v else {
        return 0;
    };
    let by_request = (body_len as u64).div_ceil(1024).max(1);
    match op {
        "dynamodb:PutItem" => put_units(&v["Item"]),
        "dynamodb:UpdateItem" => by_request,
        "dynamodb:DeleteItem" => 1,
        "dynamodb:BatchWriteItem" => v["RequestItems"].as_object().map_or(0, |m| {
            m.values()
                .filter_map(Value::as_array)
                .flatten()
                .map(|r| {
                    if r["PutRequest"].is_object() {
                        put_units(&r["PutRequest"]["Item"])
                    } else {
                        1
                    }
                })
                .sum()
        }),
        "dynamodb:TransactWriteItems" => v["TransactItems"].as_array().map_or(0, |a| {
            a.iter()
                .map(|t| {
                    2 * if t["Put"].is_object() {
                        put_units(&t["Put"]["Item"])
                    } else if t["Update"].is_object() {
                        serde_json::to_vec(&t["Update"])
                            .map_or(1, |b| (b.len() as u64).div_ceil(1024).max(1))
                    } else {
                        1
                    }
                })
                .sum()
        }),
        _ => 0,
    }
}

async fn forward(
    State(s): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = operation(&method, &headers, &body);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = s.http.request(method, format!("{}{path}", s.upstream));
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let started = Instant::now();
    // The body is tallied while moto answers, not after: the proxy adds no parse to the
    // request's path.
    let (sent, (items, write_units)) =
        tokio::join!(req.body(body.clone()).send(), async { tally(&op, &body) });
    let Ok(res) = sent else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = res.status();
    let res_headers = res.headers().clone();
    let bytes = res.bytes().await.unwrap_or_default();
    let took = started.elapsed();
    {
        let mut counts = s.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let c = counts.entry(op.clone()).or_default();
        c.requests += 1;
        c.req_bytes += body.len() as u64;
        c.resp_bytes += bytes.len() as u64;
        c.items += items;
        c.write_units += write_units;
        c.upstream_us += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if op == "sqs:ReceiveMessage" && bytes.windows(10).any(|w| w == b"\"Messages\"") {
            c.non_empty += 1;
        }
    }
    let mut out = Response::builder().status(status.as_u16());
    for (k, v) in &res_headers {
        if k != "content-length" && k != "transfer-encoding" {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    out.body(axum::body::Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

impl CountingProxy {
    /// Starts a proxy to `upstream` (moto's endpoint) on a free loopback port, served by a
    /// task of the current runtime. Panics when no port can be bound (tests only).
    pub async fn start(upstream: &str) -> CountingProxy {
        let counts = Counts::default();
        let http = match reqwest::Client::builder().no_proxy().build() {
            Ok(h) => h,
            Err(e) => panic!("cannot build the proxy's HTTP client: {e}"),
        };
        let state = ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http,
            counts: counts.clone(),
        };
        let listener = match tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await {
            Ok(l) => l,
            Err(e) => panic!("cannot bind a loopback port for the proxy: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("the proxy's port has no address: {e}"),
        };
        // As large a body as any AWS request: a BatchWriteItem carries up to 16 MB (axum's
        // default stops at 2 MB).
        let app = Router::new()
            .fallback(forward)
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        CountingProxy {
            endpoint: format!("http://{addr}"),
            counts,
        }
    }

    /// The counts so far, by operation.
    pub fn snapshot(&self) -> BTreeMap<String, OpCount> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `now - before` by operation, as JSON (`{op: {requests, req_bytes, resp_bytes, items,
/// non_empty, write_units, upstream_ms}}`), leaving out operations with no request in between.
pub fn diff(now: &BTreeMap<String, OpCount>, before: &BTreeMap<String, OpCount>) -> Value {
    let mut out = serde_json::Map::new();
    for (op, c) in now {
        let d = c.minus(&before.get(op).copied().unwrap_or_default());
        if d.requests > 0 {
            out.insert(
                op.clone(),
                json!({"requests": d.requests, "req_bytes": d.req_bytes, "resp_bytes": d.resp_bytes,
                       "items": d.items, "non_empty": d.non_empty, "write_units": d.write_units,
                       "upstream_ms": d.upstream_us as f64 / 1e3}),
            );
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_units_follow_the_size_of_each_item_written() {
        let small = json!({"pk": {"S": "A"}, "sk": {"S": "B"}, "n": {"N": "12345"}});
        let big = json!({"pk": {"S": "A"}, "doc": {"S": "x".repeat(2_500)}});
        let body = json!({"RequestItems": {"t": [
            {"PutRequest": {"Item": small}}, {"PutRequest": {"Item": big}},
            {"DeleteRequest": {"Key": {"pk": {"S": "A"}}}}]}});
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(tally("dynamodb:BatchWriteItem", &bytes), (3, 1 + 3 + 1));
        let put = serde_json::to_vec(&json!({"Item": {"doc": {"S": "y".repeat(1_024)}}})).unwrap();
        assert_eq!(tally("dynamodb:PutItem", &put), (1, 2));
        assert_eq!(tally("sqs:SendMessage", b"{}"), (1, 0));
        let tx = json!({"TransactItems": [{"Put": {"Item": small}}, {"ConditionCheck": {}}]});
        let tx = serde_json::to_vec(&tx).unwrap();
        assert_eq!(tally("dynamodb:TransactWriteItems", &tx), (2, 2 + 2));
    }
}
