//! Ventana's S3 adapter: broadcast recipient lists.
//!
//! - [`S3RecipientSource`] implements wa-domain's
//!   [`RecipientSource`](wa_domain::broadcast::RecipientSource) over CSV objects
//!   (`recipients_csv` `{bucket, key}`): each page is read with ranged GETs of at most
//!   [`S3RecipientSource::chunk_bytes`] bytes fed to wa-domain's streaming CSV decoder, so a
//!   page holds at most one chunk plus one record
//!   ([`MAX_RECORD_BYTES`](wa_domain::broadcast::csv::MAX_RECORD_BYTES)) in memory, whatever
//!   the object's size. The cursor is the decoder's position (`"{offset}:{line}"`) plus the
//!   object's ETag (`@{etag}`): the next page reads from that byte with `If-Match`, so reading
//!   a cursor again gives the same rows, and an object replaced half-way is noticed.
//! - [`S3Presigner`] makes presigned `PUT` URLs for uploads.
//!
//! A list that cannot be read as CSV at all (a bad header, an empty object) or that does not
//! exist is not an error: it is one row with a `problem` (reported as skipped(invalid) by the
//! planner) and the list ends, so the broadcast completes and says why instead of retrying a
//! step that can never succeed. S3 being unreachable is [`StoreError::Unavailable`].

mod chunks;
mod presign;
mod source;

pub use presign::S3Presigner;
pub use source::S3RecipientSource;

use aws_sdk_s3::Client;
use wa_domain::ports::StoreError;

/// Why an S3 request failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// S3 could not be reached or refused the request.
    #[error("S3 request failed")]
    Request(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The object changed between two reads of one list (its ETag is not the cursor's).
    #[error("the list object changed while it was being read")]
    Changed,
    /// A cursor this adapter did not make.
    #[error("not a recipient list cursor: {0:?}")]
    BadCursor(String),
    /// A presigned URL could not be made.
    #[error("presigning failed")]
    Presign(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<S3Error> for StoreError {
    fn from(e: S3Error) -> Self {
        match e {
            S3Error::Request(_) | S3Error::Presign(_) => StoreError::Unavailable(Box::new(e)),
            S3Error::Changed | S3Error::BadCursor(_) => StoreError::Corrupt(e.to_string()),
        }
    }
}

/// An S3 client for `aws`. Path-style addressing (`{endpoint}/{bucket}/{key}`) when the
/// config has an endpoint URL (`AWS_ENDPOINT_URL`: moto, the local stack), so that bucket
/// names need no DNS; virtual-hosted style against AWS itself.
pub fn client(aws: &aws_config::SdkConfig) -> Client {
    let conf = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(aws.endpoint_url().is_some())
        .build();
    Client::from_conf(conf)
}
