//! Byte ranges of an object: the one S3 call the recipient source makes, behind a small
//! trait so the paging logic is tested over in-memory bytes too.

use std::future::Future;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use wa_domain::broadcast::RecipientList;

use crate::S3Error;

/// Bytes from a ranged read.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// At most the length asked for; fewer only at the end of the object.
    pub bytes: Vec<u8>,
    /// The object's size, when the answer said it.
    pub total: Option<u64>,
    /// The object's ETag, quotes removed.
    pub etag: Option<String>,
}

/// What a ranged read found.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// Bytes from the offset.
    Chunk(Chunk),
    /// No such object (or bucket).
    Missing,
    /// The offset is at or past the object's end.
    PastEnd,
}

/// Reads `len` bytes from `offset` of a list's object, only if its ETag is still `etag`.
pub(crate) trait Ranges: Sync {
    fn get(
        &self,
        list: &RecipientList,
        offset: u64,
        len: usize,
        etag: Option<&str>,
    ) -> impl Future<Output = Result<Fetched, S3Error>> + Send;
}

fn request_failed(e: impl std::error::Error + Send + Sync + 'static) -> S3Error {
    S3Error::Request(Box::new(e))
}

impl Ranges for Client {
    async fn get(
        &self,
        list: &RecipientList,
        offset: u64,
        len: usize,
        etag: Option<&str>,
    ) -> Result<Fetched, S3Error> {
        let len = len.max(1);
        let end = offset + len as u64 - 1;
        let mut req = self
            .get_object()
            .bucket(&list.bucket)
            .key(&list.key)
            .range(format!("bytes={offset}-{end}"));
        if let Some(etag) = etag {
            req = req.if_match(format!("\"{etag}\""));
        }
        let mut out = match req.send().await {
            Ok(out) => out,
            Err(e) => {
                if let SdkError::ServiceError(se) = &e {
                    let status = se.raw().status().as_u16();
                    if se.err().is_no_such_key() || status == 404 {
                        return Ok(Fetched::Missing);
                    }
                    if status == 416 {
                        return Ok(Fetched::PastEnd);
                    }
                    if status == 412 {
                        return Err(S3Error::Changed);
                    }
                }
                return Err(request_failed(e));
            }
        };
        let total = match out.content_range() {
            Some(r) => r.rsplit_once('/').and_then(|(_, t)| t.parse::<u64>().ok()),
            // A whole object (200, no range): only right when reading from its start.
            None if offset == 0 => out.content_length().and_then(|l| u64::try_from(l).ok()),
            None => {
                return Err(S3Error::Request(
                    "the ranged GET was answered without a Content-Range".into(),
                ));
            }
        };
        let etag = out.e_tag().map(|e| e.trim_matches('"').to_owned());
        // Read at most `len` bytes even if more come: memory stays bounded by the chunk.
        let mut bytes = Vec::with_capacity(len.min(1 << 20));
        while bytes.len() < len {
            match out.body.try_next().await.map_err(request_failed)? {
                Some(b) => {
                    let take = (len - bytes.len()).min(b.len());
                    bytes.extend_from_slice(&b[..take]);
                }
                None => break,
            }
        }
        Ok(Fetched::Chunk(Chunk { bytes, total, etag }))
    }
}
