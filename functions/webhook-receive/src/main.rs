//! `webhook-receive`: Meta's `POST /webhook`. Wiring only; see `handler.rs`.

mod handler;

use lambda_http::{Error, run, service_fn};
use wa_domain::signature::AppSecrets;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wa_edge::init_logging();
    let aws = wa_edge::aws_config().await;
    let secret = wa_edge::secret(&aws, "WHATSAPP_APP_SECRET", "WHATSAPP_APP_SECRET_ARN");
    // The handshake's token only where this function is Meta's callback URL (a function URL).
    let token = async {
        match wa_edge::secret(&aws, "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_VERIFY_TOKEN_ARN").await {
            Ok(t) => Ok(Some(t)),
            Err(wa_edge::ConfigError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
        }
    };
    let (secret, verify_token) = tokio::join!(secret, token);
    let deps = &handler::Deps {
        secrets: AppSecrets::parse(&secret?)?,
        verify_token: verify_token?,
        queue: wa_sqs::SqsEventQueue::new(
            aws_sdk_sqs::Client::new(&aws),
            wa_edge::required("INBOUND_QUEUE_URL")?,
        ),
        quarantine: wa_dynamodb::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&aws),
            wa_edge::required("VENTANA_TABLE_NAME")?,
        ),
    };
    run(service_fn(move |req| async move {
        Ok::<_, Error>(handler::handle(deps, req).await)
    }))
    .await
}
