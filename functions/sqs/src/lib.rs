//! `wa-sqs`: Ventana's SQS adapter.
//!
//! It owns the inbound FIFO queue's message format (the versioned [`envelope`]) and how
//! events are put on the queue: [`SqsEventQueue`] implements `wa-domain`'s
//! [`EventQueue`] port with `SendMessageBatch`. It owns the outbound queue too
//! ([`outbound`]): [`SqsOutboundQueue`] implements the [`OutboundQueue`] port, the
//! deliver-worker reads jobs with [`decode_job`] and defers or dead-letters them with
//! [`OutboundControl`], and [`redrive`] moves dead-lettered messages of either queue back.
//! SDK types stop here: callers see only domain types and this crate's errors. It must not
//! depend on Lambda, HTTP frameworks or other adapters (`wa-dynamodb`, `wa-edge`); the
//! domain must never depend on it.
//!
//! Each inbound event becomes one message whose `MessageGroupId` is [`InboundEvent::group_id`] (one
//! customer of one number: their events are applied in order, other customers in parallel)
//! and whose `MessageDeduplicationId` is [`InboundEvent::dedup_id`] (a redelivered webhook
//! queues nothing new within SQS's five-minute deduplication interval; later replays are
//! caught by the store's conditional writes).
//!
//! An event whose message would exceed [`MAX_MESSAGE_BYTES`] is not sent and does not stop the
//! others: `publish` hands its message back in [`Published::oversized`] for the caller to keep
//! (webhook-receive quarantines it), so one huge change never blocks a whole webhook.
#![warn(missing_docs)]

pub mod broadcast;
pub mod envelope;
mod ids;
pub mod outbound;
mod redrive;
mod retry;
mod setup;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::{StreamExt, TryStreamExt, stream};
use retry::{BACKOFF, RETRIES};
use wa_domain::event::InboundEvent;
#[cfg(doc)]
use wa_domain::ports::OutboundQueue;
use wa_domain::ports::{EventQueue, Oversized, Published, QueueError};

pub use broadcast::{SqsStepQueue, create_step_queues, decode_step, encode_step};
pub use envelope::{EnvelopeError, SCHEMA_VERSION, decode, encode};
pub use ids::{MAX_ID_LEN, is_valid_sqs_id, sqs_id};
pub use outbound::{
    ControlError, JOB_SCHEMA_VERSION, JobError, MAX_DEFER_SECS, MAX_REASON_BYTES, OutboundControl,
    REASON_ATTRIBUTE, SqsOutboundQueue, decode_job, encode_job, visibility_secs,
};
pub use redrive::{RedriveError, RedriveReport, RedriveStep, Redriven, redrive};
pub use setup::{
    DLQ_RETENTION_SECS, FifoQueueSpec, MAX_RECEIVE_COUNT, OUTBOUND_MAX_RECEIVE_COUNT,
    OUTBOUND_VISIBILITY_TIMEOUT_SECS, SetupError, VISIBILITY_TIMEOUT_SECS,
    create_fifo_queue_with_dlq, create_fifo_queues,
};

/// The largest message body sent, and the largest total of one batch: SQS's classic
/// 256 KiB limit (queues created since 2025 accept 1 MiB; 256 KiB works on every queue and
/// emulator).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// SendMessageBatch's limit on entries.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// How many batches are in flight at once.
const CONCURRENCY: usize = 8;

/// Request counters, for the cost report (one set per [`SqsEventQueue`] or
/// [`SqsOutboundQueue`], shared by its clones).
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    messages: AtomicU64,
    failed_entries: AtomicU64,
    oversized: AtomicU64,
}

/// A copy of the [`Metrics`] counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Send requests sent: `SendMessageBatch` for events, `SendMessage` for send jobs (the
    /// SDK's own retries of a request are not counted; this crate's are).
    pub requests: u64,
    /// Messages SQS accepted.
    pub messages: u64,
    /// Entries SQS reported as failed in a batch, or single requests that failed (each
    /// retry that fails counts again).
    pub failed_entries: u64,
    /// Events handed back unsent because their message exceeds [`MAX_MESSAGE_BYTES`].
    pub oversized: u64,
}

impl Metrics {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            failed_entries: self.failed_entries.load(Ordering::Relaxed),
            oversized: self.oversized.load(Ordering::Relaxed),
        }
    }
}

/// Some events were refused by SQS, even after retries.
#[derive(Debug, thiserror::Error)]
#[error("{count} events not queued: {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
pub struct NotQueued {
    /// How many entries of the batch were still refused.
    pub count: usize,
    /// SQS's error code for the first of them.
    pub code: String,
    /// SQS's message for the first of them.
    pub message: Option<String>,
    /// Whether SQS blamed the request rather than itself.
    pub sender_fault: bool,
}

/// The inbound FIFO queue. Cheap to clone; clones share the client and the [`Metrics`].
#[derive(Debug, Clone)]
pub struct SqsEventQueue {
    client: Client,
    queue_url: String,
    metrics: Arc<Metrics>,
}

/// One message to send.
struct Entry {
    body: String,
    group: String,
    dedup: String,
}

impl SqsEventQueue {
    /// The queue at `queue_url` (a FIFO queue, e.g. from [`create_fifo_queue_with_dlq`]).
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

    /// The request counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Sends the batches of one chain in order (they share a message group).
    async fn send_chain(&self, chain: Vec<Vec<Entry>>) -> Result<(), QueueError> {
        for batch in chain {
            self.send_batch(&batch).await?;
        }
        Ok(())
    }

    /// Sends one batch, sending entries SQS refused again after a short backoff.
    async fn send_batch(&self, batch: &[Entry]) -> Result<(), QueueError> {
        let unavailable = |e: Box<dyn std::error::Error + Send + Sync>| QueueError::Unavailable(e);
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        let mut backoff = BACKOFF;
        let mut attempt = 0;
        loop {
            let entries = pending
                .iter()
                .map(|&i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&batch[i].body)
                        .message_group_id(&batch[i].group)
                        .message_deduplication_id(&batch[i].dedup)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| unavailable(e.into()))?;
            self.metrics.requests.fetch_add(1, Ordering::Relaxed);
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| unavailable(e.into()))?;
            self.metrics
                .messages
                .fetch_add(out.successful.len() as u64, Ordering::Relaxed);
            if out.failed.is_empty() {
                return Ok(());
            }
            self.metrics
                .failed_entries
                .fetch_add(out.failed.len() as u64, Ordering::Relaxed);
            tracing::warn!(
                failed = out.failed.len(),
                code = %out.failed[0].code,
                attempt,
                "SQS refused some entries of a batch"
            );
            if attempt >= RETRIES {
                let first = &out.failed[0];
                return Err(unavailable(Box::new(NotQueued {
                    count: out.failed.len(),
                    code: first.code.clone(),
                    message: first.message.clone(),
                    sender_fault: first.sender_fault,
                })));
            }
            let mut next = Vec::with_capacity(out.failed.len());
            for failed in &out.failed {
                match failed.id.parse::<usize>() {
                    Ok(i) if i < batch.len() => next.push(i),
                    _ => {
                        return Err(unavailable(Box::new(NotQueued {
                            count: out.failed.len(),
                            code: "UnknownEntryId".into(),
                            message: Some(format!("SQS reported entry {:?}", failed.id)),
                            sender_fault: false,
                        })));
                    }
                }
            }
            next.sort_unstable();
            pending = next;
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

/// Packs entries, in order, into batches of at most [`MAX_BATCH_ENTRIES`] entries and
/// [`MAX_MESSAGE_BYTES`] bytes.
fn pack(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    let mut batches: Vec<Vec<Entry>> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let fits = batches.last().is_some_and(|b| {
            b.len() < MAX_BATCH_ENTRIES && bytes + entry.body.len() <= MAX_MESSAGE_BYTES
        });
        if !fits {
            batches.push(Vec::with_capacity(MAX_BATCH_ENTRIES));
            bytes = 0;
        }
        bytes += entry.body.len();
        if let Some(b) = batches.last_mut() {
            b.push(entry);
        }
    }
    batches
}

/// Groups consecutive batches that share a message group into chains, sent one after the
/// other so the group's order holds; chains run concurrently. With entries sorted by group,
/// only the group at a batch boundary can span two batches.
fn chains(batches: Vec<Vec<Entry>>) -> Vec<Vec<Vec<Entry>>> {
    let mut chains: Vec<Vec<Vec<Entry>>> = Vec::new();
    for batch in batches {
        let continues = chains
            .last()
            .and_then(|c| c.last())
            .and_then(|prev| prev.last())
            .zip(batch.first())
            .is_some_and(|(a, b)| a.group == b.group);
        match chains.last_mut() {
            Some(chain) if continues => chain.push(batch),
            _ => chains.push(vec![batch]),
        }
    }
    chains
}

impl EventQueue for SqsEventQueue {
    /// Queues every event whose message fits in [`MAX_MESSAGE_BYTES`], or fails. The others
    /// are not sent and come back, encoded, in [`Published::oversized`] (counted in
    /// [`MetricsSnapshot::oversized`]). Events keep their order within a message group.
    async fn publish(&self, events: Vec<InboundEvent>) -> Result<Published, QueueError> {
        let mut entries = Vec::with_capacity(events.len());
        let mut oversized = Vec::new();
        // Each event is dropped as soon as it is encoded, so the payload is never held twice.
        for event in events {
            let body = encode(&event).map_err(|e| QueueError::Unavailable(Box::new(e)))?;
            if body.len() > MAX_MESSAGE_BYTES {
                self.metrics.oversized.fetch_add(1, Ordering::Relaxed);
                oversized.push(Oversized {
                    kind: event.kind,
                    field: event.field,
                    natural_key: event.natural_key,
                    message: body,
                    limit: MAX_MESSAGE_BYTES,
                });
                continue;
            }
            entries.push(Entry {
                body,
                group: event.group_id(),
                dedup: event.dedup_id(),
            });
        }
        let queued = entries.len();
        // A stable sort: each group's events stay together and in their order.
        entries.sort_by(|a, b| a.group.cmp(&b.group));
        stream::iter(chains(pack(entries)))
            .map(|chain| self.send_chain(chain))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(Published { queued, oversized })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(group: &str, size: usize) -> Entry {
        Entry {
            body: "x".repeat(size),
            group: group.into(),
            dedup: String::new(),
        }
    }

    #[test]
    fn batches_hold_ten_entries_and_256_kib_at_most() {
        let batches = pack((0..25).map(|_| entry("g", 10)).collect());
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        let big = MAX_MESSAGE_BYTES / 3 + 1;
        let batches = pack((0..5).map(|_| entry("g", big)).collect());
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        assert!(pack(Vec::new()).is_empty());
    }

    #[test]
    fn a_group_spanning_batches_makes_one_chain() {
        let mut entries: Vec<Entry> = (0..12).map(|_| entry("a", 1)).collect();
        entries.extend((0..8).map(|_| entry("b", 1)));
        entries.extend((0..10).map(|_| entry("c", 1)));
        // Batches: [a×10] [a×2 b×8] [c×10]: the first two share `a`.
        let chains = chains(pack(entries));
        assert_eq!(chains.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
    }
}
