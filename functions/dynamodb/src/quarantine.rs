//! [`Quarantine`]: correctly signed bodies that could not be parsed, and inbound events too
//! large for an SQS message (as their queue message; the `reason` says which), kept whole for
//! 30 days.
//!
//! A body (up to a few MB) is split into items of at most [`CHUNK_BYTES`] of binary data,
//! below DynamoDB's 400 KB item limit, under one partition named by the body's SHA-256. The
//! `META` item is written last, so its presence means every chunk is there; quarantining the
//! same body again finds it and writes nothing.

use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use wa_domain::ports::{Quarantine, StoreError};

use crate::DynamoStore;
use crate::attr::{conditional, n, req_n, req_s, s, unavailable};
use crate::keys::*;
use crate::reader::SortKeys;

/// The largest piece of a body stored in one item.
pub const CHUNK_BYTES: usize = 300 * 1024;
/// How long a quarantined body is kept.
pub const RETENTION_SECS: i64 = 30 * 24 * 3600;
/// BatchWriteItem's limit.
const BATCH: usize = 25;
const DATA: &str = "data";

/// Some writes of a batch were still unprocessed after the retries (throttling).
#[derive(Debug, thiserror::Error)]
#[error("{0} quarantine chunks still unprocessed after retries")]
struct Unprocessed(usize);

impl DynamoStore {
    /// BatchWriteItem with retries of unprocessed items (short exponential backoff).
    pub(crate) async fn batch_put(
        &self,
        mut requests: Vec<WriteRequest>,
    ) -> Result<(), StoreError> {
        for attempt in 0..5u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            self.metrics.write();
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(unavailable)?;
            requests = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
        }
        Err(unavailable(Unprocessed(requests.len())))
    }

    /// A quarantined body and its reason, by the id [`Quarantine::quarantine`] returned.
    /// The chunks are checked against the id (the body's SHA-256).
    pub async fn quarantined(&self, id: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let pk = quarantine_pk(id);
        let Some(meta) = self.get(key(pk.clone(), META_SK), true).await? else {
            return Ok(None);
        };
        let reason = req_s(&meta, "reason")?.to_owned();
        let chunks = usize::try_from(req_n(&meta, "chunks")?)
            .map_err(|_| StoreError::Corrupt("negative chunk count".into()))?;
        let mut body = Vec::new();
        let mut seen = 0usize;
        for item in self
            .query_partition(&pk, SortKeys::Prefix("CHUNK#"), true)
            .await?
        {
            if req_s(&item, SK)? != chunk_sk(seen) {
                return Err(StoreError::Corrupt(format!(
                    "quarantine chunk {seen} missing"
                )));
            }
            match item.get(DATA) {
                Some(AttributeValue::B(b)) => body.extend_from_slice(b.as_ref()),
                _ => return Err(StoreError::Corrupt("quarantine chunk without data".into())),
            }
            seen += 1;
        }
        if seen != chunks || sha256_hex(&body) != id {
            return Err(StoreError::Corrupt(format!(
                "quarantined body {id} does not match its chunks"
            )));
        }
        Ok(Some((body, reason)))
    }
}

impl Quarantine for DynamoStore {
    async fn quarantine(
        &self,
        body: &[u8],
        reason: &str,
        received_at: i64,
    ) -> Result<String, StoreError> {
        let hash = sha256_hex(body);
        let pk = quarantine_pk(&hash);
        if self.get(key(pk.clone(), META_SK), true).await?.is_some() {
            return Ok(hash);
        }
        let ttl = received_at.saturating_add(RETENTION_SECS);
        let requests = body
            .chunks(CHUNK_BYTES)
            .enumerate()
            .map(|(i, chunk)| {
                let mut item = key(pk.clone(), &chunk_sk(i));
                item.insert(DATA.into(), AttributeValue::B(Blob::new(chunk)));
                item.insert(TTL.into(), n(ttl));
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        let chunks = requests.len();
        let mut requests = requests.into_iter();
        loop {
            let batch: Vec<_> = requests.by_ref().take(BATCH).collect();
            if batch.is_empty() {
                break;
            }
            self.batch_put(batch).await?;
        }
        let mut meta = key(pk, META_SK);
        meta.extend([
            ("reason".into(), s(reason)),
            ("received_at".into(), n(received_at)),
            (
                "size".into(),
                n(i64::try_from(body.len()).unwrap_or(i64::MAX)),
            ),
            (
                "chunks".into(),
                n(i64::try_from(chunks).unwrap_or(i64::MAX)),
            ),
            (TTL.into(), n(ttl)),
        ]);
        self.metrics.write();
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(meta))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        // Lost a race with the same body: the other writer's META is as good as ours.
        conditional(r)?;
        Ok(hash)
    }
}
