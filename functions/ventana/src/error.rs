//! The CLI's one error type: every failure ends here and becomes a non-zero exit.

use std::path::PathBuf;

use wa_domain::ports::{QueueError, StoreError};

/// A boxed source error (SDK errors, kept for their chain).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a command failed. The `Display` texts never contain a key, a key's hash or a secret.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The `--env-file` could not be read.
    #[error("cannot read {}", path.display())]
    EnvFileRead {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the `--env-file` is not `KEY=VALUE`.
    #[error("{}:{line}: {reason}", path.display())]
    EnvFileLine {
        /// The file.
        path: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A variable the command needs is not set.
    #[error(
        "{0} is not set (set it, or pass --env-file target/local-stack.env while `make dev` runs)"
    )]
    Missing(&'static str),
    /// A `--number` is not a phone number id.
    #[error("`{0}` is not a phone number id (digits only)")]
    BadNumber(String),
    /// The key given to revoke is empty.
    #[error("no API key given")]
    NoKey,
    /// The key could not be read from standard input.
    #[error("cannot read the API key from standard input")]
    Stdin(#[source] std::io::Error),
    /// No stored key has this key's hash (never created, or the wrong table).
    #[error("no such API key in table {table}")]
    UnknownKey {
        /// The table looked in.
        table: String,
    },
    /// A call to Ventana's HTTP API failed.
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
    /// The store failed.
    #[error("the DynamoDB store failed")]
    Store(#[from] StoreError),
    /// The outbound queue refused a job.
    #[error("the outbound queue failed")]
    Queue(#[from] QueueError),
    /// Receiving from or deleting in a dead-letter queue failed.
    #[error("SQS {operation} on {queue} failed")]
    Sqs {
        /// The SQS operation.
        operation: &'static str,
        /// The queue's URL.
        queue: String,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// The inbound redrive stopped half-way (what it moved was printed).
    #[error("the inbound redrive stopped")]
    InboundRedrive(#[source] wa_sqs::RedriveError),
    /// The recipient list could not be opened.
    #[error("cannot open {}", path.display())]
    CsvOpen {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The recipient list could not be read (bad header, I/O).
    #[error("{}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: wa_domain::broadcast::csv::CsvError,
    },
    /// A request body could not be encoded.
    #[error("cannot encode the request")]
    Encode(#[source] serde_json::Error),
    /// The list has no usable recipient.
    #[error("the list has no usable recipient ({bad} bad rows)")]
    NoRecipients {
        /// Rows skipped as bad.
        bad: usize,
    },
    /// More recipients than one request may carry.
    #[error(
        "more than {max} recipients: the API takes at most {max} inline; split the list or upload it (`--upload`)"
    )]
    TooManyRecipients {
        /// The limit.
        max: usize,
    },
    /// The request body would exceed the API's inline limit.
    #[error(
        "the request would exceed the {limit}-byte (1 MiB) limit for inline recipients after {recipients} recipients; split the list or upload it (`--upload`)"
    )]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
        /// Recipients read when it was reached.
        recipients: usize,
    },
    /// The list could not be uploaded (no answer from the storage).
    #[error("uploading the list failed")]
    UploadFailed(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The storage refused the upload.
    #[error("the upload was refused ({status}): {detail}")]
    UploadRefused {
        /// The HTTP status (0: not attempted).
        status: u16,
        /// The start of the answer.
        detail: String,
    },
    /// Not a broadcast id.
    #[error("`{0}` is not a broadcast id")]
    BadBroadcastId(String),
    /// The export file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An export page's header differs from the first page's.
    #[error("the ledger's CSV header changed between pages; export stopped")]
    ExportHeaderChanged,
    /// Some dead-lettered messages could not be redriven (each was reported).
    #[error(
        "{failed} of {total} dead-lettered messages could not be redriven; they stay in the DLQ"
    )]
    Incomplete {
        /// How many failed.
        failed: usize,
        /// How many were looked at.
        total: usize,
    },
}

impl CliError {
    /// The process exit code: 3 when the API refused the key (401/403), 1 otherwise (clap
    /// uses 2 for usage errors).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api(crate::api::ApiError::Unauthorised { .. }) => 3,
            _ => 1,
        }
    }
}
