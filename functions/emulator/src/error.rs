//! The one error type of this crate's boundary.

use std::path::PathBuf;
use std::time::Duration;

/// Why the emulator could not start something or could not get an answer from a function.
///
/// A function that answers with an error is not an `EmulatorError`: that is
/// [`crate::Invocation::Error`].
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The fake Runtime API could not bind a loopback port.
    #[error("cannot bind the fake Lambda Runtime API on 127.0.0.1")]
    Bind(#[source] std::io::Error),

    /// The event could not be serialised.
    #[error("cannot serialise the event for {function}")]
    Encode {
        /// The function being invoked.
        function: String,
        /// The serialiser's error.
        #[source]
        source: serde_json::Error,
    },

    /// No process answered within the invocation's timeout (API Gateway answers 504).
    #[error("{function} did not answer within {timeout:?}")]
    Timeout {
        /// The function being invoked.
        function: String,
        /// The timeout given to the invocation.
        timeout: Duration,
    },

    /// The process that took the invocation exited before answering.
    #[error("the {function} process that took invocation {request_id} exited: {status}")]
    ProcessExited {
        /// The function being invoked.
        function: String,
        /// The Lambda request id of the lost invocation.
        request_id: String,
        /// How the process ended (exit code or signal, and any init error it reported).
        status: String,
    },

    /// Every process of the function has exited, so nothing can take the invocation.
    #[error("{function} has no live process (last exit: {last_exit})")]
    NoLiveProcess {
        /// The function being invoked.
        function: String,
        /// How the last process ended.
        last_exit: String,
    },

    /// The Runtime API was dropped while the invocation was pending.
    #[error("the fake Runtime API of {function} has shut down")]
    ShutDown {
        /// The function being invoked.
        function: String,
    },

    /// The function binary does not exist.
    #[error("function binary {} does not exist", path.display())]
    BinaryNotFound {
        /// Where it was looked for.
        path: PathBuf,
    },

    /// The function binary could not be started.
    #[error("cannot start {}", path.display())]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The log file for a function's output could not be opened.
    #[error("cannot open log file {}", path.display())]
    LogFile {
        /// The log file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A process exited before it first polled for an invocation (it failed its init).
    #[error("a {function} process exited during init: {status}")]
    ExitedDuringInit {
        /// The function.
        function: String,
        /// How the process ended (exit code or signal, and any init error it reported).
        status: String,
    },

    /// Some processes had not polled for an invocation within the time allowed.
    #[error(
        "{function}: {not_ready} of {total} processes had not polled for an invocation after {timeout:?}"
    )]
    NotReady {
        /// The function.
        function: String,
        /// How many processes had not polled yet.
        not_ready: usize,
        /// How many processes the pool has.
        total: usize,
        /// How long was waited.
        timeout: Duration,
    },

    /// An SQS call made by the event source poller failed.
    #[error("SQS {operation} failed for {queue_url}")]
    Sqs {
        /// The SQS operation.
        operation: &'static str,
        /// The queue.
        queue_url: String,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}
