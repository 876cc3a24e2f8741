//! `send-api`: `POST /{version}/{phone_number_id}/messages` and the `/v1/broadcasts` routes.
//! Wiring only; see `handler.rs` and `broadcasts.rs`. Env: `VENTANA_TABLE_NAME`,
//! `OUTBOUND_QUEUE_URL`, `BROADCAST_QUEUE_URL` (the planner's step queue; unset, the broadcast
//! routes answer 503), `VENTANA_RECIPIENTS_BUCKET` (recipient lists: upload URLs and
//! `recipients_csv`; unset, both are refused with 400),
//! `SEND_WINDOW_MARGIN_SECS`, `HISTORY_RETENTION_DAYS`; for `POST /v1/templates/sync` (see
//! `templates.rs`), as the deliver-worker: `GRAPH_API_BASE_URL`, `GRAPH_API_VERSION`,
//! `GRAPH_API_TIMEOUT_MS`, `WHATSAPP_ACCESS_TOKEN` (AWS: `WHATSAPP_ACCESS_TOKEN_ARN`).

use lambda_http::{Error, RequestExt, run, service_fn};
use send_api::broadcasts::BroadcastDeps;
use send_api::uploads::Uploads;
use send_api::{handler, templates};
use wa_domain::model::MessagingLimit;
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
    let bucket = wa_edge::optional("VENTANA_RECIPIENTS_BUCKET", "");
    let uploads = (!bucket.is_empty()).then(|| Uploads {
        bucket,
        signer: Box::new(wa_s3::S3Presigner::new(wa_s3::client(&aws))),
    });
    let broadcasts = (!step_queue_url.is_empty()).then(|| BroadcastDeps {
        store: store.clone(),
        templates: store.clone(),
        steps: wa_sqs::SqsStepQueue::new(sqs.clone(), step_queue_url),
        retention_secs,
        uploads,
    });
    let broadcasts = broadcasts.as_ref();
    // Only the template sync uses the Graph API: without a token, sends still work and the
    // sync answers 503.
    let graph = match wa_edge::secret(&aws, "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_ACCESS_TOKEN_ARN")
        .await
    {
        Ok(token) => Some(wa_graph::GraphClient::new(
            &wa_edge::optional("GRAPH_API_BASE_URL", "https://graph.facebook.com"),
            wa_edge::optional("GRAPH_API_VERSION", "v25.0"),
            token,
            wa_graph::Timeouts::for_request_ms(wa_edge::number("GRAPH_API_TIMEOUT_MS", 6_000)?),
        )?),
        Err(wa_edge::ConfigError::Missing(_)) => {
            tracing::warn!("WHATSAPP_ACCESS_TOKEN is not set: POST /v1/templates/sync answers 503");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let graph = graph.as_ref();
    let deps = &handler::Deps {
        store,
        queue: wa_sqs::SqsOutboundQueue::new(sqs, wa_edge::required("OUTBOUND_QUEUE_URL")?),
        config: AcceptConfig {
            window_margin_secs: wa_edge::number("SEND_WINDOW_MARGIN_SECS", 60)?,
            retention_secs,
            default_tier: wa_edge::parsed(
                "MESSAGING_LIMIT_DEFAULT_TIER",
                MessagingLimit::Tier250,
                MessagingLimit::parse,
                MessagingLimit::NAMES,
            )?,
        },
    };
    run(service_fn(move |req: lambda_http::Request| async move {
        let now_ms = wa_domain::clock::unix_now_ms();
        if let Some(route) = templates::route(req.raw_http_path()) {
            let trace = handler::request_id(&req);
            let now = now_ms / 1000;
            return Ok::<_, Error>(
                templates::handle(&deps.store, graph, &req, route, now, &trace).await,
            );
        }
        Ok::<_, Error>(handler::handle_all(deps, broadcasts, req, now_ms, rand::random()).await)
    }))
    .await
}
