//! The SQS event source poller against moto and the `echo` Lambda.
//!
//! Needs moto at `$AWS_ENDPOINT_URL` (default `http://127.0.0.1:5000`); CI runs these through
//! `scripts/with-moto.sh cargo test -- --include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use wa_emulator::sqs::{CancellationToken, SqsEventSource};
use wa_emulator::{FunctionConfig, FunctionPool};

async fn client() -> Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:5000".to_owned());
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::from_static("us-east-1"))
        .test_credentials()
        .load()
        .await;
    Client::new(&config)
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A FIFO queue (visibility timeout 1 s) whose DLQ takes messages after 2 receives.
async fn fifo_with_dlq(sqs: &Client) -> (String, String) {
    let name = unique("emu");
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}).to_string();
    let queue = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (queue, dlq)
}

async fn send(sqs: &Client, queue: &str, group: &str, body: serde_json::Value) {
    sqs.send_message()
        .queue_url(queue)
        .message_group_id(group)
        .message_deduplication_id(unique("d"))
        .message_body(body.to_string())
        .send()
        .await
        .unwrap();
}

async fn count(sqs: &Client, queue: &str) -> (u64, u64) {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let n = |k| attrs[&k].parse::<u64>().unwrap();
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn echo() -> FunctionPool {
    let pool = FunctionPool::spawn(FunctionConfig::new("echo", support::echo_binary()))
        .await
        .unwrap();
    pool.wait_ready(Duration::from_secs(20)).await.unwrap();
    pool
}

#[tokio::test]
#[ignore = "needs moto at $AWS_ENDPOINT_URL (scripts/with-moto.sh)"]
async fn handled_records_are_deleted() {
    let sqs = client().await;
    let (queue, _dlq) = fifo_with_dlq(&sqs).await;
    for i in 0..12 {
        send(&sqs, &queue, &format!("g{}", i % 3), json!({"n": i})).await;
    }
    let pool = echo().await;
    let poller = SqsEventSource::new(sqs.clone(), &queue, pool.runtime().clone());
    let stats = poller.stats();
    let cancel = CancellationToken::new();
    let task = poller.spawn(cancel.clone());

    eventually("12 records deleted", async || stats.get().deleted == 12).await;
    assert_eq!(count(&sqs, &queue).await, (0, 0));
    let s = stats.get();
    assert_eq!(
        (s.received, s.item_failures, s.failed_invocations),
        (12, 0, 0)
    );
    assert!(s.batches >= 2, "at most 10 records per batch: {s:?}");

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("the poller stops promptly")
        .unwrap()
        .unwrap();
    pool.shutdown().await;
}

#[tokio::test]
#[ignore = "needs moto at $AWS_ENDPOINT_URL (scripts/with-moto.sh)"]
async fn a_reported_failure_is_retried_then_dead_lettered_and_the_rest_deleted() {
    let sqs = client().await;
    let (queue, dlq) = fifo_with_dlq(&sqs).await;
    send(&sqs, &queue, "ok", json!({"n": 1})).await;
    send(&sqs, &queue, "bad", json!({"fail": true})).await;
    let pool = echo().await;
    let poller = SqsEventSource::new(sqs.clone(), &queue, pool.runtime().clone());
    let stats = poller.stats();
    let cancel = CancellationToken::new();
    let task = poller.spawn(cancel.clone());

    eventually("the failing record reaches the DLQ", async || {
        count(&sqs, &dlq).await.0 == 1
    })
    .await;
    let s = stats.get();
    assert_eq!(s.deleted, 1, "{s:?}");
    assert!(
        s.item_failures >= 2,
        "delivered maxReceiveCount times: {s:?}"
    );
    assert_eq!(count(&sqs, &queue).await, (0, 0));

    cancel.cancel();
    task.await.unwrap().unwrap();
    pool.shutdown().await;
}

#[tokio::test]
#[ignore = "needs moto at $AWS_ENDPOINT_URL (scripts/with-moto.sh)"]
async fn a_failed_invocation_deletes_nothing() {
    let sqs = client().await;
    let (queue, dlq) = fifo_with_dlq(&sqs).await;
    // Every batch fails (a batch made only of the first would succeed if it were "ok").
    send(&sqs, &queue, "g", json!({"error": "boom 1"})).await;
    send(&sqs, &queue, "g", json!({"error": "boom 2"})).await;
    let pool = echo().await;
    let poller = SqsEventSource::new(sqs.clone(), &queue, pool.runtime().clone());
    let stats = poller.stats();
    let cancel = CancellationToken::new();
    let task = poller.spawn(cancel.clone());

    eventually("both records reach the DLQ", async || {
        count(&sqs, &dlq).await.0 == 2
    })
    .await;
    let s = stats.get();
    assert_eq!(s.deleted, 0, "{s:?}");
    assert!(s.failed_invocations >= 2, "{s:?}");

    cancel.cancel();
    task.await.unwrap().unwrap();
    pool.shutdown().await;
}

#[tokio::test]
#[ignore = "needs moto at $AWS_ENDPOINT_URL (scripts/with-moto.sh)"]
async fn a_failed_record_keeps_the_visibility_the_function_set() {
    let sqs = client().await;
    // Visibility timeout 1 s: a reset to the queue's own would bring it back within ~1 s.
    let (queue, dlq) = fifo_with_dlq(&sqs).await;
    send(&sqs, &queue, "g", json!({"fail": true, "visibility_s": 4})).await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:5000".to_owned());
    let config = FunctionConfig::new("echo", support::echo_binary()).envs([
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let pool = FunctionPool::spawn(config).await.unwrap();
    pool.wait_ready(Duration::from_secs(20)).await.unwrap();
    let poller = SqsEventSource::new(sqs.clone(), &queue, pool.runtime().clone());
    let stats = poller.stats();
    let cancel = CancellationToken::new();
    let task = poller.spawn(cancel.clone());

    eventually("the first delivery is reported failed", async || {
        stats.get().item_failures == 1
    })
    .await;
    let first = Instant::now();
    eventually("the second delivery", async || stats.get().received == 2).await;
    let gap = first.elapsed();
    assert!(
        gap >= Duration::from_secs(3),
        "came back after {gap:?}: the 4 s visibility the function set was not kept"
    );
    let s = stats.get();
    assert_eq!((s.deleted, s.failed_invocations), (0, 0), "{s:?}");
    eventually("maxReceiveCount moves it to the DLQ", async || {
        count(&sqs, &dlq).await.0 == 1
    })
    .await;

    cancel.cancel();
    task.await.unwrap().unwrap();
    pool.shutdown().await;
}
