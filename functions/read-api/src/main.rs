//! `read-api`: the `/v1` read routes. Wiring only; see `handler.rs`.

mod handler;

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    wa_edge::init_logging();
    let aws = wa_edge::aws_config().await;
    let store = &wa_dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        wa_edge::required("VENTANA_TABLE_NAME")?,
    );
    run(service_fn(move |req| async move {
        Ok::<_, Error>(handler::handle(store, &req, wa_domain::clock::unix_now()).await)
    }))
    .await
}
