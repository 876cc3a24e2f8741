//! `broadcast-planner`: the broadcast step queue's consumer. Wiring only; see `handler.rs`
//! and the crate docs for the environment.

use broadcast_planner::source::ListSource;
use broadcast_planner::{config, handler};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wa_domain::broadcast::planner::Deps;

/// Wall-clock time for the planner.
struct SystemClock;

impl wa_domain::ports::Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        wa_domain::clock::unix_now_ms()
    }

    async fn sleep_until(&self, until_ms: i64) {
        let wait = until_ms.saturating_sub(self.now_ms());
        if wait > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(wait.unsigned_abs())).await;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    wa_edge::init_logging();
    let aws = wa_edge::aws_config().await;
    let store = &wa_dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        wa_edge::required("VENTANA_TABLE_NAME")?,
    );
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let outbound =
        &wa_sqs::SqsOutboundQueue::new(sqs.clone(), wa_edge::required("OUTBOUND_QUEUE_URL")?);
    let steps = &wa_sqs::SqsStepQueue::new(sqs, wa_edge::required("BROADCAST_QUEUE_URL")?);
    let cfg = &config::planner_config()?;
    let bucket = wa_edge::optional("VENTANA_RECIPIENTS_BUCKET", "");
    if bucket.is_empty() {
        tracing::warn!("VENTANA_RECIPIENTS_BUCKET is not set: recipient CSV lists are not read");
    }
    let source = &ListSource::from_config(&aws, &bucket);
    let deps = &Deps {
        store,
        limits: store,
        templates: store,
        source,
        outbound,
        clock: &SystemClock,
    };
    run(service_fn(move |ev: LambdaEvent<_>| async move {
        Ok::<_, Error>(handler::handle(deps, cfg, steps, ev.payload).await)
    }))
    .await
}
