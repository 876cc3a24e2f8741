//! A counting proxy in front of moto: every AWS request made through it is forwarded to the
//! upstream and counted by operation (`dynamodb:PutItem`, `sqs:SendMessageBatch`, …) with its
//! request and response bytes, the items it carries and the time the upstream took to
//! answer. Point an SDK at [`CountingProxy::endpoint`] (`config_for`) to count its requests
//! on the wire (the SDK's retries included). Used by `tests/e2e_cost.rs` and
//! `tests/broadcast_scale.rs`.
//!
//! Asked to ([`CountingProxy::measure_units`]), it also measures DynamoDB's capacity units
//! as DynamoDB bills them (moto answers fixed `ConsumedCapacity` values, so they are worked
//! out here): each written item is read (consistently) before and after the write, and the
//! write costs one unit per started KB of the larger of the two in the table (twice in a
//! transaction), plus, for each global secondary index (projection ALL) the item is or was
//! in, one unit per KB of each index entry put or deleted when the item changed. Reads cost
//! half a unit (a whole one when consistent) per started 4 KB of the items returned, per
//! item for BatchGetItem. The extra reads slow the requests measured, so measure only where
//! no latency is being timed; a write racing another on the same item may be charged for
//! both changes. A measuring read that fails is counted (`measure_failures`), never guessed.

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
    /// Requests whose capacity units were measured (see [`CountingProxy::measure_units`]).
    pub measured: u64,
    /// Measured write units of the table's items.
    pub table_write_units: u64,
    /// Measured write units of the index entries.
    pub index_write_units: u64,
    /// Measured read units, in halves (an eventually consistent read of ≤ 4 KB is 1).
    pub read_half_units: u64,
    /// Measuring reads (the items before and after a write) that got no answer.
    pub measure_failures: u64,
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
            measured: self.measured - before.measured,
            table_write_units: self.table_write_units - before.table_write_units,
            index_write_units: self.index_write_units - before.index_write_units,
            read_half_units: self.read_half_units - before.read_half_units,
            measure_failures: self.measure_failures - before.measure_failures,
        }
    }
}

/// The largest request the proxy forwards: DynamoDB's BatchWriteItem limit (16 MB), and
/// room for its JSON.
const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

type Counts = Arc<Mutex<BTreeMap<String, OpCount>>>;

/// The key attributes of a table and of its global secondary indexes, for measuring units.
#[derive(Debug, Clone)]
pub struct UnitsSchema {
    /// The table's key attributes (partition, sort).
    pub key: [&'static str; 2],
    /// Each global secondary index's key attributes (partition, sort); projection ALL.
    pub indexes: Vec<[&'static str; 2]>,
}

type Measuring = Arc<Mutex<Option<UnitsSchema>>>;

/// The proxy: listening on a loopback port until the runtime ends.
pub struct CountingProxy {
    /// `http://127.0.0.1:{port}`.
    pub endpoint: String,
    counts: Counts,
    measuring: Measuring,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    counts: Counts,
    measuring: Measuring,
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
    kb_units(item_size(item))
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

/// The size DynamoDB counts for an item (DynamoDB JSON): its attribute names and values.
fn item_size(item: &Value) -> u64 {
    item.as_object().map_or(0, |m| {
        m.iter().map(|(k, v)| k.len() as u64 + value_size(v)).sum()
    })
}

/// One item a write touches: its table, its key, and 2 in a transaction (else 1).
#[derive(Debug, PartialEq)]
struct Touched {
    table: String,
    key: Value,
    factor: u64,
}

/// The items a DynamoDB write touches, keyed by `schema.key`; empty for other operations.
fn touched(op: &str, v: &Value, schema: &UnitsSchema) -> Vec<Touched> {
    let key_of = |item: &Value| {
        Value::Object(
            schema
                .key
                .iter()
                .filter_map(|k| item.get(*k).map(|x| ((*k).to_owned(), x.clone())))
                .collect(),
        )
    };
    let one = |table: &Value, key: Value, factor| Touched {
        table: table.as_str().unwrap_or_default().to_owned(),
        key,
        factor,
    };
    match op {
        "dynamodb:PutItem" => vec![one(&v["TableName"], key_of(&v["Item"]), 1)],
        "dynamodb:UpdateItem" | "dynamodb:DeleteItem" => {
            vec![one(&v["TableName"], v["Key"].clone(), 1)]
        }
        "dynamodb:BatchWriteItem" => v["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(table, reqs)| {
                reqs.as_array().into_iter().flatten().map(move |r| {
                    let key = if r["PutRequest"].is_object() {
                        key_of(&r["PutRequest"]["Item"])
                    } else {
                        r["DeleteRequest"]["Key"].clone()
                    };
                    Touched {
                        table: table.clone(),
                        key,
                        factor: 1,
                    }
                })
            })
            .collect(),
        "dynamodb:TransactWriteItems" => v["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let (kind, w) = t.as_object()?.iter().next()?;
                let key = if kind == "Put" {
                    key_of(&w["Item"])
                } else {
                    w["Key"].clone()
                };
                Some(one(&w["TableName"], key, 2))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One unit per started KB, at least one.
fn kb_units(size: u64) -> u64 {
    size.div_ceil(1024).max(1)
}

/// The (table, index) write units of a write that found `before` and left `after`.
fn write_units_of(
    schema: &UnitsSchema,
    before: Option<&Value>,
    after: Option<&Value>,
    factor: u64,
) -> (u64, u64) {
    let size = |i: Option<&Value>| i.map_or(0, item_size);
    let (sb, sa) = (size(before), size(after));
    let table = kb_units(sb.max(sa)) * factor;
    if before == after {
        return (table, 0);
    }
    let index_key = |i: Option<&Value>, [h, r]: [&str; 2]| {
        let i = i?;
        Some((i.get(h)?.clone(), i.get(r)?.clone()))
    };
    let index = schema
        .indexes
        .iter()
        .map(|ix| match (index_key(before, *ix), index_key(after, *ix)) {
            (Some(b), Some(a)) if a == b => kb_units(sa),
            (Some(_), Some(_)) => kb_units(sb) + kb_units(sa),
            (Some(_), None) => kb_units(sb),
            (None, Some(_)) => kb_units(sa),
            (None, None) => 0,
        })
        .sum();
    (table, index)
}

/// Read units, in halves, of a DynamoDB read's answer `resp` to request `v`.
fn read_half_units_of(op: &str, v: &Value, resp: &Value) -> u64 {
    let per_4kb = |size: u64| size.div_ceil(4096).max(1);
    let times = |consistent: &Value| {
        if consistent.as_bool() == Some(true) {
            2
        } else {
            1
        }
    };
    match op {
        "dynamodb:GetItem" => per_4kb(item_size(&resp["Item"])) * times(&v["ConsistentRead"]),
        "dynamodb:Query" | "dynamodb:Scan" => {
            let total = resp["Items"]
                .as_array()
                .map_or(0, |a| a.iter().map(item_size).sum());
            per_4kb(total) * times(&v["ConsistentRead"])
        }
        "dynamodb:BatchGetItem" => resp["Responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(table, items)| {
                let t = times(&v["RequestItems"][table]["ConsistentRead"]);
                items
                    .as_array()
                    .map_or(0, |a| a.iter().map(|i| per_4kb(item_size(i)) * t).sum())
            })
            .sum(),
        "dynamodb:TransactGetItems" => resp["Responses"].as_array().map_or(0, |a| {
            a.iter().map(|r| per_4kb(item_size(&r["Item"])) * 4).sum()
        }),
        _ => 0,
    }
}

/// The items `touched` as they are upstream now (a consistent GetItem each, with the
/// request's own headers for the account and region), `None` where there is none; and how
/// many of the reads failed.
async fn current_items(
    s: &ProxyState,
    headers: &HeaderMap,
    touched: &[Touched],
) -> (Vec<Option<Value>>, u64) {
    let mut out = Vec::with_capacity(touched.len());
    let mut failed = 0;
    for t in touched {
        let mut req = s.http.post(format!("{}/", s.upstream));
        for (k, v) in headers {
            if k != "host" && k != "content-length" && k != "x-amz-target" {
                req = req.header(k, v);
            }
        }
        let body = json!({"TableName": t.table, "Key": t.key, "ConsistentRead": true});
        let item = match req
            .header("x-amz-target", "DynamoDB_20120810.GetItem")
            .body(body.to_string())
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
            _ => None,
        };
        if item.is_none() {
            failed += 1;
        }
        out.push(item.map(|v| v["Item"].clone()).filter(Value::is_object));
    }
    (out, failed)
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
    let schema = s
        .measuring
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .filter(|_| op.starts_with("dynamodb:"));
    let request = schema
        .as_ref()
        .and_then(|_| serde_json::from_slice::<Value>(&body).ok());
    let written = match (&schema, &request) {
        (Some(schema), Some(v)) => touched(&op, v, schema),
        _ => Vec::new(),
    };
    let (before, failed_before) = current_items(&s, &headers, &written).await;
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
    let (after, failed_after) = current_items(&s, &headers, &written).await;
    let (mut table_wu, mut index_wu) = (0, 0);
    if let Some(schema) = &schema {
        for ((t, b), a) in written.iter().zip(&before).zip(&after) {
            let (tw, iw) = write_units_of(schema, b.as_ref(), a.as_ref(), t.factor);
            table_wu += tw;
            index_wu += iw;
        }
    }
    let read_halves = match (&request, status.is_success()) {
        (Some(v), true) => serde_json::from_slice::<Value>(&bytes)
            .map_or(0, |resp| read_half_units_of(&op, v, &resp)),
        _ => 0,
    };
    {
        let mut counts = s.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let c = counts.entry(op.clone()).or_default();
        c.requests += 1;
        c.req_bytes += body.len() as u64;
        c.resp_bytes += bytes.len() as u64;
        c.items += items;
        c.write_units += write_units;
        c.upstream_us += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if schema.is_some() {
            c.measured += 1;
            c.table_write_units += table_wu;
            c.index_write_units += index_wu;
            c.read_half_units += read_halves;
            c.measure_failures += failed_before + failed_after;
        }
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
        let measuring = Measuring::default();
        let state = ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http,
            counts: counts.clone(),
            measuring: measuring.clone(),
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
            measuring,
        }
    }

    /// From now on, measures the capacity units of each DynamoDB request by `schema` (see the
    /// module's docs), or stops measuring (`None`).
    pub fn measure_units(&self, schema: Option<UnitsSchema>) {
        *self
            .measuring
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = schema;
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
/// non_empty, write_units, upstream_ms, measured, table_wru, index_wru, rru, measure_failures}}`), leaving out
/// operations with no request in between.
pub fn diff(now: &BTreeMap<String, OpCount>, before: &BTreeMap<String, OpCount>) -> Value {
    let mut out = serde_json::Map::new();
    for (op, c) in now {
        let d = c.minus(&before.get(op).copied().unwrap_or_default());
        if d.requests > 0 {
            out.insert(
                op.clone(),
                json!({"requests": d.requests, "req_bytes": d.req_bytes, "resp_bytes": d.resp_bytes,
                       "items": d.items, "non_empty": d.non_empty, "write_units": d.write_units,
                       "upstream_ms": d.upstream_us as f64 / 1e3, "measured": d.measured,
                       "table_wru": d.table_write_units, "index_wru": d.index_write_units,
                       "rru": d.read_half_units as f64 / 2.0,
                       "measure_failures": d.measure_failures}),
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

    fn schema() -> UnitsSchema {
        UnitsSchema {
            key: ["pk", "sk"],
            indexes: vec![["gsi1pk", "gsi1sk"]],
        }
    }

    #[test]
    fn measured_writes_cost_the_larger_item_and_every_index_entry_they_change() {
        let s = schema();
        let small = json!({"pk": {"S": "M"}, "sk": {"S": "M"}, "n": {"N": "1"}});
        let indexed = json!({"pk": {"S": "M"}, "sk": {"S": "M"}, "gsi1pk": {"S": "C"},
                             "gsi1sk": {"S": "1"}, "doc": {"S": "x".repeat(1_500)}});
        let mut moved = indexed.clone();
        moved["gsi1sk"] = json!({"S": "2"});
        let mut status = indexed.clone();
        status["st_read"] = json!({"N": "5"});
        // A new item outside any index; then one put into the index (2 KB: 2 + 2).
        assert_eq!(write_units_of(&s, None, Some(&small), 1), (1, 0));
        assert_eq!(write_units_of(&s, Some(&small), Some(&indexed), 1), (2, 2));
        // A change to an indexed item rewrites its entry; a moved entry is a delete and a put.
        assert_eq!(write_units_of(&s, Some(&indexed), Some(&status), 1), (2, 2));
        assert_eq!(write_units_of(&s, Some(&indexed), Some(&moved), 1), (2, 4));
        // Unchanged (a refused condition): the table's units only; a transaction's twice.
        assert_eq!(
            write_units_of(&s, Some(&indexed), Some(&indexed), 1),
            (2, 0)
        );
        assert_eq!(write_units_of(&s, None, Some(&small), 2), (2, 0));
        // A delete is sized by the item it deletes.
        assert_eq!(write_units_of(&s, Some(&indexed), None, 1), (2, 2));
    }

    #[test]
    fn touched_items_are_keyed_by_the_schema() {
        let s = schema();
        let put = json!({"TableName": "t", "Item": {"pk": {"S": "A"}, "sk": {"S": "B"}, "x": {"S": "y"}}});
        assert_eq!(
            touched("dynamodb:PutItem", &put, &s),
            vec![Touched {
                table: "t".into(),
                key: json!({"pk": {"S": "A"}, "sk": {"S": "B"}}),
                factor: 1
            }]
        );
        let batch = json!({"RequestItems": {"t": [
            {"PutRequest": {"Item": {"pk": {"S": "A"}, "sk": {"S": "B"}, "x": {"N": "1"}}}},
            {"DeleteRequest": {"Key": {"pk": {"S": "C"}, "sk": {"S": "D"}}}}]}});
        assert_eq!(touched("dynamodb:BatchWriteItem", &batch, &s).len(), 2);
        let tx = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "A"}, "sk": {"S": "B"}}}},
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "C"}, "sk": {"S": "D"}}}}]});
        let t = touched("dynamodb:TransactWriteItems", &tx, &s);
        assert_eq!(t.iter().map(|t| t.factor).collect::<Vec<_>>(), [2, 2]);
        assert!(touched("dynamodb:GetItem", &put, &s).is_empty());
    }

    #[test]
    fn measured_reads_cost_half_a_unit_per_4_kb_returned() {
        let big = json!({"doc": {"S": "x".repeat(5_000)}});
        let get = |consistent| json!({"ConsistentRead": consistent});
        assert_eq!(
            read_half_units_of("dynamodb:GetItem", &get(false), &json!({"Item": big})),
            2
        );
        assert_eq!(
            read_half_units_of("dynamodb:GetItem", &get(true), &json!({"Item": big})),
            4
        );
        // A miss still costs the least read.
        assert_eq!(
            read_half_units_of("dynamodb:GetItem", &get(false), &json!({})),
            1
        );
        let small = json!({"pk": {"S": "A"}});
        let items: Vec<Value> = (0..3).map(|_| big.clone()).collect();
        // A Query is sized by all it returns together; a batch by each item.
        assert_eq!(
            read_half_units_of("dynamodb:Query", &json!({}), &json!({"Items": items})),
            4
        );
        let resp = json!({"Responses": {"t": [big, small]}});
        assert_eq!(
            read_half_units_of("dynamodb:BatchGetItem", &json!({}), &resp),
            3
        );
        assert_eq!(read_half_units_of("sqs:SendMessage", &json!({}), &resp), 0);
    }
}
