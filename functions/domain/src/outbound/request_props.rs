//! Property tests of the send body parser (issue 6 item 3): it never panics on any bytes or
//! on any field of Meta's documented send examples replaced by a value of any type, and its
//! accept/refuse verdict is the same after the body is re-serialised (whitespace and key
//! order do not matter). Bounded so it runs in about a second.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value as Json;

use super::MessagesRequest;

/// Meta's documented send bodies (tests/fixtures/meta-sends).
fn examples() -> Vec<Json> {
    let all: Json = serde_json::from_str(include_str!(
        "../../../../tests/fixtures/meta-sends/examples.json"
    ))
    .unwrap_or(Json::Null);
    all.as_object()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default()
}

fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        ".{0,12}".prop_map(Json::String),
        Just(Json::Array(Vec::new())),
        Just(Json::Object(serde_json::Map::new())),
    ]
}

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

    /// Any bytes: a verdict, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = MessagesRequest::parse(&body);
    }

    /// Any field of a documented example replaced by any value: the verdict is the same for
    /// the compact and the pretty-printed body.
    #[test]
    fn the_verdict_is_stable_under_reserialisation(
        pick in any::<Index>(),
        at in any::<Index>(),
        with in leaf(),
        mutate in any::<bool>(),
    ) {
        let all = examples();
        prop_assert!(all.len() > 20);
        let mut v = all[pick.index(all.len())].clone();
        if mutate {
            let mut every = Vec::new();
            paths(&v, &mut Vec::new(), &mut every);
            if !every.is_empty() {
                let path = every[at.index(every.len())].clone();
                if let Some(slot) = at_mut(&mut v, &path) {
                    *slot = with;
                }
            }
        }
        let compact = serde_json::to_vec(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let pretty = serde_json::to_vec_pretty(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let a = MessagesRequest::parse(&compact).map(|_| ()).map_err(|e| e.to_string());
        let b = MessagesRequest::parse(&pretty).map(|_| ()).map_err(|e| e.to_string());
        prop_assert_eq!(a, b);
    }
}
