//! The outbound FIFO queue: send-api puts a [`SendJob`] on it ([`SqsOutboundQueue`]), the
//! deliver-worker reads it back ([`decode_job`]) and answers each message with
//! [`OutboundControl`] (defer it, or move it to the dead-letter queue).
//!
//! # Message
//!
//! - body: a versioned envelope `{"schema_version":1,"send_id":"vnt.…","group":"…"}`; the
//!   send itself is in the store, so the message stays small and holds no message content;
//! - `MessageGroupId`: the job's group (the number and the customer: one customer's sends go
//!   out in order, different customers' in parallel), or its SHA-256 if SQS would refuse it
//!   as an id (the envelope keeps the group as given);
//! - `MessageDeduplicationId`: the send id, so a send queued twice within SQS's five-minute
//!   deduplication interval is delivered once. A send queued again on purpose (a redrive)
//!   needs another id: [`SqsOutboundQueue::enqueue_with_dedup_suffix`].
//!
//! # How the worker answers a message
//!
//! - done: report success; the Lambda event source mapping deletes it;
//! - defer: [`OutboundControl::defer`] (`ChangeMessageVisibility`), then report the record
//!   as a batch item failure: Lambda leaves it in flight and it comes back after the delay
//!   (the rest of its FIFO group waits behind it);
//! - dead-letter: [`OutboundControl::dead_letter`] (a copy to the DLQ with the reason), then
//!   report success so the original is deleted.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use serde::Serialize;
use serde_json::Value;
use wa_domain::outbound::SendId;
use wa_domain::ports::{OutboundQueue, QueueError, SendJob};

use crate::Metrics;
use crate::ids::{fresh_dedup_id, sqs_id};
use crate::retry::retrying;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The outbound envelope version this crate writes and reads.
pub const JOB_SCHEMA_VERSION: u64 = 1;
/// The message attribute that carries why a message was dead-lettered (a `String`).
pub const REASON_ATTRIBUTE: &str = "ventana_reason";
/// The longest reason kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_REASON_BYTES: usize = 1024;
/// The longest deferral, in seconds: SQS's 12-hour limit on a message's visibility
/// (43,200 s) less 15 minutes.
///
/// SQS counts the 12 hours from the *receive*, and refuses a `ChangeMessageVisibility` that
/// would go past them. The worker defers within its run, and no Lambda runs longer than 15
/// minutes, so this value is always accepted. A send due later than that simply comes back
/// after it: the worker reads it, finds it not yet due, and defers it again.
pub const MAX_DEFER_SECS: i32 = 43_200 - 900;

/// Why a queue message is not a [`SendJob`].
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job could not be serialized.
    #[error("could not encode the send job")]
    Encode(#[source] serde_json::Error),
    /// The body is not JSON.
    #[error("outbound message is not JSON")]
    Json(#[source] serde_json::Error),
    /// The body is JSON but not an object.
    #[error("outbound message is not a JSON object")]
    NotAnObject,
    /// The envelope has no (integer) `schema_version`.
    #[error("outbound message has no schema_version")]
    MissingVersion,
    /// The envelope was written in a version this code does not read.
    #[error("unknown outbound message schema version {0}")]
    UnknownSchemaVersion(u64),
    /// The envelope has no `send_id` string.
    #[error("outbound message has no send_id")]
    MissingSendId,
    /// The `send_id` is not a Ventana send id (its first 64 characters).
    #[error("outbound message's send_id {0:?} is not a send id")]
    InvalidSendId(String),
    /// The envelope has no `group`, or an empty one.
    #[error("outbound message has no group")]
    MissingGroup,
}

#[derive(Serialize)]
struct Out<'a> {
    schema_version: u64,
    send_id: &'a str,
    group: &'a str,
}

/// The queue message body for `job`.
pub fn encode_job(job: &SendJob) -> Result<String, JobError> {
    serde_json::to_string(&Out {
        schema_version: JOB_SCHEMA_VERSION,
        send_id: job.send_id.as_str(),
        group: &job.group,
    })
    .map_err(JobError::Encode)
}

/// The job in an outbound queue message body. Unknown fields are ignored (a later minor
/// addition); unknown versions are [`JobError::UnknownSchemaVersion`].
pub fn decode_job(body: &str) -> Result<SendJob, JobError> {
    let value: Value = serde_json::from_str(body).map_err(JobError::Json)?;
    let Value::Object(o) = value else {
        return Err(JobError::NotAnObject);
    };
    match o.get("schema_version").map(Value::as_u64) {
        None | Some(None) => return Err(JobError::MissingVersion),
        Some(Some(JOB_SCHEMA_VERSION)) => {}
        Some(Some(other)) => return Err(JobError::UnknownSchemaVersion(other)),
    }
    let raw = o
        .get("send_id")
        .and_then(Value::as_str)
        .ok_or(JobError::MissingSendId)?;
    let send_id = SendId::parse(raw)
        .ok_or_else(|| JobError::InvalidSendId(raw.chars().take(64).collect()))?;
    let group = o
        .get("group")
        .and_then(Value::as_str)
        .filter(|g| !g.is_empty())
        .ok_or(JobError::MissingGroup)?;
    Ok(SendJob {
        send_id,
        group: group.to_owned(),
    })
}

/// The deduplication id of a job: its send id, or `{send id}.{suffix}` (hashed if SQS would
/// refuse it).
fn job_dedup_id(job: &SendJob, suffix: Option<&str>) -> String {
    match suffix.filter(|s| !s.is_empty()) {
        None => sqs_id(job.send_id.as_str()),
        Some(s) => sqs_id(&format!("{}.{s}", job.send_id.as_str())),
    }
}

/// Whether a queue URL names a FIFO queue (which needs group and deduplication ids).
pub(crate) fn is_fifo(queue_url: &str) -> bool {
    queue_url.trim_end_matches('/').ends_with(".fifo")
}

/// The outbound FIFO queue, for send-api (and the redrive CLI). Cheap to clone; clones share
/// the client and the [`Metrics`].
#[derive(Debug, Clone)]
pub struct SqsOutboundQueue {
    client: Client,
    queue_url: String,
    metrics: Arc<Metrics>,
}

impl SqsOutboundQueue {
    /// The queue at `queue_url` (a FIFO queue, e.g. from [`crate::create_fifo_queues`] with
    /// [`crate::FifoQueueSpec::outbound`]).
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub(crate) fn client_ref(&self) -> &Client {
        &self.client
    }

    /// The request counters (`SendMessage` requests, messages accepted, failed requests).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Queues `job` again under the deduplication id `{send id}.{suffix}`, so that SQS does
    /// not drop it as a repeat of its first enqueue (within five minutes of it). Use a
    /// different suffix for each deliberate requeue (a redrive counter or timestamp); the
    /// same suffix twice is deduplicated like [`OutboundQueue::enqueue`]. An empty suffix is
    /// a plain enqueue.
    pub async fn enqueue_with_dedup_suffix(
        &self,
        job: &SendJob,
        suffix: &str,
    ) -> Result<(), QueueError> {
        self.send(job, job_dedup_id(job, Some(suffix))).await
    }

    async fn send(&self, job: &SendJob, dedup: String) -> Result<(), QueueError> {
        let body = encode_job(job).map_err(|e| QueueError::Unavailable(Box::new(e)))?;
        let group = sqs_id(&job.group);
        retrying("SendMessage", Some(&self.metrics), || {
            self.client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(&body)
                .message_group_id(&group)
                .message_deduplication_id(&dedup)
                .send()
        })
        .await
        .map_err(|e| QueueError::Unavailable(Box::new(e)))?;
        self.metrics.messages.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(send_id = %job.send_id.as_str(), "send queued");
        Ok(())
    }
}

impl OutboundQueue for SqsOutboundQueue {
    /// Queues the job with its send id as deduplication id: the same send queued again
    /// within five minutes is one message. Transient failures are retried (the fixed
    /// deduplication id makes that safe); on `Err` nothing may be assumed queued.
    async fn enqueue(&self, job: &SendJob) -> Result<(), QueueError> {
        self.send(job, job_dedup_id(job, None)).await
    }
}

/// Why an [`OutboundControl`] operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The receipt handle no longer names a message in flight (it was deleted, or its
    /// visibility ran out and it may have been received again): nothing was changed.
    #[error("the message is no longer in flight")]
    NotInFlight(#[source] BoxError),
    /// `ChangeMessageVisibility` failed.
    #[error("could not defer the message")]
    Defer(#[source] BoxError),
    /// The copy could not be sent to the dead-letter queue: the original must not be
    /// deleted.
    #[error("could not send the message to the dead-letter queue")]
    DeadLetter(#[source] BoxError),
}

/// What the deliver-worker does with a message it received from the outbound queue.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct OutboundControl {
    client: Client,
    queue_url: String,
    dlq_url: String,
}

impl OutboundControl {
    /// Controls for messages of `queue_url`, dead-lettered to `dlq_url`.
    pub fn new(client: Client, queue_url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dlq_url: dlq_url.into(),
        }
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The dead-letter queue's URL.
    pub fn dlq_url(&self) -> &str {
        &self.dlq_url
    }

    /// Keeps the received message invisible for `delay_ms` from now (rounded up to whole
    /// seconds, at most [`MAX_DEFER_SECS`]; zero or less makes it visible at once); returns
    /// the seconds set. The caller then reports the record as a batch item failure, so that
    /// Lambda does not delete it. A longer delay is cut to [`MAX_DEFER_SECS`]: the message
    /// comes back then and is deferred again.
    pub async fn defer(&self, receipt_handle: &str, delay_ms: i64) -> Result<i32, ControlError> {
        let secs = visibility_secs(delay_ms);
        retrying("ChangeMessageVisibility", None, || {
            self.client
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt_handle)
                .visibility_timeout(secs)
                .send()
        })
        .await
        .map_err(|e| {
            let gone = e
                .as_service_error()
                .is_some_and(|s| s.is_message_not_inflight() || s.is_receipt_handle_is_invalid());
            if gone {
                ControlError::NotInFlight(Box::new(e))
            } else {
                ControlError::Defer(Box::new(e))
            }
        })?;
        Ok(secs)
    }

    /// Sends a copy of a message (`body`, in FIFO `group`) to the dead-letter queue with
    /// `reason` in the [`REASON_ATTRIBUTE`] message attribute (cut to [`MAX_REASON_BYTES`]).
    /// The copy gets a fresh deduplication id, so a message dead-lettered again soon after a
    /// redrive is not dropped. Only after `Ok` may the caller report success, so that the
    /// original is deleted; on `Err` the original stays and comes back.
    pub async fn dead_letter(
        &self,
        body: &str,
        group: &str,
        reason: &str,
    ) -> Result<(), ControlError> {
        let failed = |e: BoxError| ControlError::DeadLetter(e);
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(clean_reason(reason))
            .build()
            .map_err(|e| failed(Box::new(e)))?;
        let fifo = is_fifo(&self.dlq_url);
        let group = fifo.then(|| sqs_id(group));
        let dedup = fifo.then(|| fresh_dedup_id(body));
        retrying("SendMessage", None, || {
            self.client
                .send_message()
                .queue_url(&self.dlq_url)
                .message_body(body)
                .set_message_group_id(group.clone())
                .set_message_deduplication_id(dedup.clone())
                .message_attributes(REASON_ATTRIBUTE, attribute.clone())
                .send()
        })
        .await
        .map_err(|e| failed(Box::new(e)))?;
        tracing::info!(
            reason = %wa_domain::redact::mask_digit_runs(&clean_reason(reason)),
            "message dead-lettered"
        );
        Ok(())
    }
}

/// The visibility timeout for a delay: whole seconds rounded up, within
/// `0..=`[`MAX_DEFER_SECS`].
pub fn visibility_secs(delay_ms: i64) -> i32 {
    if delay_ms <= 0 {
        return 0;
    }
    let secs = delay_ms.saturating_add(999) / 1000;
    i32::try_from(secs.min(i64::from(MAX_DEFER_SECS))).unwrap_or(MAX_DEFER_SECS)
}

/// A reason SQS accepts as an attribute value: not empty, characters XML allows (others
/// become U+FFFD), at most [`MAX_REASON_BYTES`] bytes.
pub(crate) fn clean_reason(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len().min(MAX_REASON_BYTES));
    for c in reason.chars() {
        let c = if xml_allowed(c) { c } else { '\u{FFFD}' };
        if out.len() + c.len_utf8() > MAX_REASON_BYTES {
            break;
        }
        out.push(c);
    }
    if out.trim().is_empty() {
        "unspecified".to_owned()
    } else {
        out
    }
}

/// The characters SQS accepts in message bodies and attribute values (XML 1.0's).
fn xml_allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> SendJob {
        SendJob {
            send_id: SendId::new(1_700_000_000_000, [7; 10]),
            group: "106540352242922:u:US.13491208655302741918".into(),
        }
    }

    #[test]
    fn a_job_round_trips_through_its_envelope() {
        let j = job();
        let body = encode_job(&j).unwrap();
        assert_eq!(
            body,
            format!(
                r#"{{"schema_version":1,"send_id":"{}","group":"{}"}}"#,
                j.send_id.as_str(),
                j.group
            )
        );
        assert_eq!(decode_job(&body).unwrap(), j);
        // Unknown fields of the same version are ignored; ids are read case-insensitively.
        let lower = format!(
            r#"{{"group":"g","extra":true,"send_id":"{}","schema_version":1}}"#,
            j.send_id.as_str().to_ascii_lowercase()
        );
        assert_eq!(decode_job(&lower).unwrap().send_id, j.send_id);
    }

    #[test]
    fn bad_bodies_give_typed_errors() {
        let id = job().send_id;
        let id = id.as_str();
        type Check = fn(&JobError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            ("nope".into(), |e| matches!(e, JobError::Json(_))),
            ("[1]".into(), |e| matches!(e, JobError::NotAnObject)),
            (format!(r#"{{"send_id":"{id}","group":"g"}}"#), |e| {
                matches!(e, JobError::MissingVersion)
            }),
            (
                format!(r#"{{"schema_version":"1","send_id":"{id}","group":"g"}}"#),
                |e| matches!(e, JobError::MissingVersion),
            ),
            (
                format!(r#"{{"schema_version":2,"send_id":"{id}","group":"g"}}"#),
                |e| matches!(e, JobError::UnknownSchemaVersion(2)),
            ),
            (r#"{"schema_version":1,"group":"g"}"#.into(), |e| {
                matches!(e, JobError::MissingSendId)
            }),
            (
                r#"{"schema_version":1,"send_id":"wamid.X","group":"g"}"#.into(),
                |e| matches!(e, JobError::InvalidSendId(s) if s == "wamid.X"),
            ),
            (format!(r#"{{"schema_version":1,"send_id":"{id}"}}"#), |e| {
                matches!(e, JobError::MissingGroup)
            }),
            (
                format!(r#"{{"schema_version":1,"send_id":"{id}","group":""}}"#),
                |e| matches!(e, JobError::MissingGroup),
            ),
            // An inbound envelope on the wrong queue.
            (r#"{"schema_version":1,"event":{}}"#.into(), |e| {
                matches!(e, JobError::MissingSendId)
            }),
        ];
        for (body, expected) in cases {
            let err = decode_job(&body).expect_err(&body);
            assert!(expected(&err), "{body} gave {err:?}");
        }
    }

    #[test]
    fn dedup_ids_are_the_send_id_or_suffixed() {
        let j = job();
        assert_eq!(job_dedup_id(&j, None), j.send_id.as_str());
        assert_eq!(job_dedup_id(&j, Some("")), j.send_id.as_str());
        assert_eq!(
            job_dedup_id(&j, Some("r1")),
            format!("{}.r1", j.send_id.as_str())
        );
        let long = job_dedup_id(&j, Some(&"x".repeat(200)));
        assert!(crate::ids::is_valid_sqs_id(&long));
    }

    #[test]
    fn delays_round_up_to_seconds_within_sqs_limits() {
        assert_eq!(visibility_secs(-5), 0);
        assert_eq!(visibility_secs(0), 0);
        assert_eq!(visibility_secs(1), 1);
        assert_eq!(visibility_secs(1_000), 1);
        assert_eq!(visibility_secs(1_001), 2);
        assert_eq!(visibility_secs(42_300_000), MAX_DEFER_SECS);
        assert_eq!(visibility_secs(86_400_000), MAX_DEFER_SECS);
        assert_eq!(visibility_secs(i64::MAX), MAX_DEFER_SECS);
        const { assert!(MAX_DEFER_SECS < 43_200) };
    }

    #[test]
    fn reasons_are_cut_and_cleaned() {
        assert_eq!(clean_reason("gave up"), "gave up");
        assert_eq!(clean_reason(""), "unspecified");
        assert_eq!(clean_reason("a\u{0}b"), "a\u{FFFD}b");
        let long = clean_reason(&"é".repeat(2000));
        assert!(long.len() <= MAX_REASON_BYTES && long.len() >= MAX_REASON_BYTES - 1);
        assert!(long.chars().all(|c| c == 'é'));
    }

    #[test]
    fn fifo_urls_are_recognised() {
        assert!(is_fifo(
            "http://127.0.0.1:5000/123456789012/v-outbound-dlq.fifo"
        ));
        assert!(!is_fifo("https://sqs.us-east-1.amazonaws.com/1/standard"));
    }
}
