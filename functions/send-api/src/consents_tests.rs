//! Consent API tests on the `events/send-api/consent-*.json` fixtures, through the send-api
//! handler (so the dispatch is tested too).

use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::ports::{
    Consent, ConsentRecord, ConsentSource, ConversationReader, InboundStore, SendStore,
};
use wa_domain::testing::{InMemoryStore, RecordingOutbound};
use wa_domain::window::WindowUpdate;

use crate::handler::{Deps, handle};
use lambda_http::Body;
use serde_json::Value;

use crate::test_support::{NOW_MS, PNID, deps_over, fixture, keyed_store};
const BSUID: &str = "US.13491208655302741918";

/// A key for PNID only; the customer wrote with both a BSUID and a phone (so the phone is an
/// alias of the BSUID).
async fn deps() -> Deps<InMemoryStore, RecordingOutbound> {
    let store = keyed_store().await;
    let who = CustomerRef::new(Some(BSUID), Some("16505551234")).unwrap();
    let key = store.resolve_customer(PNID, &who).await.unwrap();
    store
        .advance_window(
            PNID,
            &key,
            &who,
            &WindowUpdate::for_message(NOW_MS / 1000 - 3600, false),
            None,
        )
        .await
        .unwrap();
    deps_over(store)
}

async fn call(d: &Deps<InMemoryStore, RecordingOutbound>, case: &str, now_ms: i64) -> (u16, Value) {
    let req = lambda_http::request::from_str(&fixture(case)).expect("API Gateway v2 event");
    let res = handle(d, req, now_ms, [1; 10]).await;
    let body = match res.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    (res.status().as_u16(), body)
}

fn bsuid() -> CustomerKey {
    CustomerKey::Bsuid(BSUID.into())
}

#[tokio::test]
async fn put_records_an_opt_in_with_its_origin_and_proof() {
    let d = deps().await;
    let (status, body) = call(&d, "consent-put", NOW_MS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "marketing");
    assert_eq!(body["status"], "opted_in");
    assert_eq!(body["source"], "web_form");
    assert_eq!(body["recorded_via"], "api");
    assert!(body["proof"].as_str().unwrap().contains("form v3"));
    assert_eq!(body["at"], "2026-11-23T10:00:00Z");
    // Stored under the customer the phone resolves to, with its detail.
    let stored = d.store.consent_of(PNID, &bsuid(), "marketing").unwrap();
    assert_eq!(stored.consent, Consent::OptedIn);
    assert_eq!(stored.source, ConsentSource::Api);
    assert_eq!(stored.at, NOW_MS / 1000);
    assert_eq!(stored.detail.unwrap().origin, "web_form");
    assert!(d.queue.jobs().is_empty(), "nothing is queued");
}

#[tokio::test]
async fn get_shows_records_and_the_effective_answers() {
    let d = deps().await;
    // Nothing recorded: anything may go, but not a broadcast that requires an opt-in.
    let (status, body) = call(&d, "consent-get", NOW_MS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["consents"], serde_json::json!([]));
    assert_eq!(body["customer"], format!("u:{BSUID}"));
    assert_eq!(body["effective"]["marketing"]["may_send"], true);
    assert_eq!(
        body["effective"]["marketing_requiring_opt_in"]["may_send"],
        false
    );
    assert_eq!(
        body["effective"]["marketing_requiring_opt_in"]["reason"],
        "no_opt_in"
    );
    assert_eq!(body["effective"]["all"]["may_send"], true);

    call(&d, "consent-put", NOW_MS).await;
    let (_, body) = call(&d, "consent-get-bsuid", NOW_MS + 1000).await;
    assert_eq!(body["consents"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["effective"]["marketing_requiring_opt_in"]["may_send"],
        true
    );

    // A later STOP keyword (scope all) wins over the opt-in, for everything.
    d.store
        .record_consent(&ConsentRecord {
            phone_number_id: PNID.into(),
            customer: bsuid(),
            scope: "all".into(),
            consent: Consent::OptedOut,
            source: ConsentSource::Keyword,
            at: NOW_MS / 1000 + 5,
            detail: None,
        })
        .await
        .unwrap();
    let (_, body) = call(&d, "consent-get", NOW_MS + 10_000).await;
    assert_eq!(body["consents"].as_array().unwrap().len(), 2);
    for k in ["marketing", "marketing_requiring_opt_in", "all"] {
        assert_eq!(body["effective"][k]["may_send"], false, "{k}");
        assert_eq!(body["effective"][k]["reason"], "opted_out_all", "{k}");
    }
    let keyword = body["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scope"] == "all")
        .unwrap();
    assert_eq!(keyword["source"], "keyword");
    assert_eq!(keyword["proof"], Value::Null);
}

#[tokio::test]
async fn an_older_put_does_not_override_a_newer_record() {
    let d = deps().await;
    d.store
        .record_consent(&ConsentRecord {
            phone_number_id: PNID.into(),
            customer: bsuid(),
            scope: "marketing".into(),
            consent: Consent::OptedOut,
            source: ConsentSource::UserPreferences,
            at: NOW_MS / 1000 + 60,
            detail: None,
        })
        .await
        .unwrap();
    let (status, body) = call(&d, "consent-put", NOW_MS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["status"], "opted_out",
        "the stored (newer) record is answered"
    );
    assert_eq!(body["source"], "user_preferences");
}

#[tokio::test]
async fn keys_are_checked_like_sends() {
    let d = deps().await;
    let (status, body) = call(&d, "consent-put-no-key", NOW_MS).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], 190);
    let (status, body) = call(&d, "consent-put-other-number", NOW_MS).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], 10);
    assert!(
        d.store.consents(PNID, &bsuid()).await.unwrap().is_empty(),
        "nothing recorded"
    );
    assert!(d.store.lookup_customer(PNID, &bsuid()).await.is_ok());
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_field() {
    let d = deps().await;
    let (status, body) = call(&d, "consent-put-bad-scope", NOW_MS).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("scope")
    );
    let bad = |b: &str| {
        let mut ev: Value = serde_json::from_str(&fixture("consent-put")).unwrap();
        ev["body"] = Value::String(b.into());
        ev.to_string()
    };
    for (b, names) in [
        (r#"{"scope":"all","status":"maybe","source":"x"}"#, "status"),
        (r#"{"scope":"all","status":"opted_in"}"#, "source"),
        (
            r#"{"scope":"all","status":"opted_in","source":"has space"}"#,
            "source",
        ),
        (
            r#"{"scope":"all","status":"opted_in","source":"x","extra":1}"#,
            "extra",
        ),
        (
            r#"{"scope":"all","status":"opted_in","source":"x","proof":5}"#,
            "proof",
        ),
        ("[]", "body"),
    ] {
        let req = lambda_http::request::from_str(&bad(b)).unwrap();
        let res = handle(&d, req, NOW_MS, [1; 10]).await;
        assert_eq!(res.status().as_u16(), 400, "{b}");
        let Body::Text(t) = res.body() else { panic!() };
        assert!(t.contains(names), "{b}: {t}");
    }
    assert!(d.store.consents(PNID, &bsuid()).await.unwrap().is_empty());
}
