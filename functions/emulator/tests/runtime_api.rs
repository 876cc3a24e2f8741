//! The fake Runtime API and function pools, driven through a real Lambda binary (the `echo`
//! example built with lambda_runtime).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;
use wa_emulator::{EmulatorError, FunctionConfig, FunctionPool, Invocation, RuntimeApi};

const READY: Duration = Duration::from_secs(20);
const CALL: Duration = Duration::from_secs(20);

async fn pool(instances: usize) -> FunctionPool {
    let config = FunctionConfig::new("echo", support::echo_binary()).instances(instances);
    let pool = FunctionPool::spawn(config).await.unwrap();
    pool.wait_ready(READY).await.unwrap();
    pool
}

#[tokio::test]
async fn invoke_returns_the_function_response() {
    let pool = pool(1).await;
    let answer = pool.invoke(&json!({"hello": "world"}), CALL).await.unwrap();
    let Invocation::Response(body) = answer else {
        panic!("expected a response, got {answer:?}");
    };
    assert_eq!(body["echo"], json!({"hello": "world"}));
    assert_eq!(body["function"], "echo");
    assert_eq!(body["request_id"].as_str().unwrap().len(), 36);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_function_error_is_an_error_invocation() {
    let pool = pool(1).await;
    let answer = pool.invoke(&json!({"error": "boom"}), CALL).await.unwrap();
    let Invocation::Error(error) = &answer else {
        panic!("expected an error, got {answer:?}");
    };
    assert_eq!(error["errorMessage"], "boom");
    assert!(answer.error_type().is_some());
    // The process survives a handled error.
    let again = pool.invoke(&json!({"n": 2}), CALL).await.unwrap();
    assert!(again.response().is_some());
    pool.shutdown().await;
}

#[tokio::test]
async fn concurrent_invocations_are_shared_by_two_processes() {
    let pool = pool(2).await;
    let started = Instant::now();
    let events: Vec<_> = (0..4).map(|i| json!({"sleep_ms": 400, "i": i})).collect();
    let answers = futures::future::join_all(events.iter().map(|e| pool.invoke(e, CALL))).await;
    let elapsed = started.elapsed();
    let mut pids = HashSet::new();
    let mut seen = HashSet::new();
    for answer in answers {
        let body = answer.unwrap().response().cloned().unwrap();
        pids.insert(body["pid"].as_u64().unwrap());
        seen.insert(body["echo"]["i"].as_u64().unwrap());
    }
    assert_eq!(pids.len(), 2, "both processes served");
    assert_eq!(
        seen,
        HashSet::from([0, 1, 2, 3]),
        "each invocation answered once"
    );
    // Two at a time: about 800 ms, well under the 1.6 s of one process alone.
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_crashed_process_fails_its_invocation_instead_of_hanging() {
    let pool = pool(1).await;
    let started = Instant::now();
    let err = pool.invoke(&json!({"exit": 3}), CALL).await.unwrap_err();
    assert!(
        matches!(&err, EmulatorError::ProcessExited { status, .. } if status.contains('3')),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nothing is left to serve the next one: it fails at once too.
    let err = pool.invoke(&json!({}), CALL).await.unwrap_err();
    assert!(
        matches!(err, EmulatorError::NoLiveProcess { .. }),
        "{err:?}"
    );
    assert!(pool.processes()[0].exit.is_some());
}

#[tokio::test]
async fn the_other_process_keeps_serving_after_a_crash() {
    let pool = pool(2).await;
    let err = pool.invoke(&json!({"exit": 7}), CALL).await.unwrap_err();
    assert!(
        matches!(err, EmulatorError::ProcessExited { .. }),
        "{err:?}"
    );
    for _ in 0..3 {
        let answer = pool.invoke(&json!({"ok": true}), CALL).await.unwrap();
        assert!(answer.response().is_some());
    }
    let exited = pool.processes().iter().filter(|p| p.exit.is_some()).count();
    assert_eq!(exited, 1);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_process_that_fails_init_is_reported_by_wait_ready() {
    let config = FunctionConfig::new("echo", support::echo_binary()).env("ECHO_FAIL_INIT", "1");
    let pool = FunctionPool::spawn(config).await.unwrap();
    let err = pool.wait_ready(READY).await.unwrap_err();
    assert!(
        matches!(&err, EmulatorError::ExitedDuringInit { status, .. } if status.contains('2')),
        "{err:?}"
    );
    let err = pool.invoke(&json!({}), CALL).await.unwrap_err();
    assert!(
        matches!(err, EmulatorError::NoLiveProcess { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_slow_function_times_out_and_its_late_answer_is_discarded() {
    let pool = pool(1).await;
    let err = pool
        .invoke(&json!({"sleep_ms": 1000}), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, EmulatorError::Timeout { .. }), "{err:?}");
    // The same process answers the next invocation once it is done with the slow one.
    let answer = pool.invoke(&json!({"after": 1}), CALL).await.unwrap();
    assert_eq!(answer.response().unwrap()["echo"]["after"], 1);
    pool.shutdown().await;
}

#[tokio::test]
async fn cold_starts_are_recorded() {
    let since = Instant::now();
    let pool = pool(2).await;
    for p in pool.processes() {
        let cold = p.cold_start().expect("each process polled");
        assert!(cold < READY);
        assert!(p.pid.is_some());
    }
    let first = pool
        .runtime()
        .first_poll_after(since)
        .expect("a poll after since");
    assert!(first >= since);
    assert!(pool.runtime().first_poll_after(Instant::now()).is_none());
    pool.shutdown().await;
}

#[tokio::test]
async fn a_process_started_by_the_caller_can_poll_the_shared_address() {
    // The whole-binary test pattern: spawn the binary yourself with AWS_LAMBDA_RUNTIME_API.
    let runtime = RuntimeApi::start("echo").await.unwrap();
    let mut child = tokio::process::Command::new(support::echo_binary())
        .env("AWS_LAMBDA_RUNTIME_API", runtime.addr().to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "echo")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let answer = runtime.invoke(&json!({"x": 1}), CALL).await.unwrap();
    assert_eq!(answer.response().unwrap()["echo"]["x"], 1);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_missing_binary_is_a_clear_error() {
    let config = FunctionConfig::new("nope", "/nonexistent/bin/nope");
    let err = FunctionPool::spawn(config).await.unwrap_err();
    assert!(
        matches!(err, EmulatorError::BinaryNotFound { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("/nonexistent/bin/nope"));
}
