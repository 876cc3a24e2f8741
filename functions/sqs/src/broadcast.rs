//! The broadcast planner's step queue, and the outbound queue in batches.
//!
//! The step queue is a *standard* queue, not FIFO: a step message must be able to wait
//! (`DelaySeconds` per message, up to 15 minutes) until the next release tick or until the
//! messaging limit's window rolls, and FIFO queues only have a per-queue delay. Order and
//! exactly-once are not needed from the queue: a step message names its broadcast and its
//! *chain*; the planner drops a message of an old chain, and two steps of the same chain are
//! harmless (both do idempotent work; the job's conditional save lets one go on). A wait
//! longer than 15 minutes is a message that comes back early, finds nothing due, and is
//! scheduled again.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use wa_domain::broadcast::{BroadcastId, OutboundBatch, StepQueue};
use wa_domain::ports::{QueueError, SendJob};

use crate::retry::retrying;
use crate::setup::{DLQ_RETENTION_SECS, SetupError};
use crate::{MAX_BATCH_ENTRIES, SqsOutboundQueue, encode_job, sqs_id};

/// SQS's longest message delay.
pub const MAX_DELAY_SECS: i64 = 900;
/// Receives before a step message goes to the dead-letter queue.
pub const STEP_MAX_RECEIVE_COUNT: u32 = 10;
/// Seconds a received step message stays invisible: six times the planner's 60 s timeout.
pub const STEP_VISIBILITY_TIMEOUT_SECS: u32 = 360;

#[derive(Serialize, Deserialize)]
struct StepWire {
    v: u32,
    broadcast_id: String,
    chain: u64,
}

/// Why a step message could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a broadcast step message")]
pub struct BadStep;

/// Encodes a step message.
pub fn encode_step(id: &BroadcastId, chain: u64) -> String {
    serde_json::json!({"v": 1, "broadcast_id": id.as_str(), "chain": chain}).to_string()
}

/// Reads a step message: the broadcast and the chain.
pub fn decode_step(body: &str) -> Result<(BroadcastId, u64), BadStep> {
    let w: StepWire = serde_json::from_str(body).map_err(|_| BadStep)?;
    if w.v != 1 {
        return Err(BadStep);
    }
    Ok((BroadcastId::parse(&w.broadcast_id).ok_or(BadStep)?, w.chain))
}

/// The planner's step queue (standard). Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqsStepQueue {
    client: Client,
    queue_url: String,
}

impl SqsStepQueue {
    /// The queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl StepQueue for SqsStepQueue {
    async fn schedule(
        &self,
        id: &BroadcastId,
        chain: u64,
        delay_secs: i64,
    ) -> Result<(), QueueError> {
        let body = encode_step(id, chain);
        let delay = i32::try_from(delay_secs.clamp(0, MAX_DELAY_SECS)).unwrap_or(0);
        retrying("SendMessage", None, || {
            self.client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(&body)
                .delay_seconds(delay)
                .send()
        })
        .await
        .map_err(|e| QueueError::Unavailable(Box::new(e)))?;
        Ok(())
    }
}

/// `SendMessageBatch` requests of one call in flight at once. A page's jobs are for distinct
/// customers (one order group each), so the batches' order between them does not matter.
const BATCHES_IN_FLIGHT: usize = 8;

impl OutboundBatch for SqsOutboundQueue {
    /// `SendMessageBatch` of up to 10 jobs each (up to [`BATCHES_IN_FLIGHT`] at once), each
    /// job deduplicated by its send id; entries SQS refuses are sent again (the same
    /// deduplication id makes that safe).
    async fn enqueue_batch(&self, jobs: &[SendJob]) -> Result<(), QueueError> {
        let batches: Vec<_> = jobs
            .chunks(MAX_BATCH_ENTRIES)
            .map(|chunk| self.enqueue_chunk(chunk))
            .collect();
        futures::stream::iter(batches)
            .buffer_unordered(BATCHES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

impl SqsOutboundQueue {
    /// One `SendMessageBatch` of at most 10 jobs, refused entries sent again.
    async fn enqueue_chunk(&self, chunk: &[SendJob]) -> Result<(), QueueError> {
        let un = |e: Box<dyn std::error::Error + Send + Sync>| QueueError::Unavailable(e);
        let mut pending: Vec<&SendJob> = chunk.iter().collect();
        for attempt in 0..5u32 {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            let entries = pending
                .iter()
                .enumerate()
                .map(|(i, job)| {
                    let body = encode_job(job).map_err(|e| un(Box::new(e)))?;
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .message_group_id(sqs_id(&job.group))
                        .message_deduplication_id(sqs_id(job.send_id.as_str()))
                        .build()
                        .map_err(|e| un(Box::new(e)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.metrics().requests.fetch_add(1, Ordering::Relaxed);
            let out = self
                .client_ref()
                .send_message_batch()
                .queue_url(self.queue_url())
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| un(Box::new(e)))?;
            self.metrics()
                .messages
                .fetch_add(out.successful.len() as u64, Ordering::Relaxed);
            let failed: Vec<usize> = out
                .failed
                .iter()
                .filter_map(|f| f.id.parse().ok())
                .collect();
            self.metrics()
                .failed_entries
                .fetch_add(failed.len() as u64, Ordering::Relaxed);
            pending = failed
                .into_iter()
                .filter_map(|i| pending.get(i).copied())
                .collect();
        }
        if !pending.is_empty() {
            return Err(QueueError::Unavailable(
                format!("{} send jobs not queued after retries", pending.len()).into(),
            ));
        }
        Ok(())
    }
}

/// Creates the standard queue `{name_prefix}{name}` and its dead-letter queue
/// `{name_prefix}{name}-dlq` (for the planner's steps); returns `(queue_url, dlq_url)`.
pub async fn create_step_queues(
    client: &Client,
    name_prefix: &str,
    name: &str,
) -> Result<(String, String), SetupError> {
    let dlq_name = format!("{name_prefix}{name}-dlq");
    let qname = format!("{name_prefix}{name}");
    let failed = |queue: &str, e: Box<dyn std::error::Error + Send + Sync>| SetupError::Queue {
        queue: queue.to_owned(),
        source: e,
    };
    let dlq_url = client
        .create_queue()
        .queue_name(&dlq_name)
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_string(),
        )
        .send()
        .await
        .map_err(|e| failed(&dlq_name, e.into()))?
        .queue_url
        .ok_or_else(|| SetupError::Incomplete(dlq_name.clone()))?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed(&dlq_name, e.into()))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| SetupError::Incomplete(dlq_name.clone()))?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": STEP_MAX_RECEIVE_COUNT,
    })
    .to_string();
    let url = client
        .create_queue()
        .queue_name(&qname)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            STEP_VISIBILITY_TIMEOUT_SECS.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .map_err(|e| failed(&qname, e.into()))?
        .queue_url
        .ok_or_else(|| SetupError::Incomplete(qname.clone()))?;
    Ok((url, dlq_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_messages_round_trip() {
        let id = BroadcastId::new(1_800_000_000_000, [3; 10]);
        assert_eq!(decode_step(&encode_step(&id, 7)).unwrap(), (id, 7));
        assert!(decode_step("{}").is_err());
        assert!(decode_step(r#"{"v":2,"broadcast_id":"bc_x","chain":1}"#).is_err());
    }
}
