//! Bad bodies on `POST /{version}/{phone_number_id}/messages` (issue 6 item 3), through the
//! real handler with in-memory fakes: every one gets a 4xx in the Cloud API error shape (never
//! a 5xx, never a panic) and queues nothing; every body accepted queues exactly one job.
//! docs/reliability.md ("Bad input") lists the cases and their answers.

use super::*;
use lambda_http::http;
use serde_json::json;

use crate::test_support::{NOW_MS, PNID, deps};

/// A fixture's body, as JSON.
fn fixture_body(case: &str) -> Value {
    let path = format!(
        "{}/../../events/send-api/{case}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let ev: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    serde_json::from_str(ev["body"].as_str().unwrap()).unwrap()
}

/// Posts `body` with a valid key; returns the status, the JSON answer and how many jobs the
/// request queued.
async fn post(body: Vec<u8>) -> (u16, Value, usize) {
    let d = deps().await;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("https://example.com/v25.0/{PNID}/messages"))
        .header("authorization", "Bearer test-api-key")
        .header("content-type", "application/json")
        .body(Body::Binary(body))
        .unwrap()
        .with_raw_http_path(format!("/v25.0/{PNID}/messages"));
    let res = handle(&d, req, NOW_MS, [7; 10]).await;
    let status = res.status().as_u16();
    let answer = match res.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, answer, d.queue.jobs().len())
}

/// Refused with a 400 in the Cloud API error shape, nothing queued.
async fn assert_400(body: Vec<u8>, case: &str) {
    let (status, answer, jobs) = post(body).await;
    assert_eq!(status, 400, "{case}: {answer}");
    assert!(answer["error"]["code"].is_i64(), "{case}: {answer}");
    assert!(answer["error"]["message"].is_string(), "{case}: {answer}");
    assert_eq!(jobs, 0, "{case}: nothing queued");
}

#[tokio::test]
async fn non_json_empty_and_truncated_bodies_get_400() {
    let text = serde_json::to_vec(&fixture_body("text")).unwrap();
    for (case, body) in [
        ("empty", Vec::new()),
        ("spaces", b"   ".to_vec()),
        ("not JSON", b"to=1&type=text".to_vec()),
        ("null", b"null".to_vec()),
        ("array", b"[]".to_vec()),
        ("string", b"\"hi\"".to_vec()),
        ("number", b"42".to_vec()),
        ("empty object", b"{}".to_vec()),
        ("truncated", text[..text.len() / 2].to_vec()),
        ("one byte short", text[..text.len() - 1].to_vec()),
    ] {
        assert_400(body, case).await;
    }
}

#[tokio::test]
async fn invalid_utf8_gets_400() {
    let text = serde_json::to_vec(&fixture_body("text")).unwrap();
    let at = text.windows(4).position(|w| w == b"Your").unwrap();
    for bad in [&b"\x80"[..], b"\xc0\xaf", b"\xed\xa0\x80", b"\xff"] {
        let mut nasty = text.clone();
        nasty.splice(at..at, bad.iter().copied());
        assert_400(nasty, "invalid UTF-8 in the text").await;
    }
}

#[tokio::test]
async fn deep_nesting_gets_400_or_is_sent_never_a_stack_overflow() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert_400(deep(100_000).into_bytes(), "100k [ as the body").await;
    assert_400(
        "{\"a\":".repeat(50_000).into_bytes(),
        "50k unclosed objects",
    )
    .await;
    // Deep nesting in the text, or in a field Ventana does not read: within 256 KiB.
    let mut in_text = fixture_body("text");
    in_text["text"]["body"] = serde_json::from_str::<Value>("[[[[1]]]]").unwrap();
    assert_400(serde_json::to_vec(&in_text).unwrap(), "array as text").await;
    let nested = serde_json::to_string(&fixture_body("text"))
        .unwrap()
        .replacen('{', &format!("{{\"x\":{},", deep(50_000)), 1);
    let (status, answer, jobs) = post(nested.into_bytes()).await;
    assert!(
        (status == 200 && jobs == 1) || (status == 400 && jobs == 0),
        "deep unknown field: {status} {answer} {jobs}"
    );
}

#[tokio::test]
async fn huge_numbers_get_a_clear_answer() {
    for (case, to) in [
        ("u64::MAX", json!(u64::MAX)),
        ("1e400 as text", json!("1e400")),
        ("300 digits", Value::String("9".repeat(300))),
        ("float", json!(1.5e300)),
        ("negative", json!(-16505551234_i64)),
    ] {
        let mut body = fixture_body("text");
        body["to"] = to;
        assert_400(serde_json::to_vec(&body).unwrap(), case).await;
    }
    // A number Rust cannot hold as a float, in raw JSON text.
    let raw = serde_json::to_string(&fixture_body("text"))
        .unwrap()
        .replace("\"+1 650-555-1234\"", &"9".repeat(400));
    assert_400(raw.into_bytes(), "400-digit number").await;
}

#[tokio::test]
async fn unknown_types_and_empty_arrays_get_400() {
    let mut hologram = fixture_body("text");
    hologram["type"] = json!("hologram");
    assert_400(serde_json::to_vec(&hologram).unwrap(), "unknown type").await;
    let mut template = fixture_body("template");
    template["template"]["components"] = json!([]);
    let (status, answer, jobs) = post(serde_json::to_vec(&template).unwrap()).await;
    assert!(
        (status == 200 && jobs == 1) || (status == 400 && jobs == 0),
        "template with no components: {status} {answer}"
    );
}

/// Every path to a value in `v`.
fn paths(v: &Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            here.push(k.clone());
            out.push(here.clone());
            paths(child, here, out);
            here.pop();
        }
    } else if let Value::Array(a) = v {
        for (i, child) in a.iter().enumerate() {
            here.push(i.to_string());
            out.push(here.clone());
            paths(child, here, out);
            here.pop();
        }
    }
}

fn at_mut<'v>(v: &'v mut Value, path: &[String]) -> &'v mut Value {
    path.iter().fold(v, |v, step| match v {
        Value::Array(_) => &mut v[step.parse::<usize>().unwrap()],
        _ => &mut v[step.as_str()],
    })
}

/// For every field of every send fixture, every value of another JSON type: a 200 that queued
/// one job or a 400 in the error shape that queued none; never a 5xx or a panic.
#[tokio::test]
async fn wrong_types_in_every_field_of_the_send_fixtures() {
    let wrong = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5e300),
        json!("x"),
        json!([]),
        json!({}),
    ];
    let mut tried = 0;
    for case in ["text", "template", "read-receipt", "text-with-fallback"] {
        let original = fixture_body(case);
        let mut all = Vec::new();
        paths(&original, &mut Vec::new(), &mut all);
        for path in &all {
            let here = at_mut(&mut original.clone(), path).clone();
            for w in &wrong {
                if std::mem::discriminant(w) == std::mem::discriminant(&here) {
                    continue;
                }
                let mut mutated = original.clone();
                *at_mut(&mut mutated, path) = w.clone();
                let (status, answer, jobs) = post(serde_json::to_vec(&mutated).unwrap()).await;
                let what = format!("{case} {path:?} = {w}: {status} {answer}");
                match status {
                    200 => assert_eq!(jobs, 1, "{what}"),
                    400 => {
                        assert_eq!(jobs, 0, "{what}");
                        assert!(answer["error"]["code"].is_i64(), "{what}");
                    }
                    _ => panic!("{what}"),
                }
                tried += 1;
            }
        }
    }
    assert!(tried > 100, "only {tried} mutations tried");
}
