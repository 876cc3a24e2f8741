//! The FIFO queues and their dead-letter queues, created here for tests and the local stack
//! (`infra/template.yaml` declares the same for AWS).

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Receives before an inbound message goes to the dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// Seconds a received inbound message stays invisible to other consumers.
pub const VISIBILITY_TIMEOUT_SECS: u32 = 60;
/// Receives before an outbound message goes to the dead-letter queue.
///
/// High on purpose: the deliver-worker *defers* a send (pacing, pair rate, retry backoff,
/// the unconfirmed grace) by leaving its message in flight for a while, and every
/// redelivery counts as a receive. The worker gives up on a send itself
/// ([`crate::OutboundControl::dead_letter`], with a reason); this count is only the safety
/// net for a message that keeps crashing the worker.
pub const OUTBOUND_MAX_RECEIVE_COUNT: u32 = 100;
/// Seconds a received outbound message stays invisible: six times the deliver-worker's
/// 10 s Lambda timeout, as AWS advises for queue triggers.
pub const OUTBOUND_VISIBILITY_TIMEOUT_SECS: u32 = 60;
/// Seconds a dead-letter queue keeps a message (14 days, the maximum).
pub const DLQ_RETENTION_SECS: u32 = 14 * 24 * 3600;

/// A FIFO queue and its dead-letter queue, as [`create_fifo_queues`] makes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoQueueSpec {
    /// The queue's base name: the queues are `{prefix}{name}.fifo` and
    /// `{prefix}{name}-dlq.fifo`.
    pub name: String,
    /// Receives before SQS moves a message to the dead-letter queue (1 to 1,000).
    pub max_receive_count: u32,
    /// The queue's visibility timeout in seconds.
    pub visibility_timeout_secs: u32,
}

impl FifoQueueSpec {
    /// The inbound queue: `inbound`, [`MAX_RECEIVE_COUNT`], [`VISIBILITY_TIMEOUT_SECS`].
    pub fn inbound() -> Self {
        Self {
            name: "inbound".into(),
            max_receive_count: MAX_RECEIVE_COUNT,
            visibility_timeout_secs: VISIBILITY_TIMEOUT_SECS,
        }
    }

    /// The outbound queue: `outbound`, [`OUTBOUND_MAX_RECEIVE_COUNT`],
    /// [`OUTBOUND_VISIBILITY_TIMEOUT_SECS`].
    pub fn outbound() -> Self {
        Self {
            name: "outbound".into(),
            max_receive_count: OUTBOUND_MAX_RECEIVE_COUNT,
            visibility_timeout_secs: OUTBOUND_VISIBILITY_TIMEOUT_SECS,
        }
    }
}

/// Why [`create_fifo_queues`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A queue could not be created or described.
    #[error("could not set up queue {queue}")]
    Queue {
        /// The queue's name.
        queue: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// SQS answered without a queue URL or ARN.
    #[error("queue {0} has no URL or ARN")]
    Incomplete(String),
}

/// Creates the inbound queues: [`create_fifo_queues`] with [`FifoQueueSpec::inbound`]
/// (`{name_prefix}inbound.fifo` and `{name_prefix}inbound-dlq.fifo`); returns
/// `(queue_url, dlq_url)`.
pub async fn create_fifo_queue_with_dlq(
    client: &Client,
    name_prefix: &str,
) -> Result<(String, String), SetupError> {
    create_fifo_queues(client, name_prefix, &FifoQueueSpec::inbound()).await
}

/// Creates the FIFO queue `{name_prefix}{spec.name}.fifo` and its dead-letter queue
/// `{name_prefix}{spec.name}-dlq.fifo`; returns their URLs `(queue_url, dlq_url)`.
///
/// The queue moves a message to the DLQ after `spec.max_receive_count` receives and hides a
/// received message for `spec.visibility_timeout_secs`. Both queues deduplicate by explicit
/// `MessageDeduplicationId` only (content-based deduplication off: two sends with the same
/// body are two messages), per message group, with throughput per message group (SQS's
/// high-throughput FIFO mode). The DLQ keeps messages [`DLQ_RETENTION_SECS`] (14 days).
/// Creating queues that exist with the same attributes returns them.
pub async fn create_fifo_queues(
    client: &Client,
    name_prefix: &str,
    spec: &FifoQueueSpec,
) -> Result<(String, String), SetupError> {
    let dlq_name = format!("{name_prefix}{}-dlq.fifo", spec.name);
    let name = format!("{name_prefix}{}.fifo", spec.name);
    let failed = |queue: &str| {
        let queue = queue.to_owned();
        move |source: BoxError| SetupError::Queue { queue, source }
    };

    let dlq_url = client
        .create_queue()
        .queue_name(&dlq_name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_string(),
        )
        .attributes(QueueAttributeName::DeduplicationScope, "messageGroup")
        .attributes(QueueAttributeName::FifoThroughputLimit, "perMessageGroupId")
        .send()
        .await
        .map_err(|e| failed(&dlq_name)(e.into()))?
        .queue_url
        .ok_or_else(|| SetupError::Incomplete(dlq_name.clone()))?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed(&dlq_name)(e.into()))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| SetupError::Incomplete(dlq_name.clone()))?;

    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": spec.max_receive_count,
    })
    .to_string();
    let queue_url = client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            spec.visibility_timeout_secs.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::DeduplicationScope, "messageGroup")
        .attributes(QueueAttributeName::FifoThroughputLimit, "perMessageGroupId")
        .send()
        .await
        .map_err(|e| failed(&name)(e.into()))?
        .queue_url
        .ok_or_else(|| SetupError::Incomplete(name.clone()))?;
    Ok((queue_url, dlq_url))
}
