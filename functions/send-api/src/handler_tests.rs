//! Handler tests on the `events/send-api/*.json` fixtures (API Gateway HTTP API v2 events;
//! `python3 events/generate.py` writes them).

use super::*;
use wa_domain::outbound::{SendId, SendKind};
use wa_domain::testing::{InMemoryStore, RecordingOutbound};

use crate::test_support::{NOW_MS, PNID, deps, fixture};

async fn post(deps: &Deps<InMemoryStore, RecordingOutbound>, event: &str) -> (u16, Value) {
    post_at(deps, event, NOW_MS, 1).await
}

async fn post_at(
    deps: &Deps<InMemoryStore, RecordingOutbound>,
    event: &str,
    now_ms: i64,
    random: u8,
) -> (u16, Value) {
    let req = lambda_http::request::from_str(event).expect("API Gateway v2 event");
    let res = handle(deps, req, now_ms, [random; 10]).await;
    let body = match res.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    (res.status().as_u16(), body)
}

#[tokio::test]
async fn a_text_is_queued_and_answered_in_the_cloud_api_shape() {
    let d = deps().await;
    let (status, body) = post(&d, &fixture("text")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["contacts"][0]["input"], "+1 650-555-1234");
    assert_eq!(body["contacts"][0]["wa_id"], "16505551234");
    assert_eq!(body["messages"][0]["message_status"], "accepted");
    let id = SendId::parse(body["messages"][0]["id"].as_str().unwrap()).unwrap();
    assert_eq!(d.queue.jobs().len(), 1);
    assert_eq!(d.queue.jobs()[0].send_id, id);
    let r = d.store.send(&id).unwrap();
    assert_eq!(r.body["text"]["body"], "Your order shipped.");
}

#[tokio::test]
async fn a_base64_body_is_decoded_first() {
    let d = deps().await;
    let (status, body) = post(&d, &fixture("text-base64")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(d.queue.jobs().len(), 1);
}

#[tokio::test]
async fn no_key_is_401_and_another_numbers_key_is_403_and_nothing_is_queued() {
    let d = deps().await;
    let (status, body) = post(&d, &fixture("no-key")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 190);
    assert_eq!(body["error"]["fbtrace_id"], "JKJaXmPLvHcESHA=");
    let (status, body) = post(&d, &fixture("other-number")).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], 10);
    assert!(d.queue.jobs().is_empty());
    assert!(d.store.sends().is_empty());
}

#[tokio::test]
async fn an_invalid_body_is_400_naming_the_field() {
    let d = deps().await;
    let (status, body) = post(&d, &fixture("text-too-long")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 131_009);
    let details = body["error"]["error_data"]["details"].as_str().unwrap();
    assert!(details.contains("text.body"), "{details}");
    let (status, body) = post(&d, &fixture("not-json")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 100);
    assert!(d.queue.jobs().is_empty());
}

#[tokio::test]
async fn a_body_over_1_mb_is_413_before_anything_else() {
    let d = deps().await;
    let mut event: Value = serde_json::from_str(&fixture("no-key")).unwrap();
    event["body"] = Value::String(format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024)));
    let (status, body) = post(&d, &event.to_string()).await;
    // Even without a key: the size is checked first, and nothing is read.
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], 100);
    assert!(d.store.sends().is_empty());
}

#[tokio::test]
async fn a_bad_version_is_400() {
    let d = deps().await;
    let (status, body) = post(&d, &fixture("bad-version")).await;
    assert_eq!(status, 400, "{body}");
    assert!(d.queue.jobs().is_empty());
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let d = deps().await;
    let (s1, b1) = post_at(&d, &fixture("text-idempotent"), NOW_MS, 1).await;
    let (s2, b2) = post_at(&d, &fixture("text-idempotent"), NOW_MS + 5_000, 2).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1, b2);
    assert_eq!(d.queue.jobs().len(), 1);
    let req = lambda_http::request::from_str(&fixture("text-idempotent")).unwrap();
    let res = handle(&d, req, NOW_MS + 6_000, [3; 10]).await;
    assert_eq!(
        res.headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
}

#[tokio::test]
async fn a_closed_window_is_refused_with_131047_unless_a_fallback_is_given() {
    let d = deps().await;
    let a_day_later = NOW_MS + 86_400_000;
    let (status, body) = post_at(&d, &fixture("text"), a_day_later, 1).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 131_047);
    assert!(d.queue.jobs().is_empty());
    let (status, body) = post_at(&d, &fixture("text-with-fallback"), a_day_later, 2).await;
    assert_eq!(status, 200, "{body}");
    let id = SendId::parse(body["messages"][0]["id"].as_str().unwrap()).unwrap();
    assert_eq!(d.store.send(&id).unwrap().kind, SendKind::Template);
}

#[tokio::test]
async fn templates_and_read_receipts_are_accepted() {
    let d = deps().await;
    let (status, body) = post_at(&d, &fixture("template"), NOW_MS, 1).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_at(&d, &fixture("read-receipt"), NOW_MS, 2).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, serde_json::json!({"success": true}));
    assert_eq!(d.queue.jobs().len(), 2);
}

#[tokio::test]
async fn a_store_outage_is_503_in_the_cloud_api_shape() {
    let d = deps().await;
    d.store.set_failing(true);
    let (status, body) = post(&d, &fixture("text")).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], 2);
    assert!(d.queue.jobs().is_empty());
    d.store.set_failing(false);
    d.queue.set_failing(true);
    let (status, _) = post(&d, &fixture("text")).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn other_routes_are_404() {
    let d = deps().await;
    let mut event: Value = serde_json::from_str(&fixture("text")).unwrap();
    event["rawPath"] = Value::String(format!("/v25.0/{PNID}/media"));
    event["requestContext"]["http"]["path"] = event["rawPath"].clone();
    event["pathParameters"] = Value::Null;
    let (status, _) = post(&d, &event.to_string()).await;
    assert_eq!(status, 404);
}

#[test]
fn versions_look_like_metas() {
    for ok in ["v25.0", "v1", "v19.10"] {
        assert!(is_version(ok), "{ok}");
    }
    for bad in ["latest", "v", "25.0", "v25.", "v25.0.1", "vx"] {
        assert!(!is_version(bad), "{bad}");
    }
}

#[tokio::test]
async fn get_openapi_json_serves_the_checked_in_document_without_a_key() {
    let d = deps().await;
    let mut event: Value = serde_json::from_str(&fixture("no-key")).unwrap();
    event["rawPath"] = Value::String("/openapi.json".into());
    event["routeKey"] = Value::String("GET /openapi.json".into());
    event["requestContext"]["http"]["path"] = event["rawPath"].clone();
    event["requestContext"]["http"]["method"] = Value::String("GET".into());
    event["pathParameters"] = Value::Null;
    event["body"] = Value::Null;
    let req = lambda_http::request::from_str(&event.to_string()).unwrap();
    let res = handle(&d, req, NOW_MS, [1; 10]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let Body::Text(text) = res.body() else {
        panic!("unexpected body {:?}", res.body());
    };
    let on_disk = std::fs::read_to_string(format!(
        "{}/../../docs/openapi.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(text, &on_disk);
    let doc: Value = serde_json::from_str(text).unwrap();
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert!(d.queue.jobs().is_empty());
}

#[tokio::test]
async fn a_template_over_the_messaging_limit_is_429_with_retry_after_and_nothing_queued() {
    use wa_domain::broadcast::LimitStore;
    use wa_domain::model::MessagingLimit;
    use wa_domain::templates::{TemplateCategory, TemplateDef, TemplateStatus, TemplateStore};
    let mut d = deps().await;
    d.config.default_tier = MessagingLimit::Tier50;
    d.store.set_waba(PNID, "WABA1");
    d.store
        .put_template(&TemplateDef {
            waba_id: "WABA1".into(),
            name: "order_update".into(),
            language: "en_US".into(),
            id: None,
            status: TemplateStatus::Approved,
            category: TemplateCategory::Utility,
            components: serde_json::json!([{"type": "BODY", "text": "Order {{1}} shipped"}]),
            quality: None,
            updated_at: 1,
        })
        .await
        .unwrap();
    // Two days on, the customer's window is closed and 50 others took the tier's 50 an hour ago.
    let later_ms = NOW_MS + 2 * 86_400_000;
    let (granted, _) = d
        .store
        .reserve("WABA1", 50, 50, later_ms / 1000 - 3600)
        .await
        .unwrap();
    assert_eq!(granted, 50);
    let req = lambda_http::request::from_str(&fixture("template")).unwrap();
    let res = handle(&d, req, later_ms, [9; 10]).await;
    assert_eq!(res.status().as_u16(), 429);
    let wait: i64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((22 * 3600..=24 * 3600).contains(&wait), "{wait}");
    let body: Value = match res.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    assert_eq!(body["error"]["code"], 80_007);
    assert!(d.queue.jobs().is_empty());
}
