//! `send-api`: `POST /{version}/{phone_number_id}/messages` and the `/v1/broadcasts` routes.
//! Wiring only; see `handler.rs` and `broadcasts.rs`. Env: `VENTANA_TABLE_NAME`,
//! `OUTBOUND_QUEUE_URL`, `BROADCAST_QUEUE_URL` (the planner's step queue; unset, the broadcast
//! routes answer 503),
//! `SEND_WINDOW_MARGIN_SECS`, `HISTORY_RETENTION_DAYS`.

use lambda_http::{Error, run, service_fn};
use send_api::broadcasts::BroadcastDeps;
use send_api::handler;
use wa_domain::outbound::accept::AcceptConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wa_edge::init_logging();
    let aws = wa_edge::aws_config().await;
    let store = wa_dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        wa_edge::required("VENTANA_TABLE_NAME")?,
    );
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let retention_secs = wa_edge::number::<i64>("HISTORY_RETENTION_DAYS", 90)? * 86_400;
    let step_queue_url = wa_edge::optional("BROADCAST_QUEUE_URL", "");
    if step_queue_url.is_empty() {
        tracing::warn!("BROADCAST_QUEUE_URL is not set: the broadcast routes answer 503");
    }
    let broadcasts = (!step_queue_url.is_empty()).then(|| BroadcastDeps {
        store: store.clone(),
        templates: store.clone(),
        steps: wa_sqs::SqsStepQueue::new(sqs.clone(), step_queue_url),
        retention_secs,
    });
    let broadcasts = broadcasts.as_ref();
    let deps = &handler::Deps {
        store,
        queue: wa_sqs::SqsOutboundQueue::new(sqs, wa_edge::required("OUTBOUND_QUEUE_URL")?),
        config: AcceptConfig {
            window_margin_secs: wa_edge::number("SEND_WINDOW_MARGIN_SECS", 60)?,
            retention_secs,
        },
    };
    run(service_fn(move |req| async move {
        let now_ms = wa_domain::clock::unix_now_ms();
        Ok::<_, Error>(handler::handle_all(deps, broadcasts, req, now_ms, rand::random()).await)
    }))
    .await
}
