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
