//! Tenant isolation (issue 6): an API key scoped to one phone number cannot act for, or learn
//! about, another number on any route.
//!
//! Two numbers, A and B, and keys scoped with [`KeyScope::Numbers`]. Requests are the
//! `events/send-api/*.json` and `events/read-api/*.json` API Gateway v2 fixtures with their
//! path and headers edited as JSON.
//!
//! - send-api runs in-process (`send_api::handler`) on [`InMemoryStore`] and
//!   [`RecordingOutbound`]: fast and deterministic, no AWS.
//! - read-api is a binary-only crate, so the read routes (and revocation, which only the
//!   DynamoDB store implements) are checked through the real `read-api` binary behind
//!   wa-emulator against moto, with send-api's handler on the same table creating the sends.
//!   That test is `#[ignore]`d like `pipeline.rs`; run it with
//!   `scripts/with-moto.sh cargo test -p wa-tests --test tenant_isolation -- --include-ignored`
//!   after `cargo build -p read-api`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test file: helpers panic with the reason

use std::time::Duration;

use lambda_http::Body;
use send_api::handler::{Deps, handle};
use serde_json::Value;
use wa_domain::auth::hash_key;
use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::outbound::accept::AcceptConfig;
use wa_domain::ports::{
    ApiKeyStore, ConversationReader, InboundStore, KeyScope, OutboundQueue, SendStore,
};
use wa_domain::testing::{InMemoryStore, RecordingOutbound};
use wa_domain::window::WindowUpdate;
use wa_emulator::{FunctionConfig, FunctionPool, Invocation};
use wa_tests::{bin_path, fixture, fresh_table, moto_endpoint};

/// Number A (the fixtures' number) and number B.
const NUMBER_A: &str = "106540352242922";
const NUMBER_B: &str = "209876543210987";
/// A key for A only, a key for B only, and an operator key for any number.
const KEY_A: &str = "key-for-number-a";
const KEY_B: &str = "key-for-number-b";
const KEY_ANY: &str = "key-for-any-number";
/// The customer both numbers talk to (the fixtures' recipient).
const CUSTOMER: &str = "16505551234";
const NOW_MS: i64 = 1_795_428_000_000;

/// A fixture as JSON.
fn event(case: &str) -> Value {
    serde_json::from_str(&fixture(case)).expect("fixture is JSON")
}

/// Sets (or with `None` removes) the `authorization` header.
fn with_auth(mut ev: Value, authorization: Option<&str>) -> Value {
    let headers = ev["headers"].as_object_mut().expect("headers");
    match authorization {
        Some(a) => headers.insert("authorization".into(), a.into()),
        None => headers.remove("authorization"),
    };
    ev
}

/// Points an event at `path`, keeping rawPath, requestContext.http.path and the path
/// parameters in agreement, as API Gateway does.
fn with_path(mut ev: Value, path: &str, params: &[(&str, &str)]) -> Value {
    ev["rawPath"] = path.into();
    ev["requestContext"]["http"]["path"] = path.into();
    for (k, v) in params {
        ev["pathParameters"][*k] = (*v).into();
    }
    ev
}

/// `POST /v25.0/{pnid}/messages` with the text fixture's body.
fn send_event(pnid: &str, authorization: Option<&str>, idempotency_key: Option<&str>) -> Value {
    let mut ev = with_auth(
        with_path(
            event("send-api/text"),
            &format!("/v25.0/{pnid}/messages"),
            &[("phone_number_id", pnid)],
        ),
        authorization,
    );
    if let Some(k) = idempotency_key {
        ev["headers"]["idempotency-key"] = k.into();
    }
    ev
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// Keys A, B and ANY, and an open window with [`CUSTOMER`] on both numbers.
async fn seed<S: ApiKeyStore + InboundStore>(store: &S) {
    for (key, scope) in [
        (KEY_A, KeyScope::Numbers(vec![NUMBER_A.into()])),
        (KEY_B, KeyScope::Numbers(vec![NUMBER_B.into()])),
        (KEY_ANY, KeyScope::AnyNumber),
    ] {
        store.put_key(&hash_key(key), &scope, key).await.unwrap();
    }
    let who = CustomerRef::new(None, Some(CUSTOMER)).unwrap();
    for pnid in [NUMBER_A, NUMBER_B] {
        store
            .advance_window(
                pnid,
                &CustomerKey::Phone(CUSTOMER.into()),
                &who,
                &WindowUpdate::for_message(NOW_MS / 1000 - 3600, false),
                None,
            )
            .await
            .unwrap();
    }
}

/// What send-api answered: status, body, and whether it was an idempotent replay.
struct Answer {
    status: u16,
    body: Value,
    replayed: bool,
}

async fn post<S, Q>(deps: &Deps<S, Q>, ev: &Value, random: u8) -> Answer
where
    S: SendStore
        + ConversationReader
        + ApiKeyStore
        + InboundStore
        + wa_domain::templates::TemplateStore
        + wa_domain::broadcast::LimitStore,
    Q: OutboundQueue,
{
    let req = lambda_http::request::from_str(&ev.to_string()).expect("API Gateway v2 event");
    let res = handle(deps, req, NOW_MS, [random; 10]).await;
    let body = match res.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    Answer {
        status: res.status().as_u16(),
        replayed: res.headers().contains_key("idempotent-replayed"),
        body,
    }
}

fn send_id(a: &Answer) -> String {
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["messages"][0]["id"]
        .as_str()
        .expect("a send id")
        .to_owned()
}

async fn memory_deps() -> Deps<InMemoryStore, RecordingOutbound> {
    let store = InMemoryStore::default();
    seed(&store).await;
    Deps {
        store,
        queue: RecordingOutbound::default(),
        config: AcceptConfig::default(),
    }
}

#[tokio::test]
async fn key_a_cannot_send_from_number_b_and_nothing_is_queued() {
    let d = memory_deps().await;
    let a = post(&d, &send_event(NUMBER_B, Some(&bearer(KEY_A)), None), 1).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["error"]["code"], 10);
    // Nor with an Idempotency-Key (which must not be recorded either).
    let a = post(
        &d,
        &send_event(NUMBER_B, Some(&bearer(KEY_A)), Some("k-1")),
        2,
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(d.queue.jobs().is_empty(), "{:?}", d.queue.jobs());
    assert!(d.store.sends().is_empty());

    // The same request from A's own number goes through (so the refusal is the scope's).
    let id = send_id(&post(&d, &send_event(NUMBER_A, Some(&bearer(KEY_A)), None), 3).await);
    assert_eq!(d.queue.jobs().len(), 1);
    let sends = d.store.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].id.as_str(), id);
    assert_eq!(sends[0].phone_number_id, NUMBER_A);
}

#[tokio::test]
async fn no_unknown_or_malformed_keys_are_401_on_send() {
    let d = memory_deps().await;
    let unknown = bearer("not-a-key");
    let cases: [(&str, Option<&str>); 6] = [
        ("no header", None),
        ("unknown key", Some(&unknown)),
        ("key without Bearer", Some(KEY_A)),
        ("Basic scheme", Some("Basic key-for-number-a")),
        ("Token scheme", Some("Token key-for-number-a")),
        ("Bearer with no key", Some("Bearer ")),
    ];
    for (why, auth) in cases {
        for pnid in [NUMBER_A, NUMBER_B] {
            let a = post(&d, &send_event(pnid, auth, None), 1).await;
            assert_eq!(a.status, 401, "{why} on {pnid}: {}", a.body);
            assert_eq!(a.body["error"]["code"], 190, "{why}");
        }
    }
    assert!(d.queue.jobs().is_empty());
    assert!(d.store.sends().is_empty());
}

#[tokio::test]
async fn an_idempotency_key_is_scoped_to_the_api_key_that_used_it() {
    let d = memory_deps().await;
    let from_a = send_event(NUMBER_A, Some(&bearer(KEY_A)), Some("order-1234-shipped"));
    let first = send_id(&post(&d, &from_a, 1).await);

    // Key A again: a replay of the same send, nothing new queued.
    let again = post(&d, &from_a, 2).await;
    assert!(again.replayed, "{}", again.body);
    assert_eq!(send_id(&again), first);
    assert_eq!(d.queue.jobs().len(), 1);

    // Another key allowed on number A, same Idempotency-Key, same body: a new send.
    let from_any = send_event(NUMBER_A, Some(&bearer(KEY_ANY)), Some("order-1234-shipped"));
    let other = post(&d, &from_any, 3).await;
    assert!(!other.replayed, "{}", other.body);
    let second = send_id(&other);
    assert_ne!(second, first, "key ANY was answered with key A's send");
    assert_eq!(d.queue.jobs().len(), 2);
    assert_eq!(d.store.sends().len(), 2);

    // And key B cannot reach A's send through the key either: its own number, its own send.
    let from_b = send_event(NUMBER_B, Some(&bearer(KEY_B)), Some("order-1234-shipped"));
    let third = send_id(&post(&d, &from_b, 4).await);
    assert!(third != first && third != second);
}

// --- read routes, through the read-api binary (moto) -------------------------------------

const INVOKE: Duration = Duration::from_secs(30);

async fn read_api(table: &str) -> FunctionPool {
    let config = FunctionConfig::new("read-api", bin_path("read-api"))
        .env("VENTANA_TABLE_NAME", table)
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "off");
    let pool = FunctionPool::spawn(config).await.expect("read-api starts");
    pool.wait_ready(Duration::from_secs(30))
        .await
        .expect("read-api finishes its init");
    pool
}

/// Invokes read-api and returns (status, body as JSON).
async fn get(pool: &FunctionPool, ev: &Value) -> (u16, Value) {
    let res = match pool.invoke(ev, INVOKE).await.expect("invocation completes") {
        Invocation::Response(v) => v,
        Invocation::Error(e) => panic!("function error {e}"),
    };
    let status = res["statusCode"].as_u64().expect("statusCode") as u16;
    let body = serde_json::from_str(res["body"].as_str().unwrap_or("null")).expect("JSON body");
    (status, body)
}

fn conversation_event(pnid: &str, authorization: Option<&str>) -> Value {
    with_auth(
        with_path(
            event("read-api/conversation"),
            &format!("/v1/conversations/{pnid}/{CUSTOMER}"),
            &[("phone_number_id", pnid), ("customer", CUSTOMER)],
        ),
        authorization,
    )
}

fn message_event(id: &str, authorization: Option<&str>) -> Value {
    with_auth(
        with_path(
            event("read-api/message"),
            &format!("/v1/messages/{id}"),
            &[("id", id)],
        ),
        authorization,
    )
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the read-api debug binary"]
async fn read_routes_and_revoked_keys_are_isolated_per_number() {
    let (store, _, table) = fresh_table().await;
    seed(&store).await;
    let deps = Deps {
        store,
        queue: RecordingOutbound::default(),
        config: AcceptConfig::default(),
    };
    let send_a = send_id(&post(&deps, &send_event(NUMBER_A, Some(&bearer(KEY_A)), None), 1).await);
    let send_b = send_id(&post(&deps, &send_event(NUMBER_B, Some(&bearer(KEY_B)), None), 2).await);
    let read = read_api(&table).await;
    let a = bearer(KEY_A);

    // A reads A's conversation and A's send.
    let (status, body) = get(&read, &conversation_event(NUMBER_A, Some(&a))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["customer"]["wa_id"], CUSTOMER);
    let (status, body) = get(&read, &message_event(&send_a, Some(&a))).await;
    assert_eq!((status, body["id"].as_str()), (200, Some(send_a.as_str())));

    // Not B's conversation (403), nor B's send: 404, the answer an unknown id gets.
    let (status, body) = get(&read, &conversation_event(NUMBER_B, Some(&a))).await;
    assert_eq!((status, &body["error"]["code"]), (403, &"forbidden".into()));
    let (status, others) = get(&read, &message_event(&send_b, Some(&a))).await;
    let unknown_id = "vnt.01KAP7X5Z8M3Q9R2T4V6W8Y0AB";
    assert_ne!(unknown_id, send_b);
    let (unknown_status, unknown) = get(&read, &message_event(unknown_id, Some(&a))).await;
    assert_eq!(status, 404, "{others}");
    assert_eq!(unknown_status, 404, "{unknown}");
    assert_eq!(others["error"]["code"], unknown["error"]["code"]);
    assert_eq!(others["error"]["message"], unknown["error"]["message"]);
    assert!(!others.to_string().contains(NUMBER_B), "{others}");
    // B itself can read it (so the 404 above is the scope's).
    let (status, _) = get(&read, &message_event(&send_b, Some(&bearer(KEY_B)))).await;
    assert_eq!(status, 200);

    // No key, unknown key, no Bearer, another scheme: 401 on both read routes.
    let unknown_key = bearer("not-a-key");
    for auth in [
        None,
        Some(unknown_key.as_str()),
        Some(KEY_A),
        Some("Basic key-for-number-a"),
    ] {
        let (status, body) = get(&read, &conversation_event(NUMBER_A, auth)).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        let (status, body) = get(&read, &message_event(&send_a, auth)).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
    }

    // Revoked (what `ventana api-key revoke` does): 401 on every route, nothing queued.
    assert!(deps.store.revoke_key(&hash_key(KEY_A)).await.unwrap());
    let (status, _) = get(&read, &conversation_event(NUMBER_A, Some(&a))).await;
    assert_eq!(status, 401);
    let (status, _) = get(&read, &message_event(&send_a, Some(&a))).await;
    assert_eq!(status, 401);
    let jobs_before = deps.queue.jobs().len();
    let refused = post(&deps, &send_event(NUMBER_A, Some(&a), None), 3).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(deps.queue.jobs().len(), jobs_before);
    // B's key is untouched by A's revocation.
    let (status, _) = get(&read, &conversation_event(NUMBER_B, Some(&bearer(KEY_B)))).await;
    assert_eq!(status, 200);
    read.shutdown().await;
}
