//! An SQS → Lambda event source mapping, like the one AWS runs for a queue trigger with
//! `FunctionResponseTypes: [ReportBatchItemFailures]`.
//!
//! One [`SqsEventSource`] is one poller task for one queue. It long-polls `ReceiveMessage`
//! (up to 10 messages, at most 1 s of waiting so that cancellation is quick), invokes the
//! function with an `SqsEvent` (`Records[…]`, attributes as strings), then deletes the
//! records the function did not list in `batchItemFailures`. If the invocation fails (an
//! error, a timeout, a dead process) or its answer is malformed, nothing is deleted: the
//! messages come back after the queue's visibility timeout, and the queue's redrive policy
//! moves them to the dead-letter queue after `maxReceiveCount` receives. That is AWS's
//! behaviour, and the only retry mechanism there is.
//!
//! The poller never changes a message's visibility: a record the function reports as
//! failed stays in flight for whatever visibility timeout it has, the queue's or the one the
//! function set with `ChangeMessageVisibility` (how a worker defers a message), as on AWS.
//! Each record carries what a function needs for that: `receiptHandle`, `attributes`
//! (`ApproximateReceiveCount`, `MessageGroupId`, …, all as strings) and `messageAttributes`.
//!
//! **FIFO ordering.** AWS never has two batches of the same message group in flight. A single
//! poller per queue gives that for free: it handles one batch at a time, and SQS itself
//! withholds a group's later messages while earlier ones are in flight. Run exactly one
//! [`SqsEventSource`] per FIFO queue; several would break this guarantee. (For standard
//! queues one poller is simply less concurrent than AWS.)

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
pub use tokio_util::sync::CancellationToken;

use crate::error::EmulatorError;
use crate::runtime::{Invocation, RuntimeApi};

/// Counters of what a poller has done (for tests and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollerStats {
    /// Batches received and handed to the function.
    pub batches: u64,
    /// Messages received.
    pub received: u64,
    /// Messages deleted after the function handled them.
    pub deleted: u64,
    /// Messages the function reported in `batchItemFailures`.
    pub item_failures: u64,
    /// Invocations that failed as a whole (nothing deleted).
    pub failed_invocations: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    received: AtomicU64,
    deleted: AtomicU64,
    item_failures: AtomicU64,
    failed_invocations: AtomicU64,
}

/// A handle to read a running poller's [`PollerStats`].
#[derive(Clone, Default)]
pub struct StatsHandle(Arc<Counters>);

impl StatsHandle {
    /// The current counters.
    pub fn get(&self) -> PollerStats {
        let c = &self.0;
        PollerStats {
            batches: c.batches.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            deleted: c.deleted.load(Ordering::Relaxed),
            item_failures: c.item_failures.load(Ordering::Relaxed),
            failed_invocations: c.failed_invocations.load(Ordering::Relaxed),
        }
    }

    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// One queue feeding one function (see the module docs).
pub struct SqsEventSource {
    client: Client,
    queue_url: String,
    function: RuntimeApi,
    batch_size: i32,
    wait_time_seconds: i32,
    invoke_timeout: Duration,
    stats: StatsHandle,
}

impl std::fmt::Debug for SqsEventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsEventSource")
            .field("queue_url", &self.queue_url)
            .field("function", &self.function.function_name())
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// How the function's answer settles a batch.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Delete every record except these message ids.
    DeleteExcept(HashSet<String>),
    /// Delete nothing (the whole batch failed).
    KeepAll(String),
}

impl SqsEventSource {
    /// Feeds `function` from `queue_url`: batches of 10, 1 s long polls, 30 s invocation
    /// timeout.
    pub fn new(client: Client, queue_url: impl Into<String>, function: RuntimeApi) -> Self {
        SqsEventSource {
            client,
            queue_url: queue_url.into(),
            function,
            batch_size: 10,
            wait_time_seconds: 1,
            invoke_timeout: Duration::from_secs(30),
            stats: StatsHandle::default(),
        }
    }

    /// The maximum batch size (clamped to 1..=10, SQS's limit).
    pub fn batch_size(mut self, n: u8) -> Self {
        self.batch_size = i32::from(n.clamp(1, 10));
        self
    }

    /// Long-poll wait in seconds (clamped to 0..=1 so that cancellation stays quick).
    pub fn wait_time_seconds(mut self, s: u8) -> Self {
        self.wait_time_seconds = i32::from(s.min(1));
        self
    }

    /// How long one invocation may take (the function's timeout).
    pub fn invoke_timeout(mut self, timeout: Duration) -> Self {
        self.invoke_timeout = timeout;
        self
    }

    /// A handle to this poller's counters.
    pub fn stats(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// Runs the poller on a new task until `cancel` fires.
    pub fn spawn(self, cancel: CancellationToken) -> JoinHandle<Result<(), EmulatorError>> {
        tokio::spawn(self.run(cancel))
    }

    /// Polls until `cancel` fires. Fails only if the queue's ARN cannot be read at start;
    /// later SQS errors are logged and retried every second.
    ///
    /// Cancellation stops at once, even mid-batch: messages of an unfinished batch come
    /// back after the visibility timeout (at-least-once delivery, as on AWS).
    pub async fn run(self, cancel: CancellationToken) -> Result<(), EmulatorError> {
        let arn = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            arn = self.queue_arn() => arn?,
        };
        let region = self
            .client
            .config()
            .region()
            .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
        tracing::debug!(queue = %self.queue_url, function = %self.function.function_name(), "SQS poller started");
        loop {
            let step = async {
                match self.receive().await {
                    Ok(messages) if messages.is_empty() => {}
                    Ok(messages) => self.handle_batch(messages, &arn, &region).await,
                    Err(error) => {
                        tracing::warn!(queue = %self.queue_url, error = ?error, "ReceiveMessage failed; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = step => {}
            }
        }
        tracing::debug!(queue = %self.queue_url, "SQS poller stopped");
        Ok(())
    }

    async fn queue_arn(&self) -> Result<String, EmulatorError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| self.sqs_error("GetQueueAttributes", e))?;
        Ok(out
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_else(|| arn_from_url(&self.queue_url)))
    }

    async fn receive(&self) -> Result<Vec<Message>, EmulatorError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(self.wait_time_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| self.sqs_error("ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn handle_batch(&self, messages: Vec<Message>, arn: &str, region: &str) {
        let c = &self.stats.0;
        StatsHandle::add(&c.batches, 1);
        StatsHandle::add(&c.received, messages.len());
        let started = std::time::Instant::now();
        let event = sqs_event(&messages, arn, region);
        let ids: HashSet<&str> = messages.iter().filter_map(|m| m.message_id()).collect();
        let outcome = match self.function.invoke(&event, self.invoke_timeout).await {
            Ok(Invocation::Response(response)) => settle(&response, &ids),
            Ok(Invocation::Error(error)) => Outcome::KeepAll(format!(
                "the function failed: {}",
                error
                    .get("errorType")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error type")
            )),
            Err(error) => Outcome::KeepAll(format!("the invocation failed: {error}")),
        };
        let failed = match outcome {
            Outcome::KeepAll(why) => {
                StatsHandle::add(&c.failed_invocations, 1);
                tracing::warn!(
                    queue = %self.queue_url,
                    function = %self.function.function_name(),
                    messages = messages.len(),
                    "{why}; the batch will be retried after the visibility timeout"
                );
                return;
            }
            Outcome::DeleteExcept(failed) => failed,
        };
        StatsHandle::add(&c.item_failures, failed.len());
        tracing::info!(
            function = %self.function.function_name(),
            messages = messages.len(),
            failed = failed.len(),
            ms = started.elapsed().as_millis(),
            "queue batch handled{}",
            if failed.is_empty() { "" } else { "; failed records will be retried" }
        );
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.message_id().is_none_or(|id| !failed.contains(id)))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let wanted = entries.len();
        match self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                let not_deleted = out.failed().len();
                StatsHandle::add(&c.deleted, wanted.saturating_sub(not_deleted));
                if not_deleted > 0 {
                    tracing::warn!(queue = %self.queue_url, not_deleted, "DeleteMessageBatch could not delete some records; they will be delivered again");
                }
            }
            Err(e) => {
                let error = self.sqs_error("DeleteMessageBatch", e);
                tracing::warn!(error = ?error, "the batch will be delivered again");
            }
        }
    }

    fn sqs_error<E>(&self, operation: &'static str, e: E) -> EmulatorError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        EmulatorError::Sqs {
            operation,
            queue_url: self.queue_url.clone(),
            source: Box::new(e),
        }
    }
}

/// Reads a `ReportBatchItemFailures` answer the way Lambda does: `null`, `{}` or an empty
/// or missing `batchItemFailures` mean success; an `itemIdentifier` that is missing, empty
/// or not in the batch, or an answer of the wrong shape, fails the whole batch.
fn settle(response: &Value, batch: &HashSet<&str>) -> Outcome {
    let failures = match response {
        Value::Null => return Outcome::DeleteExcept(HashSet::new()),
        Value::Object(o) => match o.get("batchItemFailures") {
            None | Some(Value::Null) => return Outcome::DeleteExcept(HashSet::new()),
            Some(Value::Array(f)) => f,
            Some(_) => return Outcome::KeepAll("batchItemFailures is not a list".to_owned()),
        },
        _ => {
            return Outcome::KeepAll(
                "the answer is not a ReportBatchItemFailures object".to_owned(),
            );
        }
    };
    let mut failed = HashSet::new();
    for f in failures {
        match f.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if batch.contains(id) => {
                failed.insert(id.to_owned());
            }
            _ => {
                return Outcome::KeepAll(format!(
                    "invalid batchItemFailures entry {f} (missing, empty or unknown itemIdentifier)"
                ));
            }
        }
    }
    Outcome::DeleteExcept(failed)
}

/// The `SqsEvent` Lambda would deliver for `messages`.
pub fn sqs_event(messages: &[Message], event_source_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                .collect();
            let message_attributes: Map<String, Value> = m
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), message_attribute(v)))
                .collect();
            let mut record = json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": event_source_arn,
                "awsRegion": region,
            });
            if let (Some(md5), Value::Object(r)) = (m.md5_of_message_attributes(), &mut record) {
                r.insert(
                    "md5OfMessageAttributes".to_owned(),
                    Value::String(md5.to_owned()),
                );
            }
            record
        })
        .collect();
    json!({ "Records": records })
}

fn message_attribute(v: &MessageAttributeValue) -> Value {
    let b64 = |b: &aws_sdk_sqs::primitives::Blob| Value::String(BASE64.encode(b.as_ref()));
    json!({
        "stringValue": v.string_value(),
        "binaryValue": v.binary_value().map(b64),
        "stringListValues": v.string_list_values(),
        "binaryListValues": v.binary_list_values().iter().map(b64).collect::<Vec<_>>(),
        "dataType": v.data_type(),
    })
}

/// `arn:aws:sqs:<region>:<account>:<name>` guessed from a queue URL
/// (`http://host/<account>/<name>`), for endpoints that do not return `QueueArn`.
fn arn_from_url(queue_url: &str) -> String {
    let mut parts = queue_url.trim_end_matches('/').rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or(crate::ACCOUNT_ID);
    format!("arn:aws:sqs:us-east-1:{account}:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> HashSet<&'static str> {
        HashSet::from(["m1", "m2", "m3"])
    }

    #[test]
    fn empty_answers_are_complete_success() {
        for answer in [
            json!(null),
            json!({}),
            json!({"batchItemFailures": []}),
            json!({"batchItemFailures": null}),
        ] {
            assert_eq!(
                settle(&answer, &batch()),
                Outcome::DeleteExcept(HashSet::new()),
                "{answer}"
            );
        }
    }

    #[test]
    fn listed_records_are_kept_and_the_rest_deleted() {
        let answer = json!({"batchItemFailures": [{"itemIdentifier": "m2"}]});
        assert_eq!(
            settle(&answer, &batch()),
            Outcome::DeleteExcept(HashSet::from(["m2".to_owned()]))
        );
    }

    #[test]
    fn bad_item_identifiers_fail_the_whole_batch() {
        for answer in [
            json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            json!({"batchItemFailures": [{"itemIdentifier": null}]}),
            json!({"batchItemFailures": [{"id": "m1"}]}),
            json!({"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}),
            json!({"batchItemFailures": "m1"}),
            json!("ok"),
        ] {
            assert!(
                matches!(settle(&answer, &batch()), Outcome::KeepAll(_)),
                "{answer}"
            );
        }
    }

    #[test]
    fn the_event_has_lambdas_sqs_shape() {
        let m = Message::builder()
            .message_id("m1")
            .receipt_handle("rh1")
            .body("{\"a\":1}")
            .md5_of_body("abc")
            .attributes(MessageSystemAttributeName::MessageGroupId, "g1")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .message_attributes(
                "kind",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("text")
                    .build()
                    .unwrap(),
            )
            .build();
        let event = sqs_event(
            &[m],
            "arn:aws:sqs:us-east-1:123456789012:q.fifo",
            "us-east-1",
        );
        let parsed: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(event.clone())
            .expect("the event deserialises as aws_lambda_events::sqs::SqsEvent");
        let r = &parsed.records[0];
        assert_eq!(r.message_id.as_deref(), Some("m1"));
        assert_eq!(r.receipt_handle.as_deref(), Some("rh1"));
        assert_eq!(r.body.as_deref(), Some("{\"a\":1}"));
        assert_eq!(r.attributes["MessageGroupId"], "g1");
        assert_eq!(r.attributes["ApproximateReceiveCount"], "2");
        assert_eq!(
            r.message_attributes["kind"].string_value.as_deref(),
            Some("text")
        );
        assert_eq!(r.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(
            event["Records"][0]["eventSourceARN"],
            "arn:aws:sqs:us-east-1:123456789012:q.fifo"
        );
        assert_eq!(event["Records"][0]["awsRegion"], "us-east-1");
        assert_eq!(event["Records"][0]["md5OfBody"], "abc");
    }

    #[test]
    fn arn_is_guessed_from_the_queue_url() {
        assert_eq!(
            arn_from_url("http://127.0.0.1:5000/123456789012/inbound.fifo"),
            "arn:aws:sqs:us-east-1:123456789012:inbound.fifo"
        );
    }
}
