//! Property tests of the webhook path (issue 6 item 3): signature check, parse and split never
//! panic, and a body that splits yields one event per item of the payload (one per change
//! with nothing to split), as an independent count over `serde_json::Value` says. Inputs are
//! arbitrary bytes, and mutations (byte-level and structural) of real webhooks: Meta's
//! documented examples (tests/fixtures/meta-webhooks) and the events/ fixtures. Bounded so the
//! whole file runs in a few seconds in CI.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value as Json;

use super::split;
use crate::signature::{AppSecrets, sign};

const SECRET: &str = "props-app-secret";

/// The webhook bodies of the fixtures.
fn fixtures() -> Vec<String> {
    let mut out = Vec::new();
    let meta: Json = serde_json::from_str(include_str!(
        "../../../tests/fixtures/meta-webhooks/examples.json"
    ))
    .unwrap_or(Json::Null);
    if let Json::Object(m) = meta {
        out.extend(m.values().map(Json::to_string));
    }
    for event in [
        include_str!("../../../events/webhook-receive/text-message.json"),
        include_str!("../../../events/webhook-receive/statuses-out-of-order.json"),
        include_str!("../../../events/webhook-receive/template-paused.json"),
        include_str!("../../../events/webhook-receive/user-preferences-stop.json"),
        include_str!("../../../events/webhook-receive/escaped-unicode.json"),
    ] {
        let ev: Json = serde_json::from_str(event).unwrap_or(Json::Null);
        if let Some(body) = ev["body"].as_str() {
            out.push(body.to_owned());
        }
    }
    out
}

/// The arrays of a `value` that split into one event per element.
const SPLIT_ARRAYS: [&str; 6] = [
    "messages",
    "statuses",
    "errors",
    "user_preferences",
    "calls",
    "message_echoes",
];

/// How many items a change's `value` splits into, or `None` when its shape is not the one
/// split (then the whole value is one event).
fn items(value: &Json) -> Option<usize> {
    let obj = value.as_object()?;
    if let Some(m) = obj.get("metadata").filter(|m| !m.is_null()) {
        let m = m.as_object()?;
        for k in ["phone_number_id", "display_phone_number"] {
            if m.get(k).is_some_and(|v| !v.is_null() && !v.is_string()) {
                return None;
            }
        }
    }
    let mut n = 0;
    for k in SPLIT_ARRAYS.iter().chain(&["contacts"]) {
        if let Some(v) = obj.get(*k) {
            let a = v.as_array()?;
            if *k != "contacts" {
                n += a.len();
            }
        }
    }
    Some(n)
}

/// The events a webhook that splits should give: per change with a non-null value, its item
/// count, or 1 when it has none.
fn expected_events(body: &Json) -> usize {
    let entries = body["entry"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    entries
        .iter()
        .flat_map(|e| e["changes"].as_array().map(Vec::as_slice).unwrap_or(&[]))
        .map(|c| match c.get("value") {
            None | Some(Json::Null) => 0,
            Some(v) => items(v).filter(|n| *n > 0).unwrap_or(1),
        })
        .sum()
}

/// What serde_json's `Value` refuses in a JSON text that is well formed (RFC 8259 allows lone
/// surrogate escapes and numbers of any size); the split hands such parts on as written.
const UNREPRESENTABLE: [&str; 3] = [
    "lone leading surrogate in hex escape",
    "unexpected end of hex escape",
    "number out of range",
];

/// Splits `body`; when it splits, checks the count against [`expected_events`] and that every
/// item is JSON. A body `Value` cannot hold (see [`UNREPRESENTABLE`]) has no count to check
/// against; it must still be well-formed JSON.
fn check_split(body: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(events) = split(body) {
        let parsed: Json = match serde_json::from_slice(body) {
            Ok(parsed) => parsed,
            Err(e) if UNREPRESENTABLE.iter().any(|m| e.to_string().starts_with(m)) => {
                prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok());
                return Ok(());
            }
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "split a body serde_json refuses: {e}"
                )));
            }
        };
        prop_assert_eq!(events.len(), expected_events(&parsed));
        for ev in &events {
            prop_assert!(
                serde_json::from_str::<&serde_json::value::RawValue>(ev.item.get()).is_ok()
            );
        }
    }
    Ok(())
}

/// A byte-level mutation.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Insert(Index, &'static str),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 1usize..80).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (
            any::<Index>(),
            prop::sample::select(vec![
                "[",
                "]",
                "{",
                "}",
                ",",
                ":",
                "\"",
                "\\",
                "null",
                "1e999",
                "-0",
                "[]",
                "{}",
                "\"\\ud800\"",
                "\u{feff}",
                "\u{0}"
            ])
        )
            .prop_map(|(i, s)| Mutation::Insert(i, s)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    let len = body.len().max(1);
    match m {
        Mutation::Flip(i, b) => {
            if !body.is_empty() {
                let at = i.index(len);
                body[at] = *b;
            }
        }
        Mutation::Delete(i, n) => {
            let at = i.index(len).min(body.len());
            let end = (at + n).min(body.len());
            body.drain(at..end);
        }
        Mutation::Duplicate(i, n) => {
            let at = i.index(len).min(body.len());
            let end = (at + n).min(body.len());
            let copy = body[at..end].to_vec();
            body.splice(at..at, copy);
        }
        Mutation::Insert(i, s) => {
            let at = i.index(len).min(body.len());
            body.splice(at..at, s.bytes());
        }
        Mutation::Truncate(i) => body.truncate(i.index(len)),
    }
}

/// A JSON value of any type, small.
fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        ".{0,12}".prop_map(Json::String),
        Just(Json::Array(Vec::new())),
        Just(Json::Object(serde_json::Map::new())),
        prop::collection::vec(any::<i32>().prop_map(Json::from), 0..3).prop_map(Json::Array),
    ]
}

/// Every path to a value in `v` (object keys and array indexes).
fn paths(v: &Json, here: &mut Vec<Json>, out: &mut Vec<Vec<Json>>) {
    match v {
        Json::Object(m) => {
            for (k, child) in m {
                here.push(Json::String(k.clone()));
                out.push(here.clone());
                paths(child, here, out);
                here.pop();
            }
        }
        Json::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(Json::from(i));
                out.push(here.clone());
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'v>(v: &'v mut Json, path: &[Json]) -> Option<&'v mut Json> {
    path.iter().try_fold(v, |v, step| match step {
        Json::String(k) => v.get_mut(k.as_str()),
        Json::Number(i) => v.get_mut(usize::try_from(i.as_u64()?).ok()?),
        _ => None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes, under any signature header: verify and split never panic, and only
    /// the body's own signature passes.
    #[test]
    fn arbitrary_bytes_and_headers_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        header in prop_oneof![Just(None), ".{0,80}".prop_map(Some), "sha256=[0-9a-f]{0,70}".prop_map(Some)],
    ) {
        let secrets = AppSecrets::parse(&secrecy::SecretString::from(SECRET.to_owned()))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let good = sign(SECRET, &body);
        let verdict = secrets.verify(header.as_deref(), &body);
        prop_assert_eq!(verdict.is_ok(), header.as_deref() == Some(good.as_str()));
        check_split(&body)?;
    }

    /// Byte-level mutations of real webhooks: split refuses, or yields the payload's count.
    /// Signing the mutated body and checking it is the handler's first step: it must pass.
    #[test]
    fn mutated_fixtures_split_into_the_payload_count_or_are_refused(
        pick in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let all = fixtures();
        prop_assert!(all.len() > 10);
        let mut body = all[pick.index(all.len())].clone().into_bytes();
        for m in &mutations {
            apply(&mut body, m);
        }
        let secrets = AppSecrets::parse(&secrecy::SecretString::from(SECRET.to_owned()))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(secrets.verify(Some(&sign(SECRET, &body)), &body).is_ok());
        check_split(&body)?;
    }

    /// Structural mutations (any field replaced by a value of any type): the body is still
    /// JSON, so split yields the count or refuses a broken envelope; never a panic.
    #[test]
    fn fixtures_with_any_field_replaced_keep_the_count(
        pick in any::<Index>(),
        at in any::<Index>(),
        with in leaf(),
    ) {
        let all = fixtures();
        let mut v: Json = serde_json::from_str(&all[pick.index(all.len())])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut every = Vec::new();
        paths(&v, &mut Vec::new(), &mut every);
        prop_assume!(!every.is_empty());
        let path = every[at.index(every.len())].clone();
        if let Some(slot) = at_mut(&mut v, &path) {
            *slot = with;
        }
        check_split(v.to_string().as_bytes())?;
    }

    /// A generated batch of N messages and M statuses in one change splits into N + M events.
    #[test]
    fn a_generated_batch_splits_into_one_event_per_item(n in 0usize..40, m in 0usize..40) {
        let msgs: Vec<Json> = (0..n)
            .map(|i| serde_json::json!({"from": format!("1555{i:07}"), "id": format!("wamid.{i}"),
                                        "timestamp": "1795420800", "type": "text", "text": {"body": "x"}}))
            .collect();
        let sts: Vec<Json> = (0..m)
            .map(|i| serde_json::json!({"id": format!("wamid.o{i}"), "status": "sent",
                                        "timestamp": "1795420800", "recipient_id": "1555"}))
            .collect();
        let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "W",
            "changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": "1"},
                         "messages": msgs, "statuses": sts}}]}]});
        let events = split(body.to_string().as_bytes())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(events.len(), (n + m).max(1));
    }
}

/// The structural property, exhaustively: every field of every fixture replaced by a value of
/// each JSON type (a few thousand bodies, well under a second). The random search above found
/// `metadata: []` read as an empty object; this finds such a case on every run.
#[test]
fn every_field_of_every_fixture_replaced_by_each_type_keeps_the_count() {
    let kinds = [
        Json::Null,
        Json::Bool(true),
        Json::from(7),
        Json::from(1.5),
        Json::String("x".to_owned()),
        Json::Array(Vec::new()),
        Json::Array(vec![Json::from("1"), Json::from("2")]),
        Json::Object(serde_json::Map::new()),
    ];
    let mut failures = Vec::new();
    for (n, fixture) in fixtures().iter().enumerate() {
        let original: Json = serde_json::from_str(fixture).unwrap();
        let mut every = Vec::new();
        paths(&original, &mut Vec::new(), &mut every);
        for path in &every {
            for kind in &kinds {
                let mut v = original.clone();
                *at_mut(&mut v, path).unwrap() = kind.clone();
                if let Err(e) = check_split(v.to_string().as_bytes()) {
                    failures.push(format!("fixture {n}, {path:?} = {kind}: {e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
