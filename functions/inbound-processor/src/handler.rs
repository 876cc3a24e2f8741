//! Translates an SQS batch into domain `apply` calls and reports partial batch failures.
//!
//! Events of one FIFO message group (one customer of one number) are applied in order; groups
//! run concurrently. When an event fails, the later events of its group in this batch are
//! reported as failed too, without being tried, so the group's order survives the retry. An
//! event that cannot be decoded is reported failed: after `maxReceiveCount` receives it lands
//! in the dead-letter queue, where the alarm shows it. Nothing is dropped silently.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use wa_domain::inbound::{InboundConfig, apply};
use wa_domain::ports::{InboundStore, SendStore};
use wa_domain::templates::TemplateStore;

/// A batch that cannot be reported item by item.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A record has no `messageId`, so it cannot be named in `batchItemFailures`; the whole
    /// batch is retried instead.
    #[error("SQS record without messageId")]
    MissingMessageId,
}

impl From<ProcessError> for lambda_runtime::Diagnostic {
    fn from(e: ProcessError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "ProcessError".into(),
            error_message: e.to_string(),
        }
    }
}

/// Applies a batch; the answer lists the records to retry.
pub async fn handle<S: InboundStore + SendStore + TemplateStore>(
    store: &S,
    cfg: &InboundConfig,
    event: SqsEvent,
    now: i64,
) -> Result<SqsBatchResponse, ProcessError> {
    if event.records.iter().any(|r| r.message_id.is_none()) {
        return Err(ProcessError::MissingMessageId);
    }
    // Group records, keeping their order inside each group.
    let mut groups: Vec<(String, Vec<&SqsMessage>)> = Vec::new();
    for record in &event.records {
        let group = record
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, records)) => records.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    let failed = join_all(
        groups
            .iter()
            .map(|(_, records)| apply_group(store, cfg, records, now)),
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

/// Applies one group's records in order; returns the ids of those to retry.
async fn apply_group<S: InboundStore + SendStore + TemplateStore>(
    store: &S,
    cfg: &InboundConfig,
    records: &[&SqsMessage],
    now: i64,
) -> Vec<String> {
    let mut failed = Vec::new();
    for record in records {
        let id = record.message_id.clone().unwrap_or_default();
        if !failed.is_empty() {
            failed.push(id);
            continue;
        }
        let body = record.body.as_deref().unwrap_or_default();
        let event = match wa_sqs::decode(body) {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(error = ?e, message_id = %id, "undecodable inbound record; it will reach the DLQ");
                failed.push(id);
                continue;
            }
        };
        match apply(store, &event, cfg, now).await {
            Ok(applied) => tracing::debug!(?applied, kind = event.kind.as_str(), "applied"),
            Err(e) => {
                tracing::error!(error = ?e, message_id = %id, kind = event.kind.as_str(), "event not applied; will retry");
                failed.push(id);
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_domain::customer::CustomerKey;
    use wa_domain::status::DeliveryStatus;
    use wa_domain::testing::InMemoryStore;

    const PNID: &str = "106540352242922";
    const BSUID: &str = "US.13491208655302741918";
    const T0: i64 = 1_795_420_800;

    fn batch(fixture: &str) -> SqsEvent {
        serde_json::from_str(fixture).expect("fixture is an SQS event")
    }

    fn ids(r: &SqsBatchResponse) -> Vec<String> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_batch_records_the_message_the_status_and_the_template_update() {
        let store = InMemoryStore::default();
        let cfg = InboundConfig::default();
        let r = handle(
            &store,
            &cfg,
            batch(include_str!("../../../events/inbound-processor/batch.json")),
            T0,
        )
        .await
        .unwrap();
        assert!(ids(&r).is_empty());
        assert_eq!(store.message_count(), 1);
        let key = CustomerKey::Bsuid(BSUID.into());
        assert_eq!(
            store.window_of(PNID, &key).unwrap().customer_service_until,
            Some(T0 + 86_400)
        );
        assert_eq!(
            store.delivery("wamid.OUT1").unwrap().current(),
            Some(DeliveryStatus::Read)
        );
        let tpl = store
            .account("102290129340398", "template#order_update#es#status")
            .unwrap();
        assert!(tpl.attributes.contains(&("status".into(), "PAUSED".into())));
    }

    #[tokio::test]
    async fn a_redelivered_batch_records_nothing_twice() {
        let store = InMemoryStore::default();
        let cfg = InboundConfig::default();
        for _ in 0..3 {
            let r = handle(
                &store,
                &cfg,
                batch(include_str!("../../../events/inbound-processor/batch.json")),
                T0,
            )
            .await
            .unwrap();
            assert!(ids(&r).is_empty());
        }
        assert_eq!(store.message_count(), 1);
        assert_eq!(store.events().len(), 1, "the template update is kept once");
    }

    #[tokio::test]
    async fn a_poison_record_is_reported_and_the_rest_is_applied() {
        let store = InMemoryStore::default();
        let r = handle(
            &store,
            &InboundConfig::default(),
            batch(include_str!(
                "../../../events/inbound-processor/poison.json"
            )),
            T0,
        )
        .await
        .unwrap();
        assert_eq!(
            ids(&r),
            vec!["0e9a2d6c-0000-4000-8000-000000000004".to_owned()]
        );
        assert_eq!(store.message_count(), 1);
    }

    #[tokio::test]
    async fn a_store_outage_reports_every_record_for_retry() {
        let store = InMemoryStore::default();
        store.set_failing(true);
        let r = handle(
            &store,
            &InboundConfig::default(),
            batch(include_str!("../../../events/inbound-processor/batch.json")),
            T0,
        )
        .await
        .unwrap();
        assert_eq!(ids(&r).len(), 3);
    }

    #[tokio::test]
    async fn later_records_of_a_failed_group_are_retried_in_order() {
        // The poison record is first in its group here: the good record after it must wait.
        let mut ev = batch(include_str!(
            "../../../events/inbound-processor/poison.json"
        ));
        ev.records.reverse();
        let store = InMemoryStore::default();
        let r = handle(&store, &InboundConfig::default(), ev, T0)
            .await
            .unwrap();
        assert_eq!(ids(&r).len(), 2);
        assert_eq!(store.message_count(), 0);
    }

    #[tokio::test]
    async fn a_record_without_message_id_fails_the_whole_batch() {
        let mut ev = batch(include_str!("../../../events/inbound-processor/batch.json"));
        ev.records[1].message_id = None;
        let store = InMemoryStore::default();
        assert!(matches!(
            handle(&store, &InboundConfig::default(), ev, T0).await,
            Err(ProcessError::MissingMessageId)
        ));
        assert_eq!(store.message_count(), 0);
    }
}
