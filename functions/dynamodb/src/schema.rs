//! The table's schema, created here for tests and the local stack (`infra/template.yaml`
//! declares the same for AWS).

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};

use crate::keys::{GSI1, GSI1PK, GSI1SK, PK, SK, TTL};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why [`create_table`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// CreateTable was refused or could not be sent.
    #[error("could not create table {table}")]
    CreateTable {
        /// The table.
        table: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// The table did not become active in time.
    #[error("table {table} did not become active")]
    NotActive {
        /// The table.
        table: String,
        /// The waiter's error.
        #[source]
        source: BoxError,
    },
    /// Time to live could not be read or enabled.
    #[error("could not enable time to live on table {table}")]
    TimeToLive {
        /// The table.
        table: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
}

fn attribute(name: &str) -> Result<AttributeDefinition, BoxError> {
    Ok(AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()?)
}

fn key_element(name: &str, key_type: KeyType) -> Result<KeySchemaElement, BoxError> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()?)
}

/// Creates Ventana's table (see the crate docs for the schema) and enables its TTL. A table
/// that already exists is left as it is, apart from enabling TTL if it is off. Waits until
/// the table is active (at most two minutes).
pub async fn create_table(client: &Client, table: &str) -> Result<(), SetupError> {
    let create = |source: BoxError| SetupError::CreateTable {
        table: table.to_owned(),
        source,
    };
    let ttl_error = |source: BoxError| SetupError::TimeToLive {
        table: table.to_owned(),
        source,
    };
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key_element(GSI1PK, KeyType::Hash).map_err(create)?)
        .key_schema(key_element(GSI1SK, KeyType::Range).map_err(create)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| create(e.into()))?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(PK).map_err(create)?)
        .attribute_definitions(attribute(SK).map_err(create)?)
        .attribute_definitions(attribute(GSI1PK).map_err(create)?)
        .attribute_definitions(attribute(GSI1SK).map_err(create)?)
        .key_schema(key_element(PK, KeyType::Hash).map_err(create)?)
        .key_schema(key_element(SK, KeyType::Range).map_err(create)?)
        .global_secondary_indexes(gsi)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => {}
        Err(e) => return Err(create(e.into())),
    }
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(Duration::from_secs(120))
        .await
        .map_err(|e| SetupError::NotActive {
            table: table.to_owned(),
            source: e.into(),
        })?;

    let described = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| ttl_error(e.into()))?;
    let enabled = described.time_to_live_description.is_some_and(|d| {
        d.attribute_name.as_deref() == Some(TTL)
            && matches!(
                d.time_to_live_status,
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            )
    });
    if !enabled {
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL)
            .build()
            .map_err(|e| ttl_error(e.into()))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| ttl_error(e.into()))?;
    }
    Ok(())
}
