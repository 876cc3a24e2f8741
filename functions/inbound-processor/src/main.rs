//! `inbound-processor`: the inbound queue's consumer. Wiring only; see `handler.rs`.

mod handler;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wa_domain::inbound::InboundConfig;
use wa_domain::optout::{DEFAULT_START, DEFAULT_STOP, DEFAULT_STOP_BUTTONS, Keywords};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wa_edge::init_logging();
    let aws = wa_edge::aws_config().await;
    let store = &wa_dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        wa_edge::required("VENTANA_TABLE_NAME")?,
    );
    let cfg = &InboundConfig {
        retention_secs: wa_edge::number("HISTORY_RETENTION_DAYS", 90_i64)? * 86_400,
        keywords: Keywords::parse(
            &wa_edge::optional("OPT_OUT_KEYWORDS", DEFAULT_STOP),
            &wa_edge::optional("OPT_IN_KEYWORDS", DEFAULT_START),
            &wa_edge::optional("OPT_OUT_BUTTONS", DEFAULT_STOP_BUTTONS),
        ),
    };
    run(service_fn(move |ev: LambdaEvent<_>| {
        handler::handle(store, cfg, ev.payload, wa_domain::clock::unix_now())
    }))
    .await
}
