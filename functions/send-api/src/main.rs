//! `send-api`: `POST /{version}/{phone_number_id}/messages`. Wiring only; see `handler.rs`.

use lambda_http::{Error, run, service_fn};
use send_api::handler;
use wa_domain::outbound::accept::AcceptConfig;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wa_edge::init_logging();
    let aws = wa_edge::aws_config().await;
    let deps = &handler::Deps {
        store: wa_dynamodb::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            wa_edge::required("VENTANA_TABLE_NAME")?,
        ),
        queue: wa_sqs::SqsOutboundQueue::new(
            aws_sdk_sqs::Client::new(&aws),
            wa_edge::required("OUTBOUND_QUEUE_URL")?,
        ),
        config: AcceptConfig {
            window_margin_secs: wa_edge::number("SEND_WINDOW_MARGIN_SECS", 60)?,
            retention_secs: wa_edge::number::<i64>("HISTORY_RETENTION_DAYS", 90)? * 86_400,
        },
    };
    run(service_fn(move |req| async move {
        let now_ms = wa_domain::clock::unix_now_ms();
        Ok::<_, Error>(handler::handle(deps, req, now_ms, rand::random()).await)
    }))
    .await
}
