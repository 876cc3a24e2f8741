//! Retries of single SQS requests that failed for a reason that may pass (throttling, a 5xx,
//! a timeout, a dropped connection), shared by the outbound queue, the worker's controls
//! and redrive. Only requests that are safe to repeat go through here: sends carry a fixed
//! `MessageDeduplicationId` (a repeat within five minutes is dropped by SQS), and
//! `ChangeMessageVisibility` is idempotent.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

use crate::Metrics;

/// How many times a failed request is sent again.
pub(crate) const RETRIES: u32 = 2;
/// Backoff before the first retry; doubled for the next.
pub(crate) const BACKOFF: Duration = Duration::from_millis(50);

/// Error codes SQS uses for throttling and its own trouble (besides 5xx statuses).
const TRANSIENT_CODES: &[&str] = &[
    "RequestThrottled",
    "ThrottlingException",
    "Throttling",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "KmsThrottled",
];

/// Whether a request that failed with `e` may succeed if sent again.
pub(crate) fn is_transient<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            s.raw().status().is_server_error()
                || s.err().code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        // A request that could not be built fails the same way every time.
        _ => false,
    }
}

/// Runs `op` until it succeeds, fails for good, or has been retried [`RETRIES`] times,
/// counting requests and failures in `metrics`.
pub(crate) async fn retrying<T, E, F, Fut>(
    what: &'static str,
    metrics: Option<&Metrics>,
    mut op: F,
) -> Result<T, SdkError<E>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E>>>,
{
    let mut backoff = BACKOFF;
    let mut attempt = 0;
    loop {
        if let Some(m) = metrics {
            m.requests.fetch_add(1, Ordering::Relaxed);
        }
        match op().await {
            Ok(out) => return Ok(out),
            Err(e) => {
                if let Some(m) = metrics {
                    m.failed_entries.fetch_add(1, Ordering::Relaxed);
                }
                if attempt >= RETRIES || !is_transient(&e) {
                    return Err(e);
                }
                tracing::warn!(operation = what, attempt, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "SQS request failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::send_message::SendMessageError;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn timeouts_are_transient_and_bad_requests_are_not() {
        let timeout: SdkError<SendMessageError> = SdkError::timeout_error("slow");
        assert!(is_transient(&timeout));
        let unbuildable: SdkError<SendMessageError> = SdkError::construction_failure("no url");
        assert!(!is_transient(&unbuildable));
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_counted() {
        let metrics = Metrics::default();
        let calls = AtomicU32::new(0);
        let out: Result<u32, SdkError<SendMessageError>> =
            retrying("test", Some(&metrics), || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(SdkError::timeout_error("slow")),
                    n => Ok(n),
                }
            })
            .await;
        assert_eq!(out.ok(), Some(2));
        let s = metrics.snapshot();
        assert_eq!((s.requests, s.failed_entries), (3, 2));

        let calls = AtomicU32::new(0);
        let out: Result<(), SdkError<SendMessageError>> = retrying("test", None, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(SdkError::construction_failure("bad"))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "not retried");

        let calls = AtomicU32::new(0);
        let out: Result<(), SdkError<SendMessageError>> = retrying("test", None, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(SdkError::timeout_error("slow"))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1 + RETRIES, "gives up");
    }
}
