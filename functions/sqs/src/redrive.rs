//! Moving messages from a dead-letter queue back to their queue (an operator's action, from
//! a CLI), for the outbound queue and the inbound one alike: bodies are moved unread.
//!
//! SQS's own `StartMessageMoveTask` is not used: emulators lack it, and it reports no
//! bodies, which the CLI needs to reset the sends' state.

use std::collections::HashMap;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};

use crate::ids::{fresh_dedup_id, sqs_id};
use crate::outbound::{REASON_ATTRIBUTE, is_fifo};
use crate::retry::retrying;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Seconds a message received from the DLQ stays hidden while it is moved; if the move
/// fails half-way it reappears in the DLQ after this.
const MOVE_VISIBILITY_SECS: i32 = 60;
/// The group given to a message that had none (a standard DLQ feeding a FIFO queue).
const DEFAULT_GROUP: &str = "ventana-redrive";

/// One message moved back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// Its message id in the dead-letter queue.
    pub dlq_message_id: String,
    /// Its body, unchanged (for the outbound queue, [`crate::decode_job`] reads it).
    pub body: String,
    /// Its FIFO message group, if it had one.
    pub group: Option<String>,
    /// Why it was dead-lettered ([`REASON_ATTRIBUTE`]), if it says (SQS's own redrive
    /// policy, after too many receives, gives none).
    pub reason: Option<String>,
}

/// What [`redrive`] moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// The messages sent back to the queue, in the order they were sent.
    pub moved: Vec<Redriven>,
    /// DLQ message ids that were sent back but could not be deleted from the DLQ: they are
    /// in both queues, and a later redrive would send them again.
    pub not_deleted: Vec<String>,
}

/// Which step of [`redrive`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedriveStep {
    /// Receiving from the dead-letter queue.
    Receive,
    /// Sending a message back to the queue (it stays in the DLQ).
    Send,
}

/// [`redrive`] stopped; `report` says what had been moved by then.
#[derive(Debug, thiserror::Error)]
#[error("redrive stopped after moving {} messages: {step:?} failed", report.moved.len())]
pub struct RedriveError {
    /// What was moved before the failure (the CLI should still reset those sends).
    pub report: RedriveReport,
    /// The step that failed.
    pub step: RedriveStep,
    /// The SDK's error.
    #[source]
    pub source: BoxError,
}

/// Moves up to `max` messages from `dlq_url` back to `queue_url`: same body, same message
/// group, the message's attributes except [`REASON_ATTRIBUTE`], and a fresh deduplication id
/// (so SQS does not drop it as a repeat of its first send, even within five minutes).
///
/// Messages are received in batches of up to 10 and moved one at a time, in the order
/// received, so each FIFO group keeps its order; a message is deleted from the DLQ only
/// after it was sent back. Stops when the DLQ has nothing visible (after a one-second long
/// poll) or `max` were moved. Messages that other consumers hold in flight are not moved.
pub async fn redrive(
    client: &Client,
    dlq_url: &str,
    queue_url: &str,
    max: usize,
) -> Result<RedriveReport, RedriveError> {
    let mut report = RedriveReport::default();
    let fifo = is_fifo(queue_url);
    while report.moved.len() < max {
        let want = i32::try_from((max - report.moved.len()).min(10)).unwrap_or(10);
        let received = retrying("ReceiveMessage", None, || {
            client
                .receive_message()
                .queue_url(dlq_url)
                .max_number_of_messages(want)
                .wait_time_seconds(1)
                .visibility_timeout(MOVE_VISIBILITY_SECS)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .message_attribute_names("All")
                .send()
        })
        .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                return Err(RedriveError {
                    report,
                    step: RedriveStep::Receive,
                    source: Box::new(e),
                });
            }
        };
        if messages.is_empty() {
            break;
        }
        for m in messages {
            if let Err(source) = move_one(client, dlq_url, queue_url, fifo, m, &mut report).await {
                return Err(RedriveError {
                    report,
                    step: RedriveStep::Send,
                    source,
                });
            }
        }
    }
    tracing::info!(
        moved = report.moved.len(),
        not_deleted = report.not_deleted.len(),
        "dead-letter queue redriven"
    );
    Ok(report)
}

/// Sends `m` back and deletes it from the DLQ, recording it in `report`.
async fn move_one(
    client: &Client,
    dlq_url: &str,
    queue_url: &str,
    fifo: bool,
    m: Message,
    report: &mut RedriveReport,
) -> Result<(), BoxError> {
    let dlq_message_id = m.message_id.clone().unwrap_or_default();
    let group = m
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
        .cloned();
    let mut attributes: HashMap<String, MessageAttributeValue> =
        m.message_attributes.unwrap_or_default();
    let reason = attributes
        .remove(REASON_ATTRIBUTE)
        .and_then(|v| v.string_value);
    let body = m.body.unwrap_or_default();
    let send_group = fifo.then(|| sqs_id(group.as_deref().unwrap_or(DEFAULT_GROUP)));
    let dedup = fifo.then(|| fresh_dedup_id(&dlq_message_id));
    let attributes = (!attributes.is_empty()).then_some(attributes);
    retrying("SendMessage", None, || {
        client
            .send_message()
            .queue_url(queue_url)
            .message_body(&body)
            .set_message_group_id(send_group.clone())
            .set_message_deduplication_id(dedup.clone())
            .set_message_attributes(attributes.clone())
            .send()
    })
    .await?;
    let deleted = match m.receipt_handle {
        Some(handle) => retrying("DeleteMessage", None, || {
            client
                .delete_message()
                .queue_url(dlq_url)
                .receipt_handle(&handle)
                .send()
        })
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "a redriven message could not be deleted from the DLQ");
        })
        .is_ok(),
        None => false,
    };
    if !deleted {
        report.not_deleted.push(dlq_message_id.clone());
    }
    report.moved.push(Redriven {
        dlq_message_id,
        body,
        group,
        reason,
    });
    Ok(())
}
