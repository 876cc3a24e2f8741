//! `deliver-worker`: the outbound queue's consumer. Wiring only; see `handler.rs`.

use deliver_worker::{clock, config, handler};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use wa_domain::outbound::deliver::Deliverer;
use wa_domain::pacing::PacerConfig;
use wa_domain::pacing::pair::PairPolicy;
use wa_graph::{GraphClient, Timeouts};

/// Besides the Graph API timeout and the longest in-process pacer wait, this much is kept
/// free before the invocation's deadline: no new send starts later than that.
const DEADLINE_MARGIN_MS: i64 = 2_000;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wa_edge::init_logging();
    let aws = wa_edge::aws_config().await;
    let store = wa_dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        wa_edge::required("VENTANA_TABLE_NAME")?,
    );
    let request_ms: u64 = wa_edge::number("GRAPH_API_TIMEOUT_MS", 6_000)?;
    let timeouts = Timeouts::for_request_ms(request_ms);
    let token = wa_edge::secret(&aws, "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_ACCESS_TOKEN_ARN").await?;
    let graph = GraphClient::new(
        &wa_edge::optional("GRAPH_API_BASE_URL", "https://graph.facebook.com"),
        wa_edge::optional("GRAPH_API_VERSION", "v25.0"),
        token,
        timeouts,
    )?;
    let config = config::deliver_config()?;
    let reserve = i64::try_from(request_ms).unwrap_or(i64::MAX)
        + config.max_inline_wait_ms
        + DEADLINE_MARGIN_MS;
    let engine = &Deliverer::new(
        store.clone(),
        store.clone(),
        store,
        graph,
        clock::SystemClock,
        config,
        PacerConfig::default(),
        PairPolicy::default(),
        rand::random(),
    );
    let control = &wa_sqs::OutboundControl::new(
        aws_sdk_sqs::Client::new(&aws),
        wa_edge::required("OUTBOUND_QUEUE_URL")?,
        wa_edge::required("OUTBOUND_DLQ_URL")?,
    );
    run(service_fn(move |ev: LambdaEvent<_>| {
        let deadline = i64::try_from(ev.context.deadline).unwrap_or(i64::MAX);
        handler::handle(
            engine,
            control,
            ev.payload,
            deadline.saturating_sub(reserve),
        )
    }))
    .await
}
