//! Translates an outbound-queue batch into [`Deliverer::deliver`] calls, and their
//! [`JobOutcome`]s into SQS actions and partial batch failures.
//!
//! - One FIFO group (a number and one customer) is delivered in order; groups run
//!   concurrently. When a message of a group is deferred or fails, the later ones of that
//!   group in the batch are not tried and are deferred as long, so the group's order holds.
//! - `Done` → success (Lambda deletes the message). `Defer` → `ChangeMessageVisibility` to the
//!   delay, then a batch item failure (Lambda leaves it; it comes back after the delay).
//!   `DeadLetter` → a copy with the reason goes to the DLQ, then success; if that copy cannot
//!   be sent, a failure (the message comes back; nothing is lost). `StopSending` (Meta said
//!   stop sending from the number: an expired token, a locked account) is dead-lettered the
//!   same way, with an error-level log naming the code, for operations.
//! - A body that is not an outbound job goes to the DLQ with the decoding error as reason.
//! - Near the invocation's deadline no new send is started: the rest are made visible again
//!   at once and reported as failures, so a slow batch never runs into the Lambda timeout
//!   mid-call.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures::future::join_all;
use wa_domain::outbound::deliver::{Deliverer, JobOutcome};
use wa_domain::pacing::LeaseStore;
use wa_domain::pacing::pair::PairStore;
use wa_domain::ports::{
    Clock, ConversationReader, GraphSender, InboundStore, SendJob, SendStore, StoreError,
};

/// How long to hold a group after a store failure before trying again.
pub const STORE_RETRY_MS: i64 = 5_000;

/// Why the queue could not be told what to do with a message.
#[derive(Debug, thiserror::Error)]
#[error("queue control failed: {0}")]
pub struct ControlFailure(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// What the worker does to a received message besides acknowledging it.
pub trait QueueControl: Send + Sync {
    /// Keeps the message invisible for `delay_ms`.
    fn defer(
        &self,
        receipt_handle: &str,
        delay_ms: i64,
    ) -> impl Future<Output = Result<(), ControlFailure>> + Send;
    /// Sends a copy with `reason` to the dead-letter queue.
    fn dead_letter(
        &self,
        body: &str,
        group: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), ControlFailure>> + Send;
}

impl QueueControl for wa_sqs::OutboundControl {
    async fn defer(&self, receipt_handle: &str, delay_ms: i64) -> Result<(), ControlFailure> {
        wa_sqs::OutboundControl::defer(self, receipt_handle, delay_ms)
            .await
            .map(|_| ())
            .map_err(|e| ControlFailure(Box::new(e)))
    }

    async fn dead_letter(
        &self,
        body: &str,
        group: &str,
        reason: &str,
    ) -> Result<(), ControlFailure> {
        wa_sqs::OutboundControl::dead_letter(self, body, group, reason)
            .await
            .map_err(|e| ControlFailure(Box::new(e)))
    }
}

/// The delivery engine, as the handler sees it.
pub trait Engine: Send + Sync {
    /// [`Deliverer::deliver`].
    fn deliver(
        &self,
        job: &SendJob,
        backlog: u32,
    ) -> impl Future<Output = Result<JobOutcome, StoreError>> + Send;
    /// Now, unix ms.
    fn now_ms(&self) -> i64;
}

impl<S, L, P, G, C> Engine for Deliverer<S, L, P, G, C>
where
    S: SendStore
        + InboundStore
        + ConversationReader
        + wa_domain::templates::TemplateStore
        + wa_domain::broadcast::LimitStore,
    L: LeaseStore + wa_domain::pacing::BrakeStore,
    P: PairStore,
    G: GraphSender,
    C: Clock,
{
    fn deliver(
        &self,
        job: &SendJob,
        backlog: u32,
    ) -> impl Future<Output = Result<JobOutcome, StoreError>> + Send {
        Deliverer::deliver(self, job, backlog)
    }

    fn now_ms(&self) -> i64 {
        self.clock().now_ms()
    }
}

/// A batch that cannot be reported item by item.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A record has no `messageId` or receipt handle, so it cannot be named in
    /// `batchItemFailures` or deferred; the whole batch is retried instead.
    #[error("SQS record without messageId or receiptHandle")]
    MalformedRecord,
}

impl From<WorkerError> for lambda_runtime::Diagnostic {
    fn from(e: WorkerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "WorkerError".into(),
            error_message: e.to_string(),
        }
    }
}

/// One record with its decoded job.
struct Item<'a> {
    id: &'a str,
    receipt: &'a str,
    body: &'a str,
    group: String,
    job: Result<SendJob, String>,
}

/// Delivers a batch; the answer lists the records to retry. No send is started after
/// `stop_starting_at_ms` (unix ms).
pub async fn handle<E: Engine, Q: QueueControl>(
    engine: &E,
    control: &Q,
    event: SqsEvent,
    stop_starting_at_ms: i64,
) -> Result<SqsBatchResponse, WorkerError> {
    let mut items = Vec::with_capacity(event.records.len());
    for record in &event.records {
        let (Some(id), Some(receipt)) = (&record.message_id, &record.receipt_handle) else {
            return Err(WorkerError::MalformedRecord);
        };
        let body = record.body.as_deref().unwrap_or_default();
        let group = record
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        let job = wa_sqs::decode_job(body).map_err(|e| e.to_string());
        items.push(Item {
            id,
            receipt,
            body,
            group,
            job,
        });
    }
    // Groups in first-seen order, records in order within each.
    let mut groups: Vec<(&str, Vec<&Item<'_>>)> = Vec::new();
    for item in &items {
        match groups.iter_mut().find(|(g, _)| *g == item.group) {
            Some((_, list)) => list.push(item),
            None => groups.push((&item.group, vec![item])),
        }
    }
    let backlog = |job: &SendJob| -> u32 {
        let pnid = pnid_of(&job.group);
        let n = items
            .iter()
            .filter(|i| i.job.as_ref().is_ok_and(|j| pnid_of(&j.group) == pnid))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    let failed = join_all(
        groups
            .iter()
            .map(|(_, list)| deliver_group(engine, control, list, &backlog, stop_starting_at_ms)),
    )
    .await;
    let mut response = SqsBatchResponse::default();
    for id in failed.into_iter().flatten() {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

fn pnid_of(group: &str) -> &str {
    group.split(':').next().unwrap_or_default()
}

/// Delivers one group's records in order; returns the ids to report as failures.
async fn deliver_group<E: Engine, Q: QueueControl>(
    engine: &E,
    control: &Q,
    items: &[&Item<'_>],
    backlog: &(impl Fn(&SendJob) -> u32 + Sync),
    stop_starting_at_ms: i64,
) -> Vec<String> {
    let mut failed = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let rest = &items[n + 1..];
        if engine.now_ms() >= stop_starting_at_ms {
            tracing::info!(
                left = items.len() - n,
                "deadline near: the rest of the group waits"
            );
            hold(control, &items[n..], 0, &mut failed).await;
            break;
        }
        let outcome = match &item.job {
            Err(why) => Ok(JobOutcome::DeadLetter {
                reason: format!("not an outbound job: {why}"),
            }),
            Ok(job) => engine.deliver(job, backlog(job)).await,
        };
        let (reason, stop_code) = match outcome {
            Ok(JobOutcome::Done) => continue,
            Ok(JobOutcome::Defer { delay_ms }) => {
                hold(control, &items[n..], delay_ms, &mut failed).await;
                break;
            }
            Ok(JobOutcome::DeadLetter { reason }) => (reason, None),
            Ok(JobOutcome::StopSending { code, reason }) => (reason, Some(code)),
            Err(e) => {
                tracing::error!(error = ?e, message_id = item.id, "store failed; will retry");
                hold(control, &items[n..], STORE_RETRY_MS, &mut failed).await;
                break;
            }
        };
        let group = match &item.job {
            Ok(job) => job.group.as_str(),
            Err(_) => item.group.as_str(),
        };
        let masked = wa_domain::redact::mask_digit_runs(&reason);
        if let Some(code) = stop_code {
            // For operations: the token or the account needs fixing (no body, no token here:
            // the reason is the code and what Meta's table says of it).
            tracing::error!(
                code,
                phone_number_id = pnid_of(group),
                message_id = item.id,
                reason = %masked,
                "Meta says stop sending from this number: fix the access token or the account, then redrive the DLQ"
            );
        }
        match control.dead_letter(item.body, group, &reason).await {
            Ok(()) => {
                tracing::warn!(message_id = item.id, reason = %masked, "send dead-lettered");
            }
            Err(e) => {
                tracing::error!(error = ?e, message_id = item.id, "could not dead-letter");
                failed.push(item.id.to_owned());
                hold(control, rest, 0, &mut failed).await;
                break;
            }
        }
    }
    failed
}

/// Defers `items` by `delay_ms` and reports them as failures.
async fn hold<Q: QueueControl>(
    control: &Q,
    items: &[&Item<'_>],
    delay_ms: i64,
    failed: &mut Vec<String>,
) {
    for item in items {
        if let Err(e) = control.defer(item.receipt, delay_ms).await {
            // It still comes back, after the queue's visibility timeout.
            tracing::warn!(error = ?e, message_id = item.id, "could not defer");
        }
        failed.push(item.id.to_owned());
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
