//! AWS test helpers: an `SdkConfig` for moto, unique resource names, and fresh tables and
//! queues per test (as zero2prod makes a database per test).
//!
//! Everything here talks to the moto server at `$AWS_ENDPOINT_URL` (default
//! `http://127.0.0.1:5000`). The helpers panic with a hint when moto cannot be reached: they
//! are for tests only.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use wa_dynamodb::DynamoStore;
use wa_sqs::{FifoQueueSpec, OutboundControl, SqsEventQueue, SqsOutboundQueue};

/// Where moto listens when `AWS_ENDPOINT_URL` is not set.
pub const DEFAULT_MOTO_ENDPOINT: &str = "http://127.0.0.1:5000";

/// The moto endpoint: `$AWS_ENDPOINT_URL`, or [`DEFAULT_MOTO_ENDPOINT`].
pub fn moto_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_MOTO_ENDPOINT.to_owned())
}

/// An `SdkConfig` for moto: its endpoint, `us-east-1`, static test credentials (so the
/// credential chain never reaches for instance metadata). Nothing process-wide is set.
pub async fn moto_config() -> SdkConfig {
    config_for(&moto_endpoint()).await
}

/// An `SdkConfig` like [`moto_config`]'s for any endpoint.
pub async fn config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::from_static("us-east-1"))
        .test_credentials()
        .load()
        .await
}

/// An `SdkConfig` pointing at a loopback port nothing listens on, with no retries and short
/// timeouts: every request fails fast.
pub async fn unreachable_config() -> SdkConfig {
    let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot find a free loopback port: {e}"),
    };
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::from_static("us-east-1"))
        .test_credentials()
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_timeout(Duration::from_secs(3))
                .build(),
        )
        .load()
        .await
}

/// A name no other test (in this or another process) uses: `prefix` + time + pid + counter.
/// Short enough for a FIFO queue name with suffixes.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{millis}-{}-{n}", std::process::id())
}

/// A new table with Ventana's schema, the store on it, its client and its name.
pub async fn fresh_table() -> (DynamoStore, aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(&moto_config().await);
    let table = unique_name("ventana-");
    if let Err(e) = wa_dynamodb::create_table(&client, &table).await {
        panic!(
            "cannot create table {table} on {} (is moto running? `make test`): {e:?}",
            moto_endpoint()
        );
    }
    (DynamoStore::new(client.clone(), &table), client, table)
}

/// Every item of partition `pk` of `table`, read directly (consistent, all pages).
pub async fn raw_partition(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(pk.into()),
            )
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot query {pk} in {table}: {e:?}"));
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return items;
        }
    }
}

/// A fresh inbound queue and its dead-letter queue.
pub struct FreshQueue {
    /// The adapter on the queue.
    pub queue: SqsEventQueue,
    /// The SQS client.
    pub client: aws_sdk_sqs::Client,
    /// The queue's URL.
    pub url: String,
    /// The dead-letter queue's URL.
    pub dlq_url: String,
}

/// A new inbound FIFO queue with its DLQ (see `wa_sqs::create_fifo_queue_with_dlq`).
pub async fn fresh_inbound_queue() -> FreshQueue {
    let client = aws_sdk_sqs::Client::new(&moto_config().await);
    let prefix = unique_name("v-");
    match wa_sqs::create_fifo_queue_with_dlq(&client, &format!("{prefix}-")).await {
        Ok((url, dlq_url)) => FreshQueue {
            queue: SqsEventQueue::new(client.clone(), &url),
            client,
            url,
            dlq_url,
        },
        Err(e) => panic!(
            "cannot create queues {prefix}-… on {} (is moto running? `make test`): {e:?}",
            moto_endpoint()
        ),
    }
}

/// A fresh outbound queue and its dead-letter queue.
pub struct FreshOutbound {
    /// send-api's side: the queue adapter.
    pub queue: SqsOutboundQueue,
    /// The worker's side: defer and dead-letter.
    pub control: OutboundControl,
    /// The SQS client.
    pub client: aws_sdk_sqs::Client,
    /// The queue's URL.
    pub url: String,
    /// The dead-letter queue's URL.
    pub dlq_url: String,
}

/// A new outbound FIFO queue with its DLQ (`wa_sqs::create_fifo_queues` with
/// `FifoQueueSpec::outbound()`).
pub async fn fresh_outbound_queue() -> FreshOutbound {
    let client = aws_sdk_sqs::Client::new(&moto_config().await);
    let prefix = unique_name("v-");
    let spec = FifoQueueSpec::outbound();
    match wa_sqs::create_fifo_queues(&client, &format!("{prefix}-"), &spec).await {
        Ok((url, dlq_url)) => FreshOutbound {
            queue: SqsOutboundQueue::new(client.clone(), &url),
            control: OutboundControl::new(client.clone(), &url, &dlq_url),
            client,
            url,
            dlq_url,
        },
        Err(e) => panic!(
            "cannot create queues {prefix}-… on {} (is moto running? `make test`): {e:?}",
            moto_endpoint()
        ),
    }
}
