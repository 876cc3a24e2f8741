//! End to end on the local stack, and the AWS requests each path makes (issue 5, items 3 and
//! 4), run by `scripts/e2e_cost.sh` (part of `make bench`), which prices them and writes
//! docs/benchmarks.md.
//!
//! The real binaries (webhook-receive, inbound-processor, read-api, send-api, deliver-worker)
//! run behind wa-emulator's Runtime API and a [`TestGateway`], the SQS queues feed the two
//! workers through [`SqsEventSource`] (standing in for Lambda's event source mapping), and a
//! `wa-sandbox` answers the Graph API and posts the `sent`, `delivered` and `read` webhooks
//! back. Each function's AWS SDK talks to moto through its **own counting proxy** (one port per
//! function, one for the event-source pollers), which counts every request by operation with
//! its request and response bytes. The adapters' own counters (`wa_dynamodb::Metrics`,
//! `wa_sqs::Metrics`) live inside the Lambda processes and are not exported, so the proxy
//! counts the same requests on the wire (the SDK's retries included, which the adapters'
//! counters leave out).
//!
//! Phases, each counted separately (the counters are snapshotted between them):
//!
//! 1. **inbound**: `INBOUND` one-message webhooks from distinct customers, POSTed signed by
//!    `CONCURRENCY` clients at once: acknowledgement latency per POST; then every message is
//!    waited for in `GET /v1/conversations` (polls not counted: read-api is left out of the
//!    inbound path's requests).
//! 2. **visible**: `VISIBLE` webhooks one at a time, each polled for every 5 ms in
//!    `GET /v1/conversations` until it is there: webhook → visible time.
//! 3. **outbound**: `OUTBOUND` text sends to customers whose window the inbound phase opened,
//!    each waited for until `read` (its three status webhooks were received and applied).
//! 4. **units**: `UNITS` more inbound messages and sends (to new customers), with every
//!    DynamoDB request's capacity units measured by the proxies (table and index, from the
//!    items before and after each write; see `counting_proxy`), apart from the timed phases
//!    because the measuring reads slow them.
//! 5. **handler**: webhook-receive invoked directly on the same signed event, against moto and
//!    against a fake SQS with no latency (`FakeSqs`): how much of an acknowledgement is moto's.
//!
//! Prints `E2E_JSON {…}` for the script. Needs moto (`scripts/with-moto.sh`) and the binaries
//! (`VENTANA_E2E_PROFILE`, which the script sets; without it the test returns at once, since
//! `make test` runs ignored tests too).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test file: helpers panic with the reason

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wa_domain::auth::hash_key;
use wa_domain::ports::{ApiKeyStore, KeyScope};
use wa_emulator::sqs::SqsEventSource;
use wa_emulator::{FunctionConfig, FunctionPool, Invocation, Output};
use wa_sandbox::{Sandbox, SandboxConfig};
use wa_tests::counting_proxy::{CountingProxy as Proxy, OpCount, UnitsSchema, diff};
use wa_tests::{
    FakeSqs, TestGateway, bin_path_in, config_for, fresh_inbound_queue, fresh_outbound_queue,
    fresh_table, moto_endpoint,
};

const PNID: &str = "106540352242922";
const WABA: &str = "102290129340398";
const APP_SECRET: &str = "e2e-app-secret";
const GRAPH_TOKEN: &str = "e2e-graph-token";
const API_KEY: &str = "e2e-api-key";

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn stats(mut xs: Vec<f64>) -> Value {
    xs.sort_by(f64::total_cmp);
    json!({"n": xs.len(), "p50": percentile(&xs, 0.5), "p99": percentile(&xs, 0.99),
           "max": xs.last().copied().unwrap_or(f64::NAN),
           "mean": xs.iter().sum::<f64>() / xs.len().max(1) as f64})
}

/// The first customer of the units phase: after every other phase's.
const UNITS_CUSTOMERS: usize = 9_000;

fn customer(i: usize) -> String {
    format!("1650777{i:04}")
}

fn inbound_body(i: usize, tag: &str) -> String {
    let now = wa_domain::clock::unix_now();
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001234", "phone_number_id": PNID},
            "contacts": [{"profile": {"name": "Bench Customer"}, "wa_id": customer(i)}],
            "messages": [{"from": customer(i), "id": format!("wamid.E2E.{tag}.{i}"),
                "timestamp": now.to_string(), "type": "text",
                "text": {"body": "Hello, is my order on its way?"}}]
        }}]}]
    })
    .to_string()
}

fn apigw_event(body: &str) -> Value {
    json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": {"content-type": "application/json",
                    "x-hub-signature-256": wa_domain::signature::sign(APP_SECRET, body.as_bytes())},
        "requestContext": {"accountId": "123456789012", "apiId": "local", "domainName": "localhost",
            "http": {"method": "POST", "path": "/webhook", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "e2e"},
            "requestId": "e2e", "routeKey": "POST /webhook", "stage": "$default",
            "time": "23/Nov/2026:10:00:00 +0000", "timeEpoch": 1795428000000_u64},
        "body": body, "isBase64Encoded": false
    })
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn post_webhook(&self, body: String) -> (u16, f64) {
        let sig = wa_domain::signature::sign(APP_SECRET, body.as_bytes());
        let t = Instant::now();
        let res = self
            .http
            .post(format!("{}/webhook", self.base))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let _ = res.bytes().await;
        (status, t.elapsed().as_secs_f64() * 1e3)
    }

    /// Sends a text to `to` through send-api; the send's id.
    async fn send_text(&self, to: &str) -> String {
        let body = json!({"messaging_product": "whatsapp", "recipient_type": "individual",
            "to": format!("+{to}"), "type": "text",
            "text": {"preview_url": false, "body": "Yes, it ships today."}});
        let res = self
            .http
            .post(format!("{}/v25.0/{PNID}/messages", self.base))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let v: Value = res.json().await.unwrap();
        v["messages"][0]["id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap_or_default())
    }

    /// Polls every `every` until `path`'s body contains `needle`; false after `secs`.
    async fn until(&self, path: &str, needle: &str, every: Duration, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            let (status, body) = self.get(path).await;
            if status == 200 && body.contains(needle) {
                return true;
            }
            tokio::time::sleep(every).await;
        }
        false
    }
}

async fn pool(name: &str, profile: &str, env: &[(&str, String)], aws: &str) -> FunctionPool {
    let config = FunctionConfig::new(name, bin_path_in(profile, name))
        .envs(env.iter().map(|(k, v)| (*k, v.clone())))
        .env("AWS_ENDPOINT_URL", aws)
        .env("RUST_LOG", "warn")
        .output(Output::Null);
    let pool = FunctionPool::spawn(config).await.expect("function starts");
    pool.wait_ready(Duration::from_secs(30))
        .await
        .expect("ready");
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/e2e_cost.sh (needs moto and the binaries)"]
async fn end_to_end_latency_and_aws_requests_per_path() {
    // `make test` runs ignored tests too: this benchmark runs only when its script asks.
    let Ok(profile) = std::env::var("VENTANA_E2E_PROFILE") else {
        eprintln!("skipped: a benchmark run by scripts/e2e_cost.sh (VENTANA_E2E_PROFILE unset)");
        return;
    };
    let n_inbound = knob("VENTANA_E2E_INBOUND", 200);
    let concurrency = knob("VENTANA_E2E_CONCURRENCY", 16);
    let n_visible = knob("VENTANA_E2E_VISIBLE", 30);
    let n_outbound = knob("VENTANA_E2E_OUTBOUND", 30);
    let n_handler = knob("VENTANA_E2E_HANDLER", 300);
    let n_units = knob("VENTANA_E2E_UNITS", 20);

    let (store, _, table) = fresh_table().await;
    let inbound = fresh_inbound_queue().await;
    let outbound = fresh_outbound_queue().await;
    store
        .put_key(
            &hash_key(API_KEY),
            &KeyScope::Numbers(vec![PNID.into()]),
            "e2e bench",
        )
        .await
        .unwrap();

    let moto = moto_endpoint();
    let mut proxies = BTreeMap::new();
    for name in [
        "webhook-receive",
        "inbound-processor",
        "read-api",
        "send-api",
        "deliver-worker",
        "event-source-mapping",
    ] {
        proxies.insert(name, Proxy::start(&moto).await);
    }
    let mut env: Vec<(&str, String)> = vec![
        ("VENTANA_TABLE_NAME", table),
        ("INBOUND_QUEUE_URL", inbound.url.clone()),
        ("OUTBOUND_QUEUE_URL", outbound.url.clone()),
        ("OUTBOUND_DLQ_URL", outbound.dlq_url.clone()),
        ("WHATSAPP_APP_SECRET", APP_SECRET.into()),
        ("WHATSAPP_VERIFY_TOKEN", "e2e-verify-token".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ];
    let receive = pool(
        "webhook-receive",
        &profile,
        &env,
        &proxies["webhook-receive"].endpoint,
    )
    .await;
    let processor = pool(
        "inbound-processor",
        &profile,
        &env,
        &proxies["inbound-processor"].endpoint,
    )
    .await;
    let send = pool("send-api", &profile, &env, &proxies["send-api"].endpoint).await;
    let read = pool("read-api", &profile, &env, &proxies["read-api"].endpoint).await;
    let gateway = TestGateway::start(&[
        ("POST /webhook", receive.runtime()),
        ("POST /{version}/{phone_number_id}/messages", send.runtime()),
        ("GET /v1/messages/{id}", read.runtime()),
        (
            "GET /v1/conversations/{phone_number_id}/{customer}",
            read.runtime(),
        ),
    ])
    .await;
    let sandbox = Sandbox::start(SandboxConfig {
        access_token: GRAPH_TOKEN.into(),
        app_secret: APP_SECRET.into(),
        waba_id: WABA.into(),
        webhook_url: Some(format!("{}/webhook", gateway.url())),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    env.extend([
        ("GRAPH_API_BASE_URL", sandbox.url().to_owned()),
        ("WHATSAPP_ACCESS_TOKEN", GRAPH_TOKEN.into()),
    ]);
    let deliver = pool(
        "deliver-worker",
        &profile,
        &env,
        &proxies["deliver-worker"].endpoint,
    )
    .await;

    let esm_sqs =
        aws_sdk_sqs::Client::new(&config_for(&proxies["event-source-mapping"].endpoint).await);
    let cancel = CancellationToken::new();
    let inbound_source =
        SqsEventSource::new(esm_sqs.clone(), &inbound.url, processor.runtime().clone());
    let inbound_stats = inbound_source.stats();
    let outbound_source =
        SqsEventSource::new(esm_sqs.clone(), &outbound.url, deliver.runtime().clone());
    let outbound_stats = outbound_source.stats();
    let _pollers = [
        inbound_source.spawn(cancel.clone()),
        outbound_source.spawn(cancel.clone()),
    ];

    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
        base: gateway.url().to_owned(),
    });
    let snapshot =
        |proxies: &BTreeMap<&str, Proxy>| -> BTreeMap<String, BTreeMap<String, OpCount>> {
            proxies
                .iter()
                .map(|(k, p)| ((*k).to_owned(), p.snapshot()))
                .collect()
        };
    let phase_diff = |now: &BTreeMap<String, BTreeMap<String, OpCount>>,
                      before: &BTreeMap<String, BTreeMap<String, OpCount>>| {
        let mut out = serde_json::Map::new();
        for (k, v) in now {
            let empty = BTreeMap::new();
            out.insert(k.clone(), diff(v, before.get(k).unwrap_or(&empty)));
        }
        Value::Object(out)
    };

    // 1. inbound under load.
    let before = snapshot(&proxies);
    let esm_before = (inbound_stats.get(), outbound_stats.get());
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n_inbound {
                    return lat;
                }
                let (status, ms) = client.post_webhook(inbound_body(i, "load")).await;
                assert_eq!(status, 200);
                lat.push(ms);
            }
        }));
    }
    let mut ack = Vec::new();
    for t in tasks {
        ack.extend(t.await.unwrap());
    }
    let load_secs = started.elapsed().as_secs_f64();
    let read_before = proxies["read-api"].snapshot();
    for i in 0..n_inbound {
        let path = format!("/v1/conversations/{PNID}/{}", customer(i));
        assert!(
            client
                .until(
                    &path,
                    &format!("wamid.E2E.load.{i}"),
                    Duration::from_millis(50),
                    120
                )
                .await,
            "inbound message {i} never visible"
        );
    }
    let all_visible_secs = started.elapsed().as_secs_f64();
    let mut inbound_counts = phase_diff(&snapshot(&proxies), &before);
    // The visibility polls are the test's, not the inbound path's.
    inbound_counts["read-api"] = diff(&proxies["read-api"].snapshot(), &read_before);
    let inbound_esm = (inbound_stats.get(), outbound_stats.get());
    let reads_polled = inbound_counts["read-api"].clone();
    inbound_counts.as_object_mut().unwrap().remove("read-api");

    // 2. webhook → visible, one at a time.
    let mut visible = Vec::new();
    for i in 0..n_visible {
        let t = Instant::now();
        let (status, _) = client.post_webhook(inbound_body(i, "vis")).await;
        assert_eq!(status, 200);
        let path = format!("/v1/conversations/{PNID}/{}", customer(i));
        assert!(
            client
                .until(
                    &path,
                    &format!("wamid.E2E.vis.{i}"),
                    Duration::from_millis(5),
                    60
                )
                .await
        );
        visible.push(t.elapsed().as_secs_f64() * 1e3);
    }

    // 3. outbound: sends to customers whose window is open, each until read.
    let before_out = snapshot(&proxies);
    let esm_before_out = (inbound_stats.get(), outbound_stats.get());
    let webhooks_before = sandbox.counters();
    let read_before = proxies["read-api"].snapshot();
    let mut ids = Vec::new();
    let mut send_ms = Vec::new();
    for i in 0..n_outbound {
        let t = Instant::now();
        ids.push(client.send_text(&customer(i)).await);
        send_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    for id in &ids {
        assert!(
            client
                .until(
                    &format!("/v1/messages/{id}"),
                    "\"read\"",
                    Duration::from_millis(50),
                    120
                )
                .await,
            "{id} never read"
        );
    }
    // Let the last status webhooks' events settle (read is applied last, others may trail).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let webhooks = sandbox.counters();
    let mut outbound_counts = phase_diff(&snapshot(&proxies), &before_out);
    outbound_counts["read-api"] = diff(&proxies["read-api"].snapshot(), &read_before);
    let outbound_reads_polled = outbound_counts["read-api"].clone();
    outbound_counts.as_object_mut().unwrap().remove("read-api");
    let outbound_esm = (inbound_stats.get(), outbound_stats.get());

    // 4. capacity units: a few more inbound messages and sends, each DynamoDB request
    // measured by the proxies (which read every written item before and after: slower, so
    // apart from the timed phases above).
    let schema = UnitsSchema {
        key: ["pk", "sk"],
        indexes: vec![["gsi1pk", "gsi1sk"]],
    };
    for p in proxies.values() {
        p.measure_units(Some(schema.clone()));
    }
    let before_units = snapshot(&proxies);
    let first = UNITS_CUSTOMERS;
    for i in first..first + n_units {
        let (status, _) = client.post_webhook(inbound_body(i, "units")).await;
        assert_eq!(status, 200);
    }
    for i in first..first + n_units {
        let path = format!("/v1/conversations/{PNID}/{}", customer(i));
        let wamid = format!("wamid.E2E.units.{i}");
        assert!(
            client
                .until(&path, &wamid, Duration::from_millis(50), 120)
                .await
        );
    }
    let mut units_inbound = phase_diff(&snapshot(&proxies), &before_units);
    units_inbound.as_object_mut().unwrap().remove("read-api");
    let before_units = snapshot(&proxies);
    let mut unit_ids = Vec::new();
    for i in first..first + n_units {
        unit_ids.push(client.send_text(&customer(i)).await);
    }
    for id in &unit_ids {
        let path = format!("/v1/messages/{id}");
        assert!(
            client
                .until(&path, "\"read\"", Duration::from_millis(50), 120)
                .await
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut units_outbound = phase_diff(&snapshot(&proxies), &before_units);
    units_outbound.as_object_mut().unwrap().remove("read-api");
    for p in proxies.values() {
        p.measure_units(None);
    }
    for phase in [&units_inbound, &units_outbound] {
        let failures: u64 = phase
            .as_object()
            .unwrap()
            .values()
            .flat_map(|ops| ops.as_object().unwrap().values())
            .map(|c| c["measure_failures"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(failures, 0, "measuring reads failed: units unknown");
    }
    cancel.cancel();

    // 5. the handler's own work: webhook-receive invoked directly, moto vs a fake SQS.
    let body = inbound_body(0, "handler");
    let ev = apigw_event(&body);
    let mut direct_moto = Vec::new();
    for _ in 0..n_handler {
        let t = Instant::now();
        let answer = receive.invoke(&ev, Duration::from_secs(30)).await.unwrap();
        direct_moto.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(matches!(answer, Invocation::Response(_)));
    }
    let fake = FakeSqs::start(Duration::ZERO).await;
    let fake_env: Vec<(&str, String)> = env
        .iter()
        .map(|(k, v)| {
            if *k == "INBOUND_QUEUE_URL" {
                (*k, format!("{}/123456789012/e2e.fifo", fake.endpoint))
            } else {
                (*k, v.clone())
            }
        })
        .collect();
    let receive_fake = pool("webhook-receive", &profile, &fake_env, &fake.endpoint).await;
    let mut direct_fake = Vec::new();
    for _ in 0..n_handler {
        let t = Instant::now();
        let answer = receive_fake
            .invoke(&ev, Duration::from_secs(30))
            .await
            .unwrap();
        direct_fake.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(matches!(answer, Invocation::Response(_)));
    }

    // inbound-processor's own duration on a representative batch (events/inbound-processor/
    // batch.json: a message, a status and a template update), against moto.
    let batch: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../events/inbound-processor/batch.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let batch_records = batch["Records"].as_array().map_or(1, Vec::len);
    let mut direct_processor = Vec::new();
    for _ in 0..n_handler / 3 {
        let t = Instant::now();
        let answer = processor
            .invoke(&batch, Duration::from_secs(30))
            .await
            .unwrap();
        direct_processor.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(matches!(answer, Invocation::Response(_)));
    }

    let esm = |a: (wa_emulator::sqs::PollerStats, wa_emulator::sqs::PollerStats),
               b: (wa_emulator::sqs::PollerStats, wa_emulator::sqs::PollerStats)| {
        json!({"inbound_batches": b.0.batches - a.0.batches, "inbound_messages": b.0.received - a.0.received,
               "outbound_batches": b.1.batches - a.1.batches, "outbound_messages": b.1.received - a.1.received})
    };
    let report = json!({
        "profile": profile,
        "inbound": {"webhooks": n_inbound, "concurrency": concurrency, "load_secs": load_secs,
                    "all_visible_secs": all_visible_secs,
                    "ack_ms": stats(ack), "aws": inbound_counts,
                    "event_source": esm(esm_before, inbound_esm),
                    "read_api_polls": reads_polled},
        "visible": {"ms": stats(visible)},
        "outbound": {"sends": n_outbound, "send_ms": stats(send_ms), "aws": outbound_counts,
                     "event_source": esm(esm_before_out, outbound_esm),
                     "status_webhooks": webhooks.webhooks_delivered - webhooks_before.webhooks_delivered,
                     "graph_requests": webhooks.requests - webhooks_before.requests,
                     "read_api_polls": outbound_reads_polled},
        "units": {"inbound": {"messages": n_units, "aws": units_inbound},
                  "outbound": {"sends": n_units, "aws": units_outbound}},
        "handler": {"invocations": n_handler, "moto_ms": stats(direct_moto), "fake_sqs_ms": stats(direct_fake),
                    "processor_batch_records": batch_records, "processor_moto_ms": stats(direct_processor)},
    });
    println!("E2E_JSON {report}");
}
