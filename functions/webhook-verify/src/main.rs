//! `webhook-verify`: answers Meta's `GET /webhook` subscription handshake. Wiring only; see
//! `handler.rs`.

use lambda_http::{Error, run, service_fn};
use webhook_verify::handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    wa_edge::init_logging();
    let aws = wa_edge::aws_config().await;
    let token = wa_edge::secret(&aws, "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_VERIFY_TOKEN_ARN").await?;
    let token = &token;
    run(service_fn(move |req| async move {
        Ok::<_, Error>(handler::handle(token, &req))
    }))
    .await
}
