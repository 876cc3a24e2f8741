//! Bad input on `POST /webhook` (issue 6 item 3), through the real handler with in-memory
//! fakes. Every case asserts the answer, that nothing is queued when refused, what the
//! quarantine keeps, and that what is queued applies (wa_domain::inbound) without a panic.
//! docs/reliability.md ("Bad input") lists the cases and their answers.

use super::*;
use lambda_http::http;
use secrecy::SecretString;
use serde_json::Value as Json;
use wa_domain::inbound::{InboundConfig, apply};
use wa_domain::testing::{InMemoryStore, RecordingQueue};

const SECRET: &str = "test-app-secret";
const NOW: i64 = 1_795_420_900;

fn deps() -> Deps<RecordingQueue, InMemoryStore> {
    Deps {
        secrets: AppSecrets::parse(&SecretString::from(SECRET.to_owned())).unwrap(),
        queue: RecordingQueue::default(),
        quarantine: InMemoryStore::default(),
        verify_token: None,
    }
}

/// The body of a real fixture (a text message with its contact).
fn text_message() -> String {
    let ev: Json = serde_json::from_str(include_str!(
        "../../../events/webhook-receive/text-message.json"
    ))
    .unwrap();
    ev["body"].as_str().unwrap().to_owned()
}

fn with_signature(body: Vec<u8>, signature: Option<&str>) -> Request {
    let mut b = http::Request::builder()
        .method("POST")
        .uri("https://example.com/webhook");
    if let Some(sig) = signature {
        b = b.header("x-hub-signature-256", sig);
    }
    b.body(Body::Binary(body)).unwrap()
}

fn signed(body: impl Into<Vec<u8>>) -> Request {
    let body = body.into();
    let sig = wa_domain::signature::sign(SECRET, &body);
    with_signature(body, Some(&sig))
}

/// What one request did: the status, the events queued, the bodies quarantined.
struct Outcome {
    status: u16,
    queued: usize,
    quarantined: Vec<Vec<u8>>,
}

/// Posts `req`, then applies every queued event to a fresh in-memory store: a queued event
/// that panics the processor would be a poison message, so it fails the test here.
async fn post(req: Request) -> Outcome {
    let d = deps();
    let status = handle(&d, req).await.status().as_u16();
    let events = d.queue.events();
    let store = InMemoryStore::default();
    for ev in &events {
        apply(&store, ev, &InboundConfig::default(), NOW)
            .await
            .expect("an in-memory store does not fail");
    }
    Outcome {
        status,
        queued: events.len(),
        quarantined: d
            .quarantine
            .quarantined()
            .into_iter()
            .map(|q| q.0)
            .collect(),
    }
}

/// Refused: the status, nothing queued, nothing quarantined.
async fn assert_refused(req: Request, status: u16, case: &str) {
    let o = post(req).await;
    assert_eq!(o.status, status, "{case}");
    assert_eq!(o.queued, 0, "{case}: nothing queued");
    assert!(o.quarantined.is_empty(), "{case}: nothing quarantined");
}

/// Signed but unparseable: 200 (a retry cannot fix it), nothing queued, the exact body kept.
async fn assert_quarantined(body: Vec<u8>, case: &str) {
    let o = post(signed(body.clone())).await;
    assert_eq!(o.status, 200, "{case}");
    assert_eq!(o.queued, 0, "{case}: nothing queued");
    assert_eq!(
        o.quarantined,
        vec![body],
        "{case}: the body is kept byte for byte"
    );
}

#[tokio::test]
async fn missing_garbled_wrong_algorithm_and_wrong_secret_signatures_get_401() {
    let body = text_message().into_bytes();
    let good = wa_domain::signature::sign(SECRET, &body);
    let hex = good.trim_start_matches("sha256=");
    let sha1 = format!("sha1={}", &hex[..40]);
    let wrong_secret = wa_domain::signature::sign("another-secret", &body);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty", Some(String::new())),
        ("prefix only", Some("sha256=".into())),
        ("not hex", Some(format!("sha256={}", "z".repeat(64)))),
        ("truncated hex", Some(format!("sha256={}", &hex[..63]))),
        ("hex too long", Some(format!("{good}00"))),
        ("no prefix", Some(hex.to_owned())),
        ("sha1 (wrong algorithm)", Some(sha1)),
        ("sha512 prefix", Some(format!("sha512={hex}"))),
        ("wrong secret", Some(wrong_secret)),
        ("one bit off", Some(flip_last_hex_digit(&good))),
    ];
    for (case, sig) in cases {
        assert_refused(with_signature(body.clone(), sig.as_deref()), 401, case).await;
    }
}

fn flip_last_hex_digit(sig: &str) -> String {
    let mut s = sig.to_owned();
    let last = s.pop().unwrap();
    s.push(if last == '0' { '1' } else { '0' });
    s
}

#[tokio::test]
async fn a_truncated_body_is_refused_or_quarantined_never_queued() {
    let body = text_message().into_bytes();
    let good = wa_domain::signature::sign(SECRET, &body);
    for cut in [1, body.len() / 2, body.len() - 1] {
        // Cut in transit: the signature is over the whole body, so it no longer matches.
        assert_refused(
            with_signature(body[..cut].to_vec(), Some(&good)),
            401,
            "cut in transit",
        )
        .await;
        // Signed as cut (a sender bug): kept in quarantine.
        assert_quarantined(body[..cut].to_vec(), "signed truncated body").await;
    }
}

/// A valid one-message webhook padded with trailing spaces to exactly `len` bytes.
fn padded_webhook(len: usize) -> Vec<u8> {
    let mut body = text_message().into_bytes();
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn exactly_3_mb_is_accepted_and_one_byte_more_gets_413() {
    let o = post(signed(padded_webhook(MAX_WEBHOOK_BYTES))).await;
    assert_eq!((o.status, o.queued), (200, 1), "3 MB exactly");
    assert!(o.quarantined.is_empty());
    assert_refused(
        signed(padded_webhook(MAX_WEBHOOK_BYTES + 1)),
        413,
        "3 MB + 1",
    )
    .await;
    // Over the limit is refused before the signature is looked at.
    assert_refused(
        with_signature(padded_webhook(MAX_WEBHOOK_BYTES + 1), None),
        413,
        "3 MB + 1 unsigned",
    )
    .await;
}

#[tokio::test]
async fn deep_nesting_is_quarantined_or_kept_never_a_stack_overflow() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    // The whole body: serde_json's recursion limit refuses it.
    assert_quarantined(deep(100_000).into_bytes(), "100k [ as the body").await;
    assert_quarantined("[".repeat(100_000).into_bytes(), "100k unclosed [").await;
    // Inside an item, an unknown field, a value: the item is kept raw, then applied.
    let body = text_message();
    for (case, nested) in [
        (
            "in a message field",
            body.replace(
                r#""type":"text""#,
                &format!(r#""type":"text","x":{}"#, deep(100_000)),
            ),
        ),
        (
            "as the message text",
            body.replace(r#""Does it come in another color?""#, &deep(100_000)),
        ),
        (
            "next to entry",
            body.replacen('{', &format!(r#"{{"x":{},"#, deep(100_000)), 1),
        ),
    ] {
        let o = post(signed(nested.clone())).await;
        assert_eq!(o.status, 200, "{case}");
        assert_eq!(
            o.queued + o.quarantined.len(),
            1,
            "{case}: queued or quarantined, once"
        );
    }
}

#[tokio::test]
async fn huge_numbers_are_applied_or_kept_without_overflow() {
    let body = text_message();
    for (case, replaced) in [
        ("i64::MAX timestamp", r#""timestamp":"9223372036854775807""#),
        (
            "i64::MIN timestamp",
            r#""timestamp":"-9223372036854775808""#,
        ),
        ("u64 timestamp", r#""timestamp":18446744073709551615"#),
        ("1e400 timestamp", r#""timestamp":1e400"#),
        (
            "300-digit timestamp",
            &format!(r#""timestamp":{}"#, "9".repeat(300)),
        ),
        ("float timestamp", r#""timestamp":1.5e18"#),
        ("negative timestamp", r#""timestamp":"-1""#),
    ] {
        let nasty = body.replace(r#""timestamp":"1795420800""#, replaced);
        assert_ne!(nasty, body, "{case}: the fixture has the field");
        let o = post(signed(nasty.clone())).await;
        assert_eq!(o.status, 200, "{case}");
        assert_eq!(o.queued + o.quarantined.len(), 1, "{case}");
    }
    // Every status of a batch at the end of time (statuses apply to sends and history).
    let statuses: Json = serde_json::from_str(include_str!(
        "../../../events/webhook-receive/statuses-out-of-order.json"
    ))
    .unwrap();
    let statuses = statuses["body"].as_str().unwrap();
    for ts in ["9223372036854775807", "-9223372036854775808"] {
        let nasty = statuses
            .replace(
                r#""timestamp":"1795420900""#,
                &format!(r#""timestamp":"{ts}""#),
            )
            .replace(
                r#""timestamp":"1795420850""#,
                &format!(r#""timestamp":"{ts}""#),
            );
        let o = post(signed(nasty)).await;
        assert_eq!((o.status, o.queued), (200, 3), "statuses at {ts}");
    }
    // Huge entry times and ids.
    for nasty in [
        body.replace(
            r#""id":"102290129340398""#,
            &format!(r#""id":{},"time":{}"#, "9".repeat(400), "9".repeat(400)),
        ),
        body.replace(
            r#""id":"102290129340398""#,
            r#""id":"1","time":9223372036854775807"#,
        ),
    ] {
        let o = post(signed(nasty)).await;
        assert_eq!(o.status, 200);
        assert_eq!(o.queued + o.quarantined.len(), 1);
    }
}

#[tokio::test]
async fn invalid_utf8_is_quarantined() {
    let body = text_message().into_bytes();
    // A lone continuation byte in the text, an overlong encoding, a UTF-16 surrogate in UTF-8.
    for bad in [&b"\x80"[..], b"\xc0\xaf", b"\xed\xa0\x80", b"\xff\xfe"] {
        let at = body.windows(5).position(|w| w == b"Does ").unwrap();
        let mut nasty = body.clone();
        nasty.splice(at..at, bad.iter().copied());
        assert_quarantined(nasty, "invalid UTF-8 in a string").await;
    }
    assert_quarantined(vec![0xff; 64], "no UTF-8 at all").await;
    // A lone surrogate as a JSON escape is valid JSON text: kept raw, not lost.
    let escaped = text_message().replace("Does it", r"\ud800 Does it");
    let o = post(signed(escaped)).await;
    assert_eq!(o.status, 200);
    assert_eq!(o.queued + o.quarantined.len(), 1);
}

#[tokio::test]
async fn a_valid_signature_over_non_json_is_quarantined() {
    for body in [
        &b""[..],
        b"   ",
        b"null",
        b"42",
        b"\"a string\"",
        b"[]",
        b"{}",
        b"object=whatsapp_business_account",
        b"<xml/>",
        b"\0\0\0",
    ] {
        assert_quarantined(body.to_vec(), &String::from_utf8_lossy(body)).await;
    }
}

#[tokio::test]
async fn unknown_message_types_and_fields_are_queued_not_lost() {
    let body = text_message();
    let unknown_type = body.replace(r#""type":"text""#, r#""type":"hologram""#);
    let o = post(signed(unknown_type)).await;
    assert_eq!((o.status, o.queued), (200, 1), "unknown message type");
    let unknown_field = body.replace(r#""field":"messages""#, r#""field":"teleportation""#);
    let o = post(signed(unknown_field)).await;
    assert_eq!((o.status, o.queued), (200, 1), "unknown field");
    let unknown_object = body.replace("whatsapp_business_account", "instagram");
    let o = post(signed(unknown_object)).await;
    assert_eq!(
        (o.status, o.queued, o.quarantined.len()),
        (200, 0, 1),
        "other object"
    );
}

#[tokio::test]
async fn empty_arrays_queue_what_there_is() {
    let wrap = |changes: &str| {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"W","changes":{changes}}}]}}"#
        )
    };
    for (case, body, events) in [
        (
            "no entries",
            r#"{"object":"whatsapp_business_account","entry":[]}"#.to_owned(),
            0,
        ),
        ("no changes", wrap("[]"), 0),
        // A value with empty arrays is one whole-value event (nothing is dropped).
        (
            "empty messages",
            wrap(
                r#"[{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"messages":[]}}]"#,
            ),
            1,
        ),
        (
            "empty statuses and contacts",
            wrap(r#"[{"field":"messages","value":{"contacts":[],"statuses":[]}}]"#),
            1,
        ),
        (
            "empty value",
            wrap(r#"[{"field":"messages","value":{}}]"#),
            1,
        ),
    ] {
        let o = post(signed(body)).await;
        assert_eq!((o.status, o.queued), (200, events), "{case}");
        assert!(o.quarantined.is_empty(), "{case}");
    }
    // No entry array at all is not a webhook.
    assert_quarantined(
        br#"{"object":"whatsapp_business_account"}"#.to_vec(),
        "no entry",
    )
    .await;
}

/// Every path to a value in `v`: object keys and array indexes.
fn paths(v: &Json, here: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match v {
        Json::Object(m) => {
            for (k, child) in m {
                here.push(PathStep::Key(k.clone()));
                out.push(here.clone());
                paths(child, here, out);
                here.pop();
            }
        }
        Json::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(PathStep::Index(i));
                out.push(here.clone());
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn at_mut<'v>(v: &'v mut Json, path: &[PathStep]) -> &'v mut Json {
    path.iter().fold(v, |v, step| match step {
        PathStep::Key(k) => &mut v[k.as_str()],
        PathStep::Index(i) => &mut v[*i],
    })
}

/// Values of another JSON type than `v`.
fn wrong_types(v: &Json) -> Vec<Json> {
    let all = [
        Json::Null,
        Json::Bool(true),
        serde_json::json!(-1),
        serde_json::json!(1.5e300),
        serde_json::json!("x"),
        serde_json::json!([]),
        serde_json::json!([1, "a"]),
        serde_json::json!({}),
        serde_json::json!({"k": "v"}),
    ];
    let kind = |j: &Json| std::mem::discriminant(j);
    all.into_iter().filter(|w| kind(w) != kind(v)).collect()
}

/// For every field of every real webhook fixture, every value of another type: always 200,
/// never a panic, and the body is queued (each event then applied) or quarantined, never both
/// and never neither.
#[tokio::test]
async fn wrong_types_in_every_field_of_the_fixtures() {
    let fixtures = [
        include_str!("../../../events/webhook-receive/text-message.json"),
        include_str!("../../../events/webhook-receive/statuses-out-of-order.json"),
        include_str!("../../../events/webhook-receive/template-paused.json"),
        include_str!("../../../events/webhook-receive/user-preferences-stop.json"),
    ];
    let mut tried = 0;
    for fixture in fixtures {
        let ev: Json = serde_json::from_str(fixture).unwrap();
        let original: Json = serde_json::from_str(ev["body"].as_str().unwrap()).unwrap();
        let mut all = Vec::new();
        paths(&original, &mut Vec::new(), &mut all);
        for path in &all {
            let here = at_mut(&mut original.clone(), path).clone();
            for wrong in wrong_types(&here) {
                let mut mutated = original.clone();
                *at_mut(&mut mutated, path) = wrong.clone();
                let o = post(signed(serde_json::to_vec(&mutated).unwrap())).await;
                let case = format!("{path:?} = {wrong}");
                assert_eq!(o.status, 200, "{case}");
                assert!(
                    (o.queued > 0) == o.quarantined.is_empty()
                        || (o.queued == 0 && o.quarantined.is_empty() && empty_split(&mutated)),
                    "{case}: queued {} and quarantined {}",
                    o.queued,
                    o.quarantined.len()
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 300, "only {tried} mutations tried");
}

/// A webhook whose entries or changes are empty or carry no value splits into no event.
fn empty_split(v: &Json) -> bool {
    wa_domain::webhook::split(&serde_json::to_vec(v).unwrap()).is_ok_and(|e| e.is_empty())
}
