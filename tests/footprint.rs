//! The footprint of the real `webhook-receive` binary: its peak resident memory (VmHWM) after
//! handling about 25,000 events in webhooks of 1, 1,000 and ~3 MB of updates, through the fake
//! Lambda Runtime API, with a fake SQS endpoint taking the events (moto would take minutes to
//! accept that many FIFO messages; DynamoDB is not touched on this path).
//!
//! Target (issue 2): under 30 MB for the release binary that Lambda runs
//! (`VENTANA_FOOTPRINT_PROFILE=release`, after `cargo build --release -p webhook-receive`).
//! The debug binary maps about 20 MB more code and debug-mode allocations, so `make test`
//! (debug) holds it to 48 MB as a regression guard. Prints the measured figures.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test file: helpers panic with the reason

use std::time::Duration;

use serde_json::{Value, json};
use wa_emulator::{FunctionConfig, FunctionPool, Invocation};
use wa_tests::{FakeSqs, bin_path_in};

const SECRET: &str = "footprint-secret";

fn webhook(messages: usize, first: usize, pad: usize) -> Vec<u8> {
    let text = "x".repeat(pad);
    let msgs: Vec<String> = (first..first + messages)
        .map(|i| {
            format!(
                r#"{{"from":"1555{i:07}","id":"wamid.F{i}","timestamp":"1795420800","type":"text","text":{{"body":"{text}"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"W","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"messages":[{}]}}}}]}}]}}"#,
        msgs.join(",")
    )
    .into_bytes()
}

fn event(body: &[u8]) -> Value {
    json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-hub-signature-256": wa_domain::signature::sign(SECRET, body)},
        "requestContext": {"accountId": "123456789012", "apiId": "local", "domainName": "localhost",
            "http": {"method": "POST", "path": "/webhook", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "footprint"},
            "requestId": "footprint", "routeKey": "POST /webhook", "stage": "$default",
            "time": "23/Nov/2026:10:00:00 +0000", "timeEpoch": 1795428000000_u64},
        "body": String::from_utf8(body.to_vec()).unwrap(), "isBase64Encoded": false
    })
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test]
#[ignore = "needs the debug binaries (make test)"]
async fn webhook_receive_peak_rss_stays_bounded() {
    let profile = std::env::var("VENTANA_FOOTPRINT_PROFILE").unwrap_or_else(|_| "debug".into());
    let limit_mib = if profile == "release" { 30 } else { 48 };
    let sqs = FakeSqs::start(Duration::ZERO).await;
    let config = FunctionConfig::new("webhook-receive", bin_path_in(&profile, "webhook-receive"))
        .env("WHATSAPP_APP_SECRET", SECRET)
        .env("VENTANA_TABLE_NAME", "unused")
        .env(
            "INBOUND_QUEUE_URL",
            format!("{}/123456789012/footprint.fifo", sqs.endpoint),
        )
        .env("AWS_ENDPOINT_URL", &sqs.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn");
    let pool = FunctionPool::spawn(config).await.unwrap();
    pool.wait_ready(Duration::from_secs(30)).await.unwrap();
    let pid = pool.processes()[0].pid.expect("the process is running");

    let mut expected = 0;
    let mut next = 0;
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for _ in 0..500 {
        bodies.push(webhook(1, next, 30));
        next += 1;
    }
    for _ in 0..20 {
        bodies.push(webhook(1000, next, 30));
        next += 1000;
    }
    // ~3 MB each: 2,300 messages with 1.2 KB bodies.
    for _ in 0..2 {
        let body = webhook(2300, next, 1200);
        assert!(
            body.len() <= wa_domain::webhook::MAX_WEBHOOK_BYTES,
            "{} bytes",
            body.len()
        );
        bodies.push(body);
        next += 2300;
    }
    let after_init = peak_rss_kib(pid);
    for body in &bodies {
        let answer = pool
            .invoke(&event(body), Duration::from_secs(60))
            .await
            .unwrap();
        let Invocation::Response(res) = answer else {
            panic!("function error: {answer:?}")
        };
        assert_eq!(res["statusCode"], 200, "{res}");
        expected = next;
    }
    assert_eq!(sqs.messages().len(), expected, "every event queued once");
    let kib = peak_rss_kib(pid);
    println!(
        "footprint: webhook-receive ({profile} build) peak RSS {:.1} MiB after init, {:.1} MiB after {} webhooks / {} events (limit {limit_mib} MiB)",
        after_init as f64 / 1024.0,
        kib as f64 / 1024.0,
        bodies.len(),
        expected
    );
    assert!(
        kib < limit_mib * 1024,
        "peak RSS {kib} KiB is over {limit_mib} MiB"
    );
}
