use serde_json::json;

use super::*;
use crate::broadcast::LimitStore;
use crate::customer::{CustomerKey, CustomerRef};
use crate::outbound::SendKind;
use crate::ports::{Consent, ConsentRecord, ConsentSource, InboundStore};
use crate::testing::{InMemoryStore, RecordingOutbound};
use crate::window::WindowUpdate;

const PNID: &str = "106540352242922";
const PHONE: &str = "5511999990000";
const NOW_MS: i64 = 1_795_420_800_000;
const NOW: i64 = NOW_MS / 1000;

fn call<'a>(body: &'a [u8], key: Option<&'a str>, random: u8) -> SendCall<'a> {
    SendCall {
        phone_number_id: PNID,
        body,
        idempotency_key: key,
        api_key_hash: "keyhash",
        now_ms: NOW_MS,
        random: [random; 10],
        trace_id: "trace-1",
    }
}

fn text(body: &str) -> Vec<u8> {
    json!({"messaging_product": "whatsapp", "to": format!("+{PHONE}"), "type": "text", "text": {"body": body}})
        .to_string()
        .into_bytes()
}

fn template_body() -> Value {
    json!({"name": "order_update", "language": {"code": "es"},
           "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]})
}

async fn wrote_at(store: &InMemoryStore, at: i64) {
    let who = CustomerRef::new(None, Some(PHONE)).unwrap();
    let key = CustomerKey::Phone(PHONE.into());
    store
        .advance_window(
            PNID,
            &key,
            &who,
            &WindowUpdate::for_message(at, false),
            None,
        )
        .await
        .unwrap();
}

async fn opt_out(store: &InMemoryStore, scope: &str, at: i64) {
    store
        .record_consent(&ConsentRecord {
            phone_number_id: PNID.into(),
            customer: CustomerKey::Phone(PHONE.into()),
            scope: scope.into(),
            consent: Consent::OptedOut,
            source: ConsentSource::Keyword,
            at,
            detail: None,
        })
        .await
        .unwrap();
}

async fn run(store: &InMemoryStore, queue: &RecordingOutbound, c: SendCall<'_>) -> Answer {
    accept(store, queue, &AcceptConfig::default(), c)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_text_inside_the_window_is_recorded_queued_and_answered_like_the_cloud_api() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    wrote_at(&store, NOW - 3600).await;
    let body = text("hello");
    let a = run(&store, &queue, call(&body, None, 1)).await;
    assert_eq!(a.http_status, 200);
    let id = a.send_id.clone().unwrap();
    assert_eq!(
        a.body,
        json!({"messaging_product": "whatsapp",
               "contacts": [{"input": format!("+{PHONE}"), "wa_id": PHONE}],
               "messages": [{"id": id.as_str(), "message_status": "accepted"}]})
    );
    let jobs = queue.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].send_id, id);
    assert_eq!(jobs[0].group, format!("{PNID}:p:{PHONE}"));
    let r = store.send(&id).unwrap();
    assert_eq!(r.state, SendState::Pending { not_before_ms: 0 });
    assert_eq!(r.kind, SendKind::Session);
    assert_eq!(r.message_type, "text");
    assert_eq!(r.customer, Some(CustomerKey::Phone(PHONE.into())));
    assert_eq!(r.body["text"]["body"], "hello");
    assert!(r.body.get("biz_opaque_callback_data").is_none());
}

#[tokio::test]
async fn a_session_message_outside_the_window_is_refused_with_131047_and_nothing_queued() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    wrote_at(&store, NOW - 25 * 3600).await;
    let body = text("late");
    let a = run(&store, &queue, call(&body, None, 1)).await;
    assert_eq!(a.http_status, 400);
    assert_eq!(a.body["error"]["code"], 131_047);
    assert_eq!(a.body["error"]["fbtrace_id"], "trace-1");
    assert!(queue.jobs().is_empty());
    assert!(store.sends().is_empty());

    // Never wrote at all: the same.
    let other = InMemoryStore::default();
    let a = run(&other, &queue, call(&body, None, 1)).await;
    assert_eq!(a.body["error"]["code"], 131_047);
}

#[tokio::test]
async fn the_margin_closes_the_window_early() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    // 30 s of window left, margin 60 s.
    wrote_at(&store, NOW - 24 * 3600 + 30).await;
    let a = run(&store, &queue, call(&text("edge"), None, 1)).await;
    assert_eq!(a.body["error"]["code"], 131_047);
}

#[tokio::test]
async fn a_fallback_template_is_sent_instead_when_the_window_is_closed() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    let body = json!({"messaging_product": "whatsapp", "to": PHONE, "type": "text",
                      "text": {"body": "are you there?"}, "fallback_template": template_body()})
    .to_string();
    let a = run(&store, &queue, call(body.as_bytes(), None, 1)).await;
    assert_eq!(a.http_status, 200, "{}", a.body);
    let r = store.send(&a.send_id.unwrap()).unwrap();
    assert_eq!(r.kind, SendKind::Template);
    assert_eq!(r.message_type, "template");
    assert_eq!(r.body["template"], template_body());
    assert_eq!(r.body["to"], PHONE);
    assert!(r.body.get("text").is_none());
    assert!(r.body.get("fallback_template").is_none());
    assert_eq!(queue.jobs().len(), 1);
}

#[tokio::test]
async fn inside_the_window_the_fallback_is_kept_for_dequeue_but_not_sent() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    wrote_at(&store, NOW - 60).await;
    let body = json!({"messaging_product": "whatsapp", "to": PHONE, "type": "text",
                      "text": {"body": "hi"}, "fallback_template": template_body()})
    .to_string();
    let a = run(&store, &queue, call(body.as_bytes(), None, 1)).await;
    let r = store.send(&a.send_id.unwrap()).unwrap();
    assert_eq!(r.kind, SendKind::Session);
    assert!(r.body.get("fallback_template").is_none());
    assert_eq!(r.fallback.unwrap()["template"], template_body());
}

#[tokio::test]
async fn an_invalid_fallback_names_its_field() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    let body = json!({"messaging_product": "whatsapp", "to": PHONE, "type": "text",
                      "text": {"body": "hi"}, "fallback_template": {"language": {"code": "es"}}})
    .to_string();
    let a = run(&store, &queue, call(body.as_bytes(), None, 1)).await;
    assert_eq!(a.http_status, 400);
    let details = a.body["error"]["error_data"]["details"].as_str().unwrap();
    assert!(details.contains("fallback_template.name"), "{details}");
    assert!(queue.jobs().is_empty());
}

#[tokio::test]
async fn an_opted_out_customer_is_refused_with_131050() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    wrote_at(&store, NOW - 7200).await;
    opt_out(&store, "all", NOW - 3600).await;
    let a = run(&store, &queue, call(&text("promo"), None, 1)).await;
    assert_eq!(a.http_status, 400);
    assert_eq!(a.body["error"]["code"], 131_050);
    assert!(queue.jobs().is_empty());
    // A template is refused too.
    let t = json!({"messaging_product": "whatsapp", "to": PHONE, "type": "template", "template": template_body()}).to_string();
    let a = run(&store, &queue, call(t.as_bytes(), None, 2)).await;
    assert_eq!(a.body["error"]["code"], 131_050);
    assert!(queue.jobs().is_empty());
}

#[tokio::test]
async fn a_template_goes_to_a_customer_who_never_wrote() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    let t = json!({"messaging_product": "whatsapp", "to": PHONE, "type": "template", "template": template_body()}).to_string();
    let a = run(&store, &queue, call(t.as_bytes(), None, 1)).await;
    assert_eq!(a.http_status, 200, "{}", a.body);
    assert_eq!(queue.jobs().len(), 1);
}

#[tokio::test]
async fn validation_errors_name_the_field_and_store_nothing() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    wrote_at(&store, NOW - 60).await;
    let long = "x".repeat(4097);
    let a = run(&store, &queue, call(&text(&long), Some("k1"), 1)).await;
    assert_eq!(a.http_status, 400);
    assert_eq!(a.body["error"]["code"], 131_009);
    assert!(
        a.body["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("text.body")
    );
    assert!(store.sends().is_empty());
    assert!(queue.jobs().is_empty());
    let a = run(&store, &queue, call(b"not json", None, 1)).await;
    assert_eq!(a.body["error"]["code"], 100);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_answer_and_queues_nothing_new() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    wrote_at(&store, NOW - 60).await;
    let body = text("once");
    let first = run(&store, &queue, call(&body, Some("order-42"), 1)).await;
    let again = run(&store, &queue, call(&body, Some("order-42"), 2)).await;
    assert_eq!(first.http_status, 200);
    assert_eq!(again.body, first.body);
    assert_eq!(again.send_id, first.send_id);
    assert!(again.replayed && !first.replayed);
    assert_eq!(queue.jobs().len(), 1);
    assert_eq!(store.sends().len(), 1);

    // Another body under the same key is refused.
    let other = run(&store, &queue, call(&text("twice?"), Some("order-42"), 3)).await;
    assert_eq!(other.http_status, 422);
    assert_eq!(store.sends().len(), 1);

    // Another key is another send.
    let b = run(&store, &queue, call(&body, Some("order-43"), 4)).await;
    assert_ne!(b.send_id, first.send_id);
    assert_eq!(queue.jobs().len(), 2);
}

#[tokio::test]
async fn an_idempotency_key_expires_after_24_hours() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    wrote_at(&store, NOW - 60).await;
    let body = text("once");
    let first = run(&store, &queue, call(&body, Some("k"), 1)).await;
    wrote_at(&store, NOW + 86_400).await;
    let mut later = call(&body, Some("k"), 2);
    later.now_ms = NOW_MS + 86_401_000;
    let second = run(&store, &queue, later).await;
    assert_eq!(second.http_status, 200);
    assert!(!second.replayed);
    assert_ne!(second.send_id, first.send_id);
}

#[tokio::test]
async fn a_refusal_under_an_idempotency_key_is_replayed_too() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    let body = text("closed");
    let first = run(&store, &queue, call(&body, Some("k"), 1)).await;
    assert_eq!(first.body["error"]["code"], 131_047);
    // The customer writes in; the same key still gives the first answer.
    wrote_at(&store, NOW - 10).await;
    let again = run(&store, &queue, call(&body, Some("k"), 2)).await;
    assert_eq!(again.http_status, 400);
    assert_eq!(again.body, first.body);
    assert!(queue.jobs().is_empty());
}

#[tokio::test]
async fn a_queue_failure_is_an_error_and_the_send_never_waits() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    wrote_at(&store, NOW - 60).await;
    queue.set_failing(true);
    let r = accept(
        &store,
        &queue,
        &AcceptConfig::default(),
        call(&text("x"), None, 1),
    )
    .await;
    assert!(matches!(r, Err(AcceptError::Queue(_))));
    let sends = store.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].state, SendState::Failed);

    // With a key, the client's retry queues it.
    let r = accept(
        &store,
        &queue,
        &AcceptConfig::default(),
        call(&text("y"), Some("k"), 2),
    )
    .await;
    assert!(r.is_err());
    queue.set_failing(false);
    let a = run(&store, &queue, call(&text("y"), Some("k"), 3)).await;
    assert_eq!(a.http_status, 200);
    assert!(a.replayed);
    assert_eq!(queue.jobs().len(), 1);
    assert_eq!(queue.jobs()[0].send_id, a.send_id.unwrap());
}

#[tokio::test]
async fn a_store_failure_is_an_error() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    store.set_failing(true);
    let r = accept(
        &store,
        &queue,
        &AcceptConfig::default(),
        call(&text("x"), None, 1),
    )
    .await;
    assert!(matches!(r, Err(AcceptError::Store(_))));
    assert!(queue.jobs().is_empty());
}

#[tokio::test]
async fn a_read_receipt_is_queued_without_a_window_check() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    let body =
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1"})
            .to_string();
    let a = run(&store, &queue, call(body.as_bytes(), None, 1)).await;
    assert_eq!(a.http_status, 200);
    assert_eq!(a.body, json!({"success": true}));
    let r = store.send(&a.send_id.unwrap()).unwrap();
    assert_eq!(r.kind, SendKind::ReadReceipt);
    assert_eq!(queue.jobs().len(), 1);
}

#[tokio::test]
async fn a_bsuid_recipient_resolves_to_its_customer() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    let who = CustomerRef::new(Some("BR.42"), Some(PHONE)).unwrap();
    let key = store.resolve_customer(PNID, &who).await.unwrap();
    store
        .advance_window(
            PNID,
            &key,
            &who,
            &WindowUpdate::for_message(NOW - 60, false),
            None,
        )
        .await
        .unwrap();
    // By phone: the alias leads to the BSUID's window.
    let a = run(&store, &queue, call(&text("by phone"), None, 1)).await;
    assert_eq!(a.http_status, 200, "{}", a.body);
    let r = store.send(&a.send_id.unwrap()).unwrap();
    assert_eq!(r.customer, Some(CustomerKey::Bsuid("BR.42".into())));
    // By BSUID.
    let body = json!({"messaging_product": "whatsapp", "recipient": "BR.42", "type": "text", "text": {"body": "by id"}}).to_string();
    let a = run(&store, &queue, call(body.as_bytes(), None, 2)).await;
    assert_eq!(a.http_status, 200, "{}", a.body);
    assert_eq!(queue.jobs()[1].group, format!("{PNID}:u:BR.42"));
}

/// The number's account with `order_update (es)` (UTILITY, one body parameter) and
/// `promo (es)` (MARKETING, none) synced.
async fn synced(store: &InMemoryStore) {
    use crate::templates::{TemplateCategory, TemplateDef, TemplateStatus, TemplateStore};
    store.set_waba(PNID, "WABA1");
    for (name, category, components) in [
        (
            "order_update",
            TemplateCategory::Utility,
            json!([{"type": "BODY", "text": "Pedido {{1}}"}]),
        ),
        (
            "promo",
            TemplateCategory::Marketing,
            json!([{"type": "BODY", "text": "Ofertas"}]),
        ),
    ] {
        store
            .put_template(&TemplateDef {
                waba_id: "WABA1".into(),
                name: name.into(),
                language: "es".into(),
                id: None,
                status: TemplateStatus::Approved,
                category,
                components,
                quality: None,
                updated_at: 1,
            })
            .await
            .unwrap();
    }
    store.mark_synced("WABA1", 1).await.unwrap();
}

fn template_send(template: Value) -> String {
    json!({"messaging_product": "whatsapp", "to": PHONE, "type": "template", "template": template})
        .to_string()
}

#[tokio::test]
async fn template_sends_are_checked_against_the_registry_before_anything_is_stored() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    synced(&store).await;
    let cases = [
        (template_body(), 200, None),
        (
            json!({"name": "order_update", "language": {"code": "es"}}),
            400,
            Some((
                132_000,
                "template order_update (es) body expects 1 parameter, got 0",
            )),
        ),
        (
            json!({"name": "order_update", "language": {"code": "en"}}),
            400,
            Some((132_001, "template order_update (en) is not known")),
        ),
    ];
    for (i, (t, status, error)) in cases.into_iter().enumerate() {
        let body = template_send(t);
        let a = run(
            &store,
            &queue,
            call(body.as_bytes(), Some(&format!("k{i}")), i as u8),
        )
        .await;
        assert_eq!(a.http_status, status, "{}", a.body);
        if let Some((code, details)) = error {
            assert_eq!(a.body["error"]["code"], code);
            let got = a.body["error"]["error_data"]["details"].as_str().unwrap();
            assert!(got.starts_with(details), "{got}");
        }
    }
    // Only the one that fits was recorded and queued.
    assert_eq!(queue.jobs().len(), 1);
}

#[tokio::test]
async fn a_fallback_template_is_checked_too() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    synced(&store).await;
    wrote_at(&store, NOW - 60).await;
    let body = json!({"messaging_product": "whatsapp", "to": PHONE, "type": "text",
                      "text": {"body": "hi"},
                      "fallback_template": {"name": "nope", "language": {"code": "es"}}})
    .to_string();
    let a = run(&store, &queue, call(body.as_bytes(), None, 1)).await;
    assert_eq!(a.http_status, 400);
    assert_eq!(a.body["error"]["code"], 132_001);
    let details = a.body["error"]["error_data"]["details"].as_str().unwrap();
    assert!(
        details.starts_with("fallback_template: template nope (es)"),
        "{details}"
    );
    assert!(queue.jobs().is_empty());
}

#[tokio::test]
async fn a_marketing_opt_out_stops_marketing_and_unknown_templates_only() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    opt_out(&store, "marketing", NOW - 3600).await;
    // Not synced: the template's category is unknown, so it is treated as marketing.
    let utility = template_send(template_body());
    let a = run(&store, &queue, call(utility.as_bytes(), None, 1)).await;
    assert_eq!(a.body["error"]["code"], 131_050);
    synced(&store).await;
    let a = run(&store, &queue, call(utility.as_bytes(), None, 2)).await;
    assert_eq!(
        a.http_status, 200,
        "a utility template still goes: {}",
        a.body
    );
    let promo = template_send(json!({"name": "promo", "language": {"code": "es"}}));
    let a = run(&store, &queue, call(promo.as_bytes(), None, 3)).await;
    assert_eq!(a.body["error"]["code"], 131_050);
    assert_eq!(queue.jobs().len(), 1);
}

fn template_to(phone: &str) -> String {
    json!({"messaging_product": "whatsapp", "to": phone, "type": "template", "template": template_body()})
        .to_string()
}

#[tokio::test]
async fn template_sends_outside_the_window_are_charged_against_the_messaging_limit() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    synced(&store).await;
    let config = AcceptConfig {
        default_tier: MessagingLimit::Tier50,
        ..AcceptConfig::default()
    };
    let send = |to: String, key: Option<String>, at_ms: i64, random: u8| {
        let (store, queue, config) = (&store, &queue, &config);
        async move {
            let mut c = call(to.as_bytes(), key.as_deref(), random);
            c.now_ms = at_ms;
            accept(store, queue, config, c).await.unwrap()
        }
    };
    // 50 unique customers fit the tier of 50; a second template to one of them is free.
    for i in 0..50u8 {
        let a = send(template_to(&format!("55119000000{i:02}")), None, NOW_MS, i).await;
        assert_eq!(a.http_status, 200, "{i}: {}", a.body);
    }
    let again = send(template_to("5511900000007"), None, NOW_MS, 60).await;
    assert_eq!(
        again.http_status, 200,
        "charged once per 24 h: {}",
        again.body
    );
    // The 51st customer is refused like Meta's rate limit, and nothing is queued for them.
    let key = Some("retry-me".to_owned());
    let over = send(template_to(PHONE), key.clone(), NOW_MS, 61).await;
    assert_eq!(over.http_status, 429, "{}", over.body);
    assert_eq!(over.body["error"]["code"], 80_007);
    let details = over.body["error"]["error_data"]["details"]
        .as_str()
        .unwrap();
    assert!(details.contains("messaging limit (50 unique"), "{details}");
    // Room comes back when the current hour leaves the rolling 24 hours (Retry-After).
    let wait = over.retry_after_secs.expect("a retry time");
    assert!(wait > 23 * 3600 && wait <= 25 * 3600, "{wait}");
    assert!(details.contains("Room comes back at"), "{details}");
    assert_eq!(queue.jobs().len(), 51);
    // A customer whose window is open is not business-initiated: free, even at the limit.
    let open = "5511911112222";
    let who = CustomerRef::new(None, Some(open)).unwrap();
    store
        .advance_window(
            PNID,
            &CustomerKey::Phone(open.into()),
            &who,
            &WindowUpdate::for_message(NOW - 60, false),
            None,
        )
        .await
        .unwrap();
    let a = send(template_to(open), None, NOW_MS, 62).await;
    assert_eq!(a.http_status, 200, "{}", a.body);
    // A day later the first hour's charges have left the window: the same request (same
    // Idempotency-Key: the 429 was not kept as its answer) goes.
    let later = NOW_MS + 25 * 3600 * 1000;
    let a = send(template_to(PHONE), key, later, 63).await;
    assert_eq!(a.http_status, 200, "{}", a.body);
    assert!(!a.replayed);
    assert_eq!(queue.jobs().len(), 53);
}

#[tokio::test]
async fn a_number_whose_account_is_unknown_is_charged_under_its_own_name() {
    let (store, queue) = (InMemoryStore::default(), RecordingOutbound::default());
    let config = AcceptConfig {
        default_tier: MessagingLimit::Tier50,
        ..AcceptConfig::default()
    };
    let send = |i: u8| {
        let (store, queue, config) = (&store, &queue, &config);
        async move {
            let body = template_to(&format!("55119000{i:03}"));
            accept(store, queue, config, call(body.as_bytes(), None, i))
                .await
                .unwrap()
        }
    };
    for i in 0..50u8 {
        assert_eq!(send(i).await.http_status, 200);
    }
    let over = send(50).await;
    assert_eq!(over.http_status, 429, "{}", over.body);
    assert_eq!(over.body["error"]["code"], 80_007);
    let charged = store
        .charged_since(&format!("pn:{PNID}"), &["p:55119000049".to_owned()], 0)
        .await
        .unwrap();
    assert_eq!(charged.len(), 1, "charged under pn:{PNID}");
    // Once a webhook names the account, its own count applies.
    store.set_waba(PNID, "WABA1");
    assert_eq!(send(51).await.http_status, 200);
}
