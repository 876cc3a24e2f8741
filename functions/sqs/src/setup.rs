//! The inbound queue and its dead-letter queue, created here for tests and the local stack
//! (`infra/template.yaml` declares the same for AWS).

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Receives before a message goes to the dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// Seconds a received message stays invisible to other consumers.
pub const VISIBILITY_TIMEOUT_SECS: u32 = 60;
/// Seconds the dead-letter queue keeps a message (14 days, the maximum).
const DLQ_RETENTION_SECS: u32 = 14 * 24 * 3600;

/// Why [`create_fifo_queue_with_dlq`] failed.
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

/// Creates the FIFO queue `{name_prefix}inbound.fifo` and its dead-letter queue
/// `{name_prefix}inbound-dlq.fifo` (redrive after [`MAX_RECEIVE_COUNT`] receives, visibility
/// timeout [`VISIBILITY_TIMEOUT_SECS`], deduplication and throughput per message group);
/// returns their URLs `(queue_url, dlq_url)`. Creating queues that exist with the same
/// attributes returns them.
pub async fn create_fifo_queue_with_dlq(
    client: &Client,
    name_prefix: &str,
) -> Result<(String, String), SetupError> {
    let dlq_name = format!("{name_prefix}inbound-dlq.fifo");
    let name = format!("{name_prefix}inbound.fifo");
    let failed = |queue: &str| {
        let queue = queue.to_owned();
        move |source: BoxError| SetupError::Queue { queue, source }
    };

    let dlq_url = client
        .create_queue()
        .queue_name(&dlq_name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_string(),
        )
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
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    })
    .to_string();
    let queue_url = client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            VISIBILITY_TIMEOUT_SECS.to_string(),
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
