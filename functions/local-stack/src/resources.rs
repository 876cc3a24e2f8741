//! The AWS resources of the local stack, created in moto: the table, the queues, the
//! recipients bucket, the dev key.

use aws_config::{BehaviorVersion, Region};
use wa_domain::auth::hash_key;
use wa_domain::ports::{ApiKeyStore, KeyScope, StoreError};
use wa_dynamodb::DynamoStore;

use crate::routes::{QUEUES, STEP_QUEUE_NAME};

/// The table's name.
pub const TABLE_NAME: &str = "ventana";
/// Prefix of the queues' names (`ventana-inbound.fifo`, `ventana-inbound-dlq.fifo`,
/// `ventana-outbound.fifo`, `ventana-outbound-dlq.fifo`).
pub const QUEUE_PREFIX: &str = "ventana-";
/// The recipient lists' bucket (`VENTANA_RECIPIENTS_BUCKET` of send-api and the planner):
/// upload URLs point at moto, path-style.
pub const RECIPIENTS_BUCKET: &str = "ventana-recipients";
/// The region everything pretends to be in.
pub const REGION: &str = "us-east-1";

/// Why the resources could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The table could not be created.
    #[error("cannot create the DynamoDB table")]
    Table(#[source] wa_dynamodb::SetupError),
    /// A queue could not be created.
    #[error("cannot create the queue for {consumer}")]
    Queue {
        /// The queue's consumer.
        consumer: &'static str,
        /// wa-sqs's error.
        #[source]
        source: wa_sqs::SetupError,
    },
    /// The recipients bucket could not be created.
    #[error("cannot create the S3 bucket {RECIPIENTS_BUCKET}")]
    Bucket(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The dev API key could not be stored.
    #[error("cannot store the dev API key")]
    ApiKey(#[source] StoreError),
}

/// A created queue.
#[derive(Clone, Debug)]
pub struct Queue {
    /// The variable that carries its URL.
    pub url_env: &'static str,
    /// The variable that carries its dead-letter queue's URL.
    pub dlq_env: &'static str,
    /// Its consumer.
    pub consumer: &'static str,
    /// Its URL.
    pub url: String,
    /// Its dead-letter queue's URL.
    pub dlq_url: String,
}

/// Clients for the endpoint, with dummy credentials (moto does not check them) and no
/// lookups outside loopback (no profile or instance-metadata credentials).
#[derive(Clone, Debug)]
pub struct Clients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// S3 (path-style).
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    /// Clients for `endpoint`.
    pub async fn new(endpoint: &str) -> Clients {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(REGION))
            .test_credentials()
            .load()
            .await;
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            s3: wa_s3::client(&config),
        }
    }
}

/// Creates the table and every queue of [`QUEUES`] (existing ones are reused), and stores
/// `api_key` with access to any phone number id.
pub async fn create(clients: &Clients, api_key: &str) -> Result<Vec<Queue>, ResourceError> {
    wa_dynamodb::create_table(&clients.dynamodb, TABLE_NAME)
        .await
        .map_err(ResourceError::Table)?;
    create_bucket(&clients.s3).await?;
    let mut queues = Vec::new();
    for spec in QUEUES {
        let created = match spec.kind.spec() {
            Some(fifo) => wa_sqs::create_fifo_queues(&clients.sqs, QUEUE_PREFIX, &fifo).await,
            None => wa_sqs::create_step_queues(&clients.sqs, QUEUE_PREFIX, STEP_QUEUE_NAME).await,
        };
        let (url, dlq_url) = created.map_err(|source| ResourceError::Queue {
            consumer: spec.consumer,
            source,
        })?;
        queues.push(Queue {
            url_env: spec.url_env,
            dlq_env: spec.dlq_env,
            consumer: spec.consumer,
            url,
            dlq_url,
        });
    }
    DynamoStore::new(clients.dynamodb.clone(), TABLE_NAME)
        .put_key(
            &hash_key(api_key),
            &KeyScope::AnyNumber,
            "local-stack dev key",
        )
        .await
        .map_err(ResourceError::ApiKey)?;
    Ok(queues)
}

/// Creates [`RECIPIENTS_BUCKET`] (an existing one is reused).
async fn create_bucket(s3: &aws_sdk_s3::Client) -> Result<(), ResourceError> {
    match s3.create_bucket().bucket(RECIPIENTS_BUCKET).send().await {
        Ok(_) => Ok(()),
        Err(e) => match s3.head_bucket().bucket(RECIPIENTS_BUCKET).send().await {
            Ok(_) => Ok(()),
            Err(_) => Err(ResourceError::Bucket(Box::new(e))),
        },
    }
}
