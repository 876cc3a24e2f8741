//! A tiny Lambda used only by wa-emulator's tests (and as a stand-in function when trying the
//! local stack without the real binaries).
//!
//! - `{"error": "why"}` → the invocation fails with that message;
//! - `{"exit": 3}` → the process exits with that code mid-invocation (a crash);
//! - `{"sleep_ms": 200}` → waits that long before answering;
//! - anything else → `{"echo": <event>, "pid": <process id>, "request_id": <id>,
//!   "function": <AWS_LAMBDA_FUNCTION_NAME>}`.
//!
//! For an SQS event each record's body is read as JSON: `{"fail": true}` lists the record in
//! `batchItemFailures`, `{"error": "why"}` fails the whole invocation, and
//! `{"fail": true, "visibility_s": 4}` first sets the record's visibility timeout to that
//! many seconds with `ChangeMessageVisibility` (as a worker deferring a message does; the
//! SQS client comes from the standard `AWS_*` variables, which the test must pass).
//!
//! For an API Gateway event the same directives are read from its query string
//! (`GET /x?sleep_ms=200`), so it can stand in for an HTTP function.
//!
//! With `ECHO_FAIL_INIT=1` in its environment it exits with code 2 before polling.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// A directive as a number, whether given as a JSON number or a query-string value.
fn number(directives: &Value, key: &str) -> Option<i64> {
    match directives.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    if let Some(records) = payload.get("Records").and_then(Value::as_array) {
        return sqs(records).await;
    }
    let directives = payload.get("queryStringParameters").unwrap_or(&payload);
    if let Some(ms) = number(directives, "sleep_ms") {
        let ms = u64::try_from(ms).unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if let Some(code) = number(directives, "exit") {
        std::process::exit(i32::try_from(code).unwrap_or(1));
    }
    if let Some(why) = directives.get("error").and_then(Value::as_str) {
        return Err(why.into());
    }
    Ok(json!({
        "echo": payload,
        "pid": std::process::id(),
        "request_id": context.request_id,
        "function": std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
    }))
}

async fn sqs(records: &[Value]) -> Result<Value, Error> {
    let mut failures = Vec::new();
    let mut bodies = Vec::new();
    for record in records {
        let body = record
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        if let Some(why) = body.get("error").and_then(Value::as_str) {
            return Err(why.into());
        }
        if let Some(secs) = number(&body, "visibility_s") {
            set_visibility(record, i32::try_from(secs)?).await?;
        }
        if body.get("fail") == Some(&Value::Bool(true)) {
            failures.push(json!({"itemIdentifier": record.get("messageId")}));
        }
        bodies.push(body);
    }
    Ok(json!({"batchItemFailures": failures, "bodies": bodies}))
}

/// Sets the visibility timeout of an SQS record (its queue named by `eventSourceARN`).
async fn set_visibility(record: &Value, secs: i32) -> Result<(), Error> {
    let field = |k: &str| {
        record
            .get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("record without {k}"))
    };
    let queue_name = field("eventSourceARN")?
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = sqs
        .get_queue_url()
        .queue_name(queue_name)
        .send()
        .await?
        .queue_url
        .ok_or("no queue URL")?;
    sqs.change_message_visibility()
        .queue_url(url)
        .receipt_handle(field("receiptHandle")?)
        .visibility_timeout(secs)
        .send()
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    if std::env::var_os("ECHO_FAIL_INIT").is_some() {
        eprintln!("echo: failing init as asked");
        std::process::exit(2);
    }
    lambda_runtime::run(service_fn(handle)).await
}
