//! Whole binaries, end to end: the real `webhook-verify`, `webhook-receive`,
//! `inbound-processor` and `read-api` processes, each behind a fake Lambda Runtime API
//! (wa-emulator), against moto. Webhooks go in through API Gateway v2 events, the inbound
//! queue feeds the processor through an SQS event source like AWS's, and the conversation
//! comes out of the read API.
//!
//! Needs moto (`AWS_ENDPOINT_URL`) and the debug binaries (`cargo build --workspace --bins`);
//! `make test` provides both.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test file: helpers panic with the reason

use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wa_domain::auth::hash_key;
use wa_domain::ports::{ApiKeyStore, ConversationReader, KeyScope};
use wa_domain::status::DeliveryStatus;
use wa_emulator::sqs::SqsEventSource;
use wa_emulator::{FunctionConfig, FunctionPool, Invocation};
use wa_tests::{bin_path, fixture, fresh_inbound_queue, fresh_table, moto_endpoint};

const INVOKE: Duration = Duration::from_secs(30);

async fn pool(name: &str, table: &str, queue_url: &str) -> FunctionPool {
    let config = FunctionConfig::new(name, bin_path(name))
        .env("VENTANA_TABLE_NAME", table)
        .env("INBOUND_QUEUE_URL", queue_url)
        .env("WHATSAPP_APP_SECRET", "test-app-secret")
        .env("WHATSAPP_VERIFY_TOKEN", "test-verify-token")
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "RUST_LOG",
            if std::env::var_os("TEST_LOG").is_some() {
                "debug"
            } else {
                "off"
            },
        );
    let pool = FunctionPool::spawn(config).await.expect("function starts");
    pool.wait_ready(Duration::from_secs(30))
        .await
        .expect("function finishes its init");
    pool
}

/// Invokes an HTTP function with a fixture and returns (status, body).
/// Feeds the queue to the processor through an SQS event source until `n` messages were
/// handled, then stops it: each handled once, none failed.
async fn drain(queue: &wa_tests::aws::FreshQueue, processor: &FunctionPool, n: u64) {
    let cancel = CancellationToken::new();
    let source = SqsEventSource::new(
        queue.client.clone(),
        &queue.url,
        processor.runtime().clone(),
    );
    let stats = source.stats();
    let task = source.spawn(cancel.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stats.get().deleted < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue not drained: {:?}",
            stats.get()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
    let s = stats.get();
    assert_eq!(
        (s.deleted, s.item_failures, s.failed_invocations),
        (n, 0, 0)
    );
}

async fn http(pool: &FunctionPool, case: &str) -> (u16, String) {
    let event: Value = serde_json::from_str(&fixture(case)).expect("fixture is JSON");
    let res = match pool
        .invoke(&event, INVOKE)
        .await
        .expect("invocation completes")
    {
        Invocation::Response(v) => v,
        Invocation::Error(e) => panic!("{case}: function error {e}"),
    };
    let status = res["statusCode"].as_u64().expect("statusCode") as u16;
    (status, res["body"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (make test)"]
async fn a_signed_webhook_flows_through_every_binary_once() {
    let (store, _, table) = fresh_table().await;
    let queue = fresh_inbound_queue().await;
    store
        .put_key(
            &hash_key("test-api-key"),
            &KeyScope::Numbers(vec!["106540352242922".into()]),
            "test",
        )
        .await
        .unwrap();
    let verify = pool("webhook-verify", &table, &queue.url).await;
    let receive = pool("webhook-receive", &table, &queue.url).await;
    let processor = pool("inbound-processor", &table, &queue.url).await;
    let read = pool("read-api", &table, &queue.url).await;

    assert_eq!(
        http(&verify, "webhook-verify/subscribe-ok").await,
        (200, "1158201444".into())
    );
    assert_eq!(http(&verify, "webhook-verify/wrong-token").await.0, 403);
    // With the verify token (WebhookEndpoint=FunctionUrl), webhook-receive answers Meta's
    // handshake itself: its function URL is then the callback URL.
    assert_eq!(
        http(&receive, "webhook-verify/subscribe-ok").await,
        (200, "1158201444".into())
    );
    assert_eq!(http(&receive, "webhook-verify/wrong-token").await.0, 403);

    // The same message three times (Meta's retries), statuses out of order, an escaped body,
    // a bad signature and a signed body that is not a webhook.
    for _ in 0..3 {
        assert_eq!(http(&receive, "webhook-receive/text-message").await.0, 200);
    }
    assert_eq!(
        http(&receive, "webhook-receive/text-message-base64")
            .await
            .0,
        200
    );
    assert_eq!(
        http(&receive, "webhook-receive/statuses-out-of-order")
            .await
            .0,
        200
    );
    assert_eq!(
        http(&receive, "webhook-receive/escaped-unicode").await.0,
        200
    );
    assert_eq!(http(&receive, "webhook-receive/wrong-secret").await.0, 401);
    assert_eq!(
        http(&receive, "webhook-receive/signed-not-json").await.0,
        200
    );

    // FIFO deduplication already drops the exact redeliveries: 1 text + 3 statuses + 1 escaped.
    drain(&queue, &processor, 5).await;

    let (status, body) = http(&read, "read-api/conversation").await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["customer"],
        json!({"user_id": "US.13491208655302741918", "wa_id": "16505551234"})
    );
    assert_eq!(
        body["window"]["expires_at"], "2026-11-24T08:00:00Z",
        "message timestamp (1795420800) + 24 h"
    );
    assert_eq!(body["window"]["kind"], "customer_service");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "recorded once: {messages:?}");
    assert_eq!(
        messages[0]["message"]["text"]["body"],
        "Does it come in another color?"
    );

    assert_eq!(http(&read, "read-api/conversation-no-key").await.0, 401);
    assert_eq!(
        http(&read, "read-api/conversation-other-number").await.0,
        403
    );

    let out1 = store.delivery("wamid.OUT1").await.unwrap().unwrap();
    assert_eq!(
        out1.current(),
        Some(DeliveryStatus::Read),
        "read arrived before delivered"
    );
    let out2 = store.delivery("wamid.OUT2").await.unwrap().unwrap();
    assert_eq!(out2.current(), Some(DeliveryStatus::Failed));
    assert_eq!(out2.error.as_ref().map(|e| e.0), Some(131_047));

    let quarantine_id = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"this is not json"));
    let (kept, _reason) = store
        .quarantined(&quarantine_id)
        .await
        .unwrap()
        .expect("quarantined");
    assert_eq!(kept, b"this is not json");
}

/// One POST with two text messages and a coexistence `history` sync whose whole `value` (a
/// change with no array to split, so one event) is about 340 KiB: over SQS's 256 KiB message.
fn webhook_with_a_huge_history_sync() -> String {
    let metadata =
        r#""metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}"#;
    let thread = wa_domain::testing::history_thread_over_256_kib("16505550009");
    let texts: Vec<String> = (1..=2)
        .map(|i| {
            format!(
                r#"{{"from":"1650555000{i}","id":"wamid.BIG{i}","timestamp":"1795420800","type":"text","text":{{"body":"hola {i}"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"history","value":{{"messaging_product":"whatsapp",{metadata},"history":[{{"metadata":{{"phase":0,"chunk_order":1,"progress":100}},"threads":[{{"id":"16505550009","messages":[{}]}}]}}]}}}},{{"field":"messages","value":{{"messaging_product":"whatsapp",{metadata},"messages":[{}]}}}}]}}]}}"#,
        thread,
        texts.join(",")
    )
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (make test)"]
async fn an_event_too_large_for_the_queue_is_quarantined_and_the_rest_applied() {
    let (store, _, table) = fresh_table().await;
    let queue = fresh_inbound_queue().await;
    let receive = pool("webhook-receive", &table, &queue.url).await;
    let processor = pool("inbound-processor", &table, &queue.url).await;

    let body = webhook_with_a_huge_history_sync();
    let mut request: Value =
        serde_json::from_str(&fixture("webhook-receive/text-message")).expect("fixture is JSON");
    request["headers"]["x-hub-signature-256"] = json!(wa_domain::signature::sign(
        "test-app-secret",
        body.as_bytes()
    ));
    request["body"] = json!(body);
    // Meta's first delivery and a retry: both acknowledged, nothing kept twice.
    for _ in 0..2 {
        let res = match receive.invoke(&request, INVOKE).await.expect("invocation") {
            Invocation::Response(v) => v,
            Invocation::Error(e) => panic!("function error {e}"),
        };
        assert_eq!(res["statusCode"], 200, "{res}");
    }

    // The two messages reach the processor and are recorded.
    drain(&queue, &processor, 2).await;
    for i in 1..=2 {
        let customer = wa_domain::customer::CustomerKey::Phone(format!("1650555000{i}"));
        let page = store
            .history("106540352242922", &customer, 10, None)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1, "customer {i}");
        assert_eq!(page.items[0].message.wamid, format!("wamid.BIG{i}"));
    }

    // The sync is kept whole in the quarantine, as the queue message it would have been,
    // under the SHA-256 of that message.
    let history = wa_domain::webhook::split(body.as_bytes())
        .unwrap()
        .into_iter()
        .find(|e| e.field == "history")
        .expect("the history sync is one event");
    let message = wa_sqs::encode(&history).unwrap();
    assert!(message.len() > wa_sqs::MAX_MESSAGE_BYTES);
    let id = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(message.as_bytes()));
    let (kept, reason) = store
        .quarantined(&id)
        .await
        .unwrap()
        .expect("the oversized event is quarantined");
    assert_eq!(kept, message.as_bytes());
    assert!(
        reason.starts_with("inbound event too large for the queue"),
        "{reason}"
    );
    let back = wa_sqs::decode(std::str::from_utf8(&kept).unwrap()).unwrap();
    assert_eq!(back.item.get(), history.item.get());
}
