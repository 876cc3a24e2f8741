//! Translates a batch of step messages into planner steps and their follow-ups.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use wa_domain::broadcast::planner::{Deps, PlannerConfig, StepResult, step};
use wa_domain::broadcast::{BroadcastStore, LimitStore, OutboundBatch, RecipientSource, StepQueue};
use wa_domain::ports::{Clock, QueueError};
use wa_domain::templates::TemplateStore;

/// Why one record was not done (it is reported as a batch item failure).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The body is not a step message.
    #[error(transparent)]
    BadStep(#[from] wa_sqs::broadcast::BadStep),
    /// The step failed (a store or the outbound queue).
    #[error(transparent)]
    Plan(#[from] wa_domain::broadcast::planner::PlanError),
    /// The next step could not be queued.
    #[error(transparent)]
    Requeue(#[from] QueueError),
}

/// Runs the step of every record in turn; the records whose step or follow-up failed are
/// returned as batch item failures.
pub async fn handle<S, L, T, R, O, C, P>(
    deps: &Deps<'_, S, L, T, R, O, C>,
    cfg: &PlannerConfig,
    steps: &P,
    event: SqsEvent,
) -> SqsBatchResponse
where
    S: BroadcastStore,
    L: LimitStore,
    T: TemplateStore,
    R: RecipientSource,
    O: OutboundBatch,
    C: Clock,
    P: StepQueue,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let message_id = record.message_id.unwrap_or_default();
        let body = record.body.unwrap_or_default();
        if let Err(err) = one(deps, cfg, steps, &body).await {
            match &err {
                RecordError::BadStep(_) => {
                    tracing::warn!(message_id = %message_id, error = %err, "not a step message")
                }
                _ => tracing::error!(message_id = %message_id, error = ?err, "step failed"),
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

async fn one<S, L, T, R, O, C, P>(
    deps: &Deps<'_, S, L, T, R, O, C>,
    cfg: &PlannerConfig,
    steps: &P,
    body: &str,
) -> Result<(), RecordError>
where
    S: BroadcastStore,
    L: LimitStore,
    T: TemplateStore,
    R: RecipientSource,
    O: OutboundBatch,
    C: Clock,
    P: StepQueue,
{
    let (id, chain) = wa_sqs::decode_step(body)?;
    match step(deps, cfg, &id, chain).await? {
        StepResult::Again { after_secs, chain } => {
            steps.schedule(&id, chain, after_secs).await?;
            tracing::info!(broadcast_id = %id, chain, after_secs, "step done, next scheduled");
        }
        StepResult::Idle => tracing::info!(broadcast_id = %id, chain, "step done, idle"),
    }
    Ok(())
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
