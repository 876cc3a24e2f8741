//! Recipient lists uploaded to S3 (`VENTANA_RECIPIENTS_BUCKET`):
//!
//! - `POST /v1/broadcasts/uploads` `{"phone_number_id"}` → 201
//!   `{"upload_url","method":"PUT","recipients_csv":{"bucket","key"},"expires_at"}`: a
//!   presigned `PUT` for a new key `uploads/{phone_number_id}/{random}.csv`. The API key must
//!   allow that number (401/403 as the other routes).
//! - `POST /v1/broadcasts` with `recipients_csv` is accepted only for the configured bucket
//!   and a key under `uploads/{that broadcast's phone_number_id}/` ([`check_list`]): a key of
//!   another number's uploads is 403, anything else 400. So a key scoped to one number can
//!   neither read another number's list nor make the planner read an arbitrary object.
//!
//! In AWS the URL is signed with send-api's role, which may only `s3:PutObject` on
//! `uploads/*`; the bucket expires `uploads/` after 7 days. The URL is never logged.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{Value, json};
use wa_domain::broadcast::RecipientList;
use wa_domain::ports::StoreError;

use crate::broadcasts::BroadcastApiError;

/// The prefix of every uploaded list's key.
pub const UPLOAD_PREFIX: &str = "uploads/";
/// How long an upload URL works (s).
pub const UPLOAD_URL_SECS: u64 = 3600;

/// A boxed future (the signer is held as a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Makes presigned `PUT` URLs (S3 in the Lambda; a fake in tests).
pub trait PresignPut: Send + Sync {
    /// A URL accepting one `PUT` of `bucket`/`key` for `expires_in`.
    fn put_url<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expires_in: Duration,
    ) -> BoxFuture<'a, Result<String, StoreError>>;
}

impl PresignPut for wa_s3::S3Presigner {
    fn put_url<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expires_in: Duration,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(async move {
            wa_s3::S3Presigner::put_url(self, bucket, key, expires_in)
                .await
                .map_err(StoreError::from)
        })
    }
}

/// The recipients bucket and its signer.
pub struct Uploads {
    /// `VENTANA_RECIPIENTS_BUCKET`.
    pub bucket: String,
    /// Signs upload URLs.
    pub signer: Box<dyn PresignPut>,
}

/// Where `phone_number_id`'s uploads go: `uploads/{phone_number_id}/`.
pub fn key_prefix(phone_number_id: &str) -> String {
    format!("{UPLOAD_PREFIX}{phone_number_id}/")
}

/// The phone number id of an upload request body `{"phone_number_id"}`.
pub fn parse(body: &[u8]) -> Result<String, BroadcastApiError> {
    let bad = || BroadcastApiError::Bad("send {\"phone_number_id\": \"<digits>\"}".into());
    let v: Value = serde_json::from_slice(body).map_err(|_| bad())?;
    let id = v
        .get("phone_number_id")
        .and_then(Value::as_str)
        .filter(|s| (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(bad)?;
    Ok(id.to_owned())
}

/// A new upload URL for `phone_number_id` (already authorised), its key made from `random`.
pub async fn create(
    uploads: &Uploads,
    phone_number_id: &str,
    now_ms: i64,
    random: [u8; 10],
) -> Result<Value, BroadcastApiError> {
    let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{}{name}.csv", key_prefix(phone_number_id));
    let url = uploads
        .signer
        .put_url(&uploads.bucket, &key, Duration::from_secs(UPLOAD_URL_SECS))
        .await?;
    let expires_at = now_ms.div_euclid(1000) + UPLOAD_URL_SECS as i64;
    Ok(json!({
        "upload_url": url,
        "method": "PUT",
        "recipients_csv": {"bucket": uploads.bucket, "key": key},
        "expires_at": wa_domain::clock::rfc3339(expires_at),
    }))
}

/// Whether a broadcast of `phone_number_id` may read `list`: the configured bucket and a key
/// `uploads/{phone_number_id}/{name}` (one segment, no `..`). Another number's upload is
/// [`AuthError::Forbidden`](wa_domain::auth::AuthError::Forbidden); anything else is a bad
/// request.
pub fn check_list(
    uploads: Option<&Uploads>,
    phone_number_id: &str,
    list: &RecipientList,
) -> Result<(), BroadcastApiError> {
    let Some(uploads) = uploads else {
        return Err(BroadcastApiError::Bad(
            "recipients_csv (a CSV list in S3) is not available: no recipients bucket is \
             configured; send up to 10,000 recipients inline"
                .into(),
        ));
    };
    if list.bucket != uploads.bucket {
        return Err(BroadcastApiError::Bad(
            "recipients_csv: the bucket is not this deployment's recipients bucket; get an \
             upload URL from POST /v1/broadcasts/uploads"
                .into(),
        ));
    }
    let name = list.key.strip_prefix(&key_prefix(phone_number_id));
    if let Some(name) = name
        && !name.is_empty()
        && !name.contains('/')
        && name != ".."
    {
        return Ok(());
    }
    if let Some(rest) = list.key.strip_prefix(UPLOAD_PREFIX)
        && rest
            .split_once('/')
            .is_some_and(|(n, _)| n != phone_number_id)
    {
        return Err(wa_domain::auth::AuthError::Forbidden.into());
    }
    Err(BroadcastApiError::Bad(format!(
        "recipients_csv: the key must be an upload of this number ({}…); get one from POST \
         /v1/broadcasts/uploads",
        key_prefix(phone_number_id)
    )))
}

#[cfg(test)]
#[path = "uploads_tests.rs"]
mod tests;
