//! `ventana dlq redrive (outbound|inbound)`: dead-lettered messages back to their queue.
//!
//! **Inbound** events carry everything they need, so [`inbound`] moves them unread with
//! `wa_sqs::redrive`. **Outbound** jobs name a send in the store, and the deliver-worker
//! skips a send that is `DeadLettered`; [`outbound`] therefore handles one message at a time:
//!
//! 1. read the job ([`wa_sqs::decode_job`]) and its send;
//! 2. `SendRecord::redrive` (the domain rule): a `DeadLettered` send becomes `Pending` with
//!    its attempts reset, saved over the version read (re-read on a conflict). A send in any
//!    other state was settled meanwhile (a late status webhook, an earlier redrive): its
//!    message is deleted from the DLQ and not requeued, so it can never go out twice;
//! 3. requeue the job with a fresh deduplication suffix (a plain enqueue would be dropped by
//!    SQS as a repeat of the first one within five minutes);
//! 4. only then delete the message from the DLQ.
//!
//! If the requeue fails, the send is put back to how it was read (so a later redrive finds
//! it `DeadLettered` again) and the message stays in the DLQ. A message this run could not
//! handle stays in the DLQ, hidden for a minute, and is reported as failed.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::Message;
use wa_domain::outbound::send::SendRecord;
use wa_domain::ports::{SendJob, SendStore};
use wa_dynamodb::DynamoStore;
use wa_sqs::{REASON_ATTRIBUTE, SqsOutboundQueue, decode_job};

use crate::error::{BoxError, CliError};

/// Seconds a received DLQ message stays hidden while it is handled: a failed one does not
/// come back within this run.
const HANDLING_VISIBILITY_SECS: i32 = 60;
/// How often a send is re-read when someone else saves it between our read and our save.
const SAVE_ATTEMPTS: usize = 5;

/// Where the messages come from and go to.
#[derive(Debug, Clone)]
pub struct Queues {
    /// The queue they go back to.
    pub queue_url: String,
    /// The dead-letter queue they come from.
    pub dlq_url: String,
}

/// What happened to one dead-lettered outbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The send was reset and its job requeued; `dlq_deleted` is false if the DLQ copy could
    /// not be deleted (a later redrive will find the send no longer dead-lettered and drop it).
    Moved {
        /// Whether the DLQ copy was deleted.
        dlq_deleted: bool,
    },
    /// The send is not dead-lettered any more (`state`): the message was dropped, not
    /// requeued.
    AlreadySettled {
        /// The send's state (`accepted`, `failed`, `pending`, …).
        state: &'static str,
    },
    /// Nothing was requeued; the message stays in the DLQ.
    Failed {
        /// Why.
        why: String,
    },
}

/// One dead-lettered message and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its message id in the DLQ.
    pub dlq_message_id: String,
    /// The send it is for, when the job could be read.
    pub send_id: Option<String>,
    /// Why it was dead-lettered ([`REASON_ATTRIBUTE`]), when it says.
    pub reason: Option<String>,
    /// What the redrive did.
    pub outcome: Outcome,
}

/// Every message an outbound redrive looked at, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundReport {
    /// The messages.
    pub entries: Vec<Entry>,
}

impl OutboundReport {
    /// Messages requeued.
    pub fn moved(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Moved { .. }))
    }

    /// Messages dropped because their send was settled.
    pub fn already_settled(&self) -> usize {
        self.count(|o| matches!(o, Outcome::AlreadySettled { .. }))
    }

    /// Messages left in the DLQ.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed { .. }))
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.entries.iter().filter(|e| f(&e.outcome)).count()
    }
}

/// Redrives up to `max` messages of the outbound DLQ (see the module's steps). Stops when
/// the DLQ shows nothing more (after a one-second long poll). `Err` only when the DLQ cannot
/// be read at all; per-message failures are in the report.
pub async fn outbound(
    client: &Client,
    store: &DynamoStore,
    queues: &Queues,
    max: usize,
) -> Result<OutboundReport, CliError> {
    let queue = SqsOutboundQueue::new(client.clone(), &queues.queue_url);
    let suffix = format!("redrive-{}", wa_domain::clock::unix_now_ms());
    let mut report = OutboundReport::default();
    while report.entries.len() < max {
        let want = i32::try_from((max - report.entries.len()).min(10)).unwrap_or(10);
        let messages = client
            .receive_message()
            .queue_url(&queues.dlq_url)
            .max_number_of_messages(want)
            .wait_time_seconds(1)
            .visibility_timeout(HANDLING_VISIBILITY_SECS)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| CliError::Sqs {
                operation: "ReceiveMessage",
                queue: queues.dlq_url.clone(),
                source: e.into(),
            })?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let entry = one(client, store, &queue, &queues.dlq_url, &suffix, m).await;
            report.entries.push(entry);
        }
    }
    tracing::info!(
        moved = report.moved(),
        already_settled = report.already_settled(),
        failed = report.failed(),
        "outbound dead-letter queue redriven"
    );
    Ok(report)
}

/// Handles one DLQ message.
async fn one(
    client: &Client,
    store: &DynamoStore,
    queue: &SqsOutboundQueue,
    dlq_url: &str,
    suffix: &str,
    m: Message,
) -> Entry {
    let reason = m
        .message_attributes
        .as_ref()
        .and_then(|a| a.get(REASON_ATTRIBUTE))
        .and_then(|v| v.string_value.clone());
    let mut entry = Entry {
        dlq_message_id: m.message_id.clone().unwrap_or_default(),
        send_id: None,
        reason,
        outcome: Outcome::Failed { why: String::new() },
    };
    let job = match decode_job(m.body.as_deref().unwrap_or_default()) {
        Ok(job) => job,
        Err(e) => {
            entry.outcome = failed("not a send job", &e);
            return entry;
        }
    };
    entry.send_id = Some(job.send_id.as_str().to_owned());
    let delete = || async {
        let Some(handle) = m.receipt_handle.as_deref() else {
            return Err::<(), BoxError>("the message has no receipt handle".into());
        };
        client
            .delete_message()
            .queue_url(dlq_url)
            .receipt_handle(handle)
            .send()
            .await
            .map(|_| ())
            .map_err(BoxError::from)
    };
    entry.outcome = match reset(store, &job).await {
        Err(outcome) => outcome,
        Ok(Reset::Settled(state)) => match delete().await {
            Ok(()) => Outcome::AlreadySettled { state },
            Err(e) => failed(
                "the send is settled, but its DLQ copy could not be deleted",
                &*e,
            ),
        },
        Ok(Reset::Pending { original, saved }) => {
            match queue.enqueue_with_dedup_suffix(&job, suffix).await {
                Ok(()) => Outcome::Moved {
                    dlq_deleted: delete().await.is_ok(),
                },
                Err(e) => {
                    let restored = restore(store, *original, saved.version).await;
                    let why = if restored {
                        "could not requeue the job (the send is dead-lettered again)"
                    } else {
                        "could not requeue the job, nor put the send back to dead-lettered"
                    };
                    failed(why, &e)
                }
            }
        }
    };
    entry
}

/// What [`reset`] did to the send.
enum Reset {
    /// The send is not dead-lettered: leave it.
    Settled(&'static str),
    /// The send was `DeadLettered` (`original`, as read) and is now saved `Pending`.
    Pending {
        original: Box<SendRecord>,
        saved: Box<SendRecord>,
    },
}

/// Reads the send and applies the domain's redrive, saving over the version read.
async fn reset(store: &DynamoStore, job: &SendJob) -> Result<Reset, Outcome> {
    for _ in 0..SAVE_ATTEMPTS {
        let mut record = match store.get_send(&job.send_id).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(Outcome::Failed {
                    why: "the send is not in the store (expired, or another table?)".into(),
                });
            }
            Err(e) => return Err(failed("could not read the send", &e)),
        };
        let original = record.clone();
        if !record.redrive() {
            return Ok(Reset::Settled(record.state.name()));
        }
        match store.save_send(&mut record).await {
            Ok(true) => {
                return Ok(Reset::Pending {
                    original: Box::new(original),
                    saved: Box::new(record),
                });
            }
            Ok(false) => continue,
            Err(e) => return Err(failed("could not save the send", &e)),
        }
    }
    Err(Outcome::Failed {
        why: "the send kept changing while it was reset; try again".into(),
    })
}

/// Puts a send back to how it was read, over the version we saved; `false` if that failed.
async fn restore(store: &DynamoStore, mut original: SendRecord, version: u64) -> bool {
    original.version = version;
    matches!(store.save_send(&mut original).await, Ok(true))
}

/// A failure outcome with the error's whole chain (SDK errors say little at the top).
fn failed(what: &str, e: &(dyn std::error::Error + 'static)) -> Outcome {
    let mut why = format!("{what}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        why.push_str(&format!(": {s}"));
        source = s.source();
    }
    Outcome::Failed { why }
}

/// Redrives up to `max` messages of the inbound DLQ with `wa_sqs::redrive` (events are
/// applied idempotently, so they need no reset).
pub async fn inbound(
    client: &Client,
    queues: &Queues,
    max: usize,
) -> Result<wa_sqs::RedriveReport, CliError> {
    wa_sqs::redrive(client, &queues.dlq_url, &queues.queue_url, max)
        .await
        .map_err(CliError::InboundRedrive)
}
