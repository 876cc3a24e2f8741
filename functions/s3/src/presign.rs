//! [`S3Presigner`]: presigned `PUT` URLs, so a client uploads a recipient list straight to
//! the bucket (no file goes through the API's 1 MiB body limit).

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;

use crate::S3Error;

/// Makes presigned URLs with the client's credentials (in AWS: the function's role, so the
/// URL can do what the role may: `s3:PutObject` on `uploads/*`).
#[derive(Debug, Clone)]
pub struct S3Presigner {
    client: Client,
}

impl S3Presigner {
    /// A presigner over `client` (see [`crate::client`]: path-style against moto).
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A URL that accepts one `PUT` of the object `bucket`/`key` (any content type) for
    /// `expires_in` (at most 7 days, S3's limit).
    pub async fn put_url(
        &self,
        bucket: &str,
        key: &str,
        expires_in: Duration,
    ) -> Result<String, S3Error> {
        let cfg =
            PresigningConfig::expires_in(expires_in).map_err(|e| S3Error::Presign(Box::new(e)))?;
        let req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .presigned(cfg)
            .await
            .map_err(|e| S3Error::Presign(Box::new(e)))?;
        Ok(req.uri().to_owned())
    }
}
