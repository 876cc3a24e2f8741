//! `ventana broadcast create --csv FILE` for lists over the inline limit (or with
//! `--upload`): the list is checked locally ([`scan`]: bad rows listed by line, as for the
//! inline path, but still uploaded: the planner records them as skipped(invalid)), an upload
//! URL is asked for ([`request_upload`], `POST /v1/broadcasts/uploads`), the file is `PUT`
//! to it in 64 KiB pieces with a byte count for a progress bar ([`put_file`]), and the
//! broadcast is created with `recipients_csv` ([`create_from_list`]).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use wa_domain::broadcast::csv::Rows;

use crate::api::{Api, ApiError};
use crate::broadcast::{BAD_ROWS_SHOWN, BadRow, CreateOptions};
use crate::error::CliError;

/// How long one upload may take in all.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The piece read and sent at a time (bytes).
pub const PIECE_BYTES: usize = 64 * 1024;

/// What a local read of the list found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Rows with a recipient.
    pub recipients: u64,
    /// Rows that cannot be sent (skipped(invalid) by the planner).
    pub bad_count: u64,
    /// The first [`BAD_ROWS_SHOWN`] of them.
    pub bad: Vec<BadRow>,
}

/// Reads the whole list once in flat memory: a bad header stops here, before any upload.
pub fn scan<R: Read>(reader: R, source: &Path) -> Result<Scan, CliError> {
    let mut s = Scan {
        recipients: 0,
        bad_count: 0,
        bad: Vec::new(),
    };
    for row in Rows::new(reader) {
        let row = row.map_err(|e| CliError::Csv {
            path: source.to_owned(),
            source: e,
        })?;
        match row.row.problem {
            Some(problem) => {
                s.bad_count += 1;
                if s.bad.len() < BAD_ROWS_SHOWN {
                    s.bad.push(BadRow {
                        line: row.line,
                        problem,
                    });
                }
            }
            None => s.recipients += 1,
        }
    }
    if s.recipients == 0 {
        return Err(CliError::NoRecipients {
            bad: usize::try_from(s.bad_count).unwrap_or(usize::MAX),
        });
    }
    Ok(s)
}

/// An upload URL as `POST /v1/broadcasts/uploads` answers it.
#[derive(Debug, Clone, Deserialize)]
pub struct Upload {
    /// The presigned URL.
    pub upload_url: String,
    /// The method to use (`PUT`).
    pub method: String,
    /// Where the list will be: `{"bucket","key"}`, passed on as `recipients_csv`.
    pub recipients_csv: Value,
    /// When the URL stops working.
    pub expires_at: String,
}

/// Asks for an upload URL for a list of `phone_number_id`.
pub async fn request_upload(api: &Api, phone_number_id: &str) -> Result<Upload, CliError> {
    Ok(api
        .post(
            "/v1/broadcasts/uploads",
            &json!({"phone_number_id": phone_number_id}),
        )
        .await?)
}

/// `PUT`s the file at `path` to the upload URL, with its length, in [`PIECE_BYTES`] pieces;
/// `on_progress` gets the bytes sent so far after each piece.
pub async fn put_file(
    upload: &Upload,
    path: &Path,
    on_progress: impl FnMut(u64) + Send + 'static,
) -> Result<u64, CliError> {
    if !upload.method.eq_ignore_ascii_case("PUT") {
        return Err(CliError::UploadRefused {
            status: 0,
            detail: format!("the API asks for method {}", upload.method),
        });
    }
    let io_err = |source| CliError::CsvOpen {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    let pieces = futures::stream::unfold(
        (file, 0u64, on_progress),
        |(mut file, sent, mut on_progress)| async move {
            let mut buf = vec![0u8; PIECE_BYTES];
            match file.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let sent = sent + n as u64;
                    on_progress(sent);
                    Some((Ok::<_, std::io::Error>(buf), (file, sent, on_progress)))
                }
                Err(e) => Some((Err(e), (file, sent, on_progress))),
            }
        },
    );
    let http = reqwest::Client::builder()
        .timeout(UPLOAD_TIMEOUT)
        .build()
        .map_err(|e| CliError::UploadFailed(Box::new(e)))?;
    let res = http
        .put(&upload.upload_url)
        .header(reqwest::header::CONTENT_LENGTH, len)
        .header(reqwest::header::CONTENT_TYPE, "text/csv")
        .body(reqwest::Body::wrap_stream(pieces))
        .send()
        .await
        .map_err(|e| CliError::UploadFailed(Box::new(e.without_url())))?;
    let status = res.status();
    if !status.is_success() {
        let detail: String = res
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        return Err(CliError::UploadRefused {
            status: status.as_u16(),
            detail,
        });
    }
    Ok(len)
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// Creates the broadcast over an uploaded list; its id.
pub async fn create_from_list(
    api: &Api,
    opts: &CreateOptions,
    upload: &Upload,
) -> Result<String, CliError> {
    let mut body = json!({
        "phone_number_id": opts.phone_number_id,
        "template": {"name": opts.template, "language": opts.language},
        "require_opt_in": opts.require_opt_in,
        "recipients_csv": upload.recipients_csv,
    });
    if let Some((percent, every_secs)) = opts.release {
        body["release"] = json!({"percent": percent, "every_secs": every_secs});
    }
    let body = serde_json::to_vec(&body).map_err(ApiError::BadAnswer)?;
    let key = crate::api::new_idempotency_key();
    let c: Created = api.post_idempotent("/v1/broadcasts", body, &key).await?;
    Ok(c.id)
}

#[cfg(test)]
#[path = "upload_tests.rs"]
mod tests;
