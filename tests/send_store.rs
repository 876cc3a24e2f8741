//! `wa-dynamodb`'s [`SendStore`] against moto: sends, optimistic saves, idempotency keys,
//! consent reads, and status webhooks linked to their send through `wa_domain::inbound`.
//! Each test makes its own table. Run with moto on `$AWS_ENDPOINT_URL` (`make test`).
// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use wa_domain::broadcast::BroadcastStore;
use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::inbound::{Applied, InboundConfig, apply};
use wa_domain::outbound::{
    Idempotency, SendFailure, SendId, SendKind, SendRecord, SendState, StoredAnswer,
};
use wa_domain::ports::*;
use wa_domain::status::DeliveryStatus;
use wa_domain::templates::TemplateStore;
use wa_domain::webhook::split;
use wa_dynamodb::{DynamoStore, MetricsSnapshot};
use wa_tests::fresh_table;

const PNID: &str = "106540352242922";
const BSUID: &str = "BR.4242";
const PHONE: &str = "5511999990000";
const T0: i64 = 1_795_420_800;

fn customer() -> CustomerKey {
    CustomerKey::Bsuid(BSUID.into())
}

/// A pending session send made at `T0` plus `n` ms (so ids differ).
fn send(n: u8) -> SendRecord {
    let created_at_ms = T0 * 1000 + i64::from(n);
    SendRecord {
        customer: Some(customer()),
        who: CustomerRef::new(Some(BSUID), Some(PHONE)),
        message_type: "text".into(),
        body: json!({"messaging_product": "whatsapp", "to": PHONE, "type": "text", "text": {"body": format!("hola {n}")}}),
        ..SendRecord::pending(
            SendId::new(created_at_ms, [n; 10]),
            PNID,
            SendKind::Session,
            created_at_ms,
            T0 + 90 * 86_400,
        )
    }
}

/// Send `n`, accepted by Meta under `wamid` at its first attempt.
fn accepted(n: u8, wamid: &str) -> SendRecord {
    SendRecord {
        state: SendState::Accepted {
            at_ms: T0 * 1000,
            by_webhook: false,
        },
        wamid: Some(wamid.into()),
        attempts: 1,
        ..send(n)
    }
}

fn with_key(mut r: SendRecord, key_hash: &str, expires_at: i64) -> SendRecord {
    r.idempotency = Some(Idempotency {
        key_hash: key_hash.into(),
        body_sha256: "ab".repeat(32),
        expires_at,
    });
    r.answer = Some(StoredAnswer {
        http_status: 202,
        body: format!(r#"{{"id":"{}"}}"#, r.id),
    });
    r
}

/// `r` as the store keeps it after a create.
fn stored(r: &SendRecord) -> SendRecord {
    SendRecord {
        version: 1,
        ..r.clone()
    }
}

fn cost(store: &DynamoStore, before: MetricsSnapshot, what: &str) -> MetricsSnapshot {
    let used = store.metrics().snapshot().since(before);
    eprintln!(
        "requests: {what}: {} read(s), {} write(s)",
        used.reads, used.writes
    );
    used
}

fn rw(reads: u64, writes: u64) -> MetricsSnapshot {
    MetricsSnapshot { reads, writes }
}

/// The raw item at `pk` / `sk`.
async fn raw(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    sk: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn s_attr<'a>(item: &'a std::collections::HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item.get(name).unwrap().as_s().unwrap()
}

fn n_attr(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name).unwrap().as_n().unwrap().parse().unwrap()
}

/// A status webhook about `wamid`, echoing `callback` (no signature: `split` only parses).
fn status_webhook(wamid: &str, status: &str, ts: i64, callback: &str, extra: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA1","time":{ts},"changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550001111","phone_number_id":"{PNID}"}},"statuses":[{{"id":"{wamid}","status":"{status}","timestamp":"{ts}","recipient_id":"{PHONE}","recipient_user_id":"{BSUID}","biz_opaque_callback_data":"{callback}"{extra}}}]}}}}]}}]}}"#
    )
}

async fn apply_webhook(store: &DynamoStore, body: &str, now: i64) {
    let events = split(body.as_bytes()).unwrap();
    assert_eq!(events.len(), 1);
    let applied = apply(store, &events[0], &InboundConfig::default(), now)
        .await
        .unwrap();
    assert_eq!(applied, Applied::Status);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_send_round_trips_with_its_statuses_fallback_and_answer() {
    let (store, client, table) = fresh_table().await;
    let mut r = with_key(send(1), "k1", T0 + 86_400);
    r.kind = SendKind::Session;
    r.fallback = Some(
        json!({"type": "template", "template": {"name": "hello", "language": {"code": "es"}}}),
    );
    r.client_callback_data = Some("order-77".into());
    r.statuses.record(DeliveryStatus::Sent, T0 + 1);
    r.statuses.record(DeliveryStatus::Delivered, T0 + 2);
    r.error = Some(SendFailure::new(131_026, "Message undeliverable"));
    r.state = SendState::Unconfirmed {
        since_ms: T0 * 1000 + 5,
        resent: true,
    };
    r.attempts = 2;
    r.broadcast_id = Some("b-1".into());

    let before = store.metrics().snapshot();
    assert_eq!(store.create_send(&r, T0).await.unwrap(), Created::New);
    assert_eq!(
        cost(&store, before, "create_send (with key)"),
        rw(0, 1),
        "one transaction"
    );
    let before = store.metrics().snapshot();
    let back = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(cost(&store, before, "get_send"), rw(1, 0));
    assert_eq!(back, stored(&r));
    assert_eq!(back.version, 1);

    // The plain attributes, for people; no index entry (each of a send's writes would pay
    // for one).
    let item = raw(&client, &table, &format!("SEND#{}", r.id), "SEND")
        .await
        .unwrap();
    assert_eq!(s_attr(&item, "state"), "unconfirmed");
    assert_eq!(s_attr(&item, "pnid"), PNID);
    assert_eq!(n_attr(&item, "version"), 1);
    assert_eq!(n_attr(&item, "ttl"), r.expires_at);
    assert!(!item.contains_key("gsi1pk") && !item.contains_key("gsi1sk"));
    let key_item = raw(&client, &table, "IDEM#k1", "IDEM").await.unwrap();
    assert_eq!(s_attr(&key_item, "send_id"), r.id.as_str());
    assert_eq!(n_attr(&key_item, "expires_at"), T0 + 86_400);
    assert_eq!(n_attr(&key_item, "ttl"), T0 + 86_400);

    // Without a key: one conditional put, and the default fields survive too.
    let plain = send(2);
    let before = store.metrics().snapshot();
    assert_eq!(store.create_send(&plain, T0).await.unwrap(), Created::New);
    assert_eq!(cost(&store, before, "create_send (no key)"), rw(0, 1));
    assert_eq!(
        store.get_send(&plain.id).await.unwrap(),
        Some(stored(&plain))
    );
    assert_eq!(store.get_send(&send(3).id).await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_repeated_create_is_new_and_another_send_with_its_id_is_refused() {
    let (store, _, _) = fresh_table().await;
    let r = send(1);
    assert_eq!(store.create_send(&r, T0).await.unwrap(), Created::New);
    // The same create again (an SDK retry after a lost answer) is not a collision.
    assert_eq!(store.create_send(&r, T0).await.unwrap(), Created::New);
    // Another send with the same id is.
    let mut other = send(1);
    other.body = json!({"text": {"body": "something else"}});
    assert!(matches!(
        store.create_send(&other, T0).await,
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(store.get_send(&r.id).await.unwrap(), Some(stored(&r)));
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_save_needs_the_version_it_read() {
    let (store, _, _) = fresh_table().await;
    let r = send(1);
    store.create_send(&r, T0).await.unwrap();

    let mut worker = store.get_send(&r.id).await.unwrap().unwrap();
    let mut late = worker.clone();
    worker.claim(T0 * 1000 + 30_000, false);
    let before = store.metrics().snapshot();
    assert!(store.save_send(&mut worker).await.unwrap());
    assert_eq!(cost(&store, before, "save_send"), rw(0, 1));
    assert_eq!(worker.version, 2);
    let now = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(now, worker);
    assert_eq!(now.attempts, 1);
    assert!(matches!(now.state, SendState::Attempting { .. }));

    // A copy read before that save is refused, keeps its version, and writes nothing.
    late.state = SendState::Failed;
    assert!(!store.save_send(&mut late).await.unwrap());
    assert_eq!(late.version, 1);
    assert_eq!(store.get_send(&r.id).await.unwrap(), Some(worker.clone()));

    // Saving again from the new version works, and so on.
    worker.state = SendState::Accepted {
        at_ms: T0 * 1000 + 40_000,
        by_webhook: false,
    };
    assert!(store.save_send(&mut worker).await.unwrap());
    assert_eq!(worker.version, 3);
    assert_eq!(store.get_send(&r.id).await.unwrap(), Some(worker));

    // A send that was never created cannot be saved.
    let mut ghost = stored(&send(9));
    assert!(!store.save_send(&mut ghost).await.unwrap());
    assert_eq!(store.get_send(&ghost.id).await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_reused_idempotency_key_returns_the_first_send_and_stores_nothing() {
    let (store, client, table) = fresh_table().await;
    let first = with_key(send(1), "k1", T0 + 86_400);
    assert_eq!(store.create_send(&first, T0).await.unwrap(), Created::New);

    let second = with_key(send(2), "k1", T0 + 100 + 86_400);
    let before = store.metrics().snapshot();
    assert_eq!(
        store.create_send(&second, T0 + 100).await.unwrap(),
        Created::Exists(Box::new(stored(&first)))
    );
    let used = cost(&store, before, "create_send (key held)");
    assert_eq!(used.writes, 1, "the refused transaction");
    assert!(used.reads <= 2, "the holder's send (and its key at most)");
    assert_eq!(store.get_send(&second.id).await.unwrap(), None);
    let key_item = raw(&client, &table, "IDEM#k1", "IDEM").await.unwrap();
    assert_eq!(s_attr(&key_item, "send_id"), first.id.as_str());
    assert_eq!(n_attr(&key_item, "expires_at"), T0 + 86_400);

    // Another key is independent.
    let third = with_key(send(3), "k2", T0 + 86_400);
    assert_eq!(store.create_send(&third, T0).await.unwrap(), Created::New);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn an_expired_idempotency_key_is_taken_over() {
    let (store, client, table) = fresh_table().await;
    let old = with_key(send(1), "k1", T0 + 60);
    store.create_send(&old, T0).await.unwrap();

    // Exactly at expiry the key is free (held while `expires_at > now`).
    let new = with_key(send(2), "k1", T0 + 60 + 86_400);
    assert_eq!(
        store.create_send(&new, T0 + 60).await.unwrap(),
        Created::New
    );
    let key_item = raw(&client, &table, "IDEM#k1", "IDEM").await.unwrap();
    assert_eq!(s_attr(&key_item, "send_id"), new.id.as_str());
    assert_eq!(
        store.find_idempotent("k1", T0 + 61).await.unwrap(),
        Some(stored(&new))
    );
    // The old send itself is untouched.
    assert_eq!(store.get_send(&old.id).await.unwrap(), Some(stored(&old)));
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_live_key_whose_send_is_gone_is_taken_over() {
    let (store, client, table) = fresh_table().await;
    let gone = with_key(send(1), "k1", T0 + 86_400);
    store.create_send(&gone, T0).await.unwrap();
    client
        .delete_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(format!("SEND#{}", gone.id)))
        .key("sk", AttributeValue::S("SEND".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(store.find_idempotent("k1", T0 + 1).await.unwrap(), None);

    let new = with_key(send(2), "k1", T0 + 10 + 86_400);
    assert_eq!(
        store.create_send(&new, T0 + 10).await.unwrap(),
        Created::New
    );
    assert_eq!(
        store.find_idempotent("k1", T0 + 11).await.unwrap(),
        Some(stored(&new))
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn find_idempotent_honours_expiry() {
    let (store, _, _) = fresh_table().await;
    let r = with_key(send(1), "k1", T0 + 100);
    store.create_send(&r, T0).await.unwrap();

    let before = store.metrics().snapshot();
    assert_eq!(
        store.find_idempotent("k1", T0 + 99).await.unwrap(),
        Some(stored(&r))
    );
    assert_eq!(cost(&store, before, "find_idempotent (live)"), rw(2, 0));
    assert_eq!(store.find_idempotent("k1", T0 + 100).await.unwrap(), None);
    assert_eq!(store.find_idempotent("k1", T0 + 5_000).await.unwrap(), None);
    assert_eq!(store.find_idempotent("nope", T0).await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn consents_are_every_scope_of_that_customer_only() {
    let (store, _, _) = fresh_table().await;
    let consent = |pnid: &str, customer: CustomerKey, scope: &str, consent, at| ConsentRecord {
        phone_number_id: pnid.into(),
        customer,
        scope: scope.into(),
        consent,
        source: ConsentSource::Keyword,
        at,
        detail: None,
    };
    let marketing = ConsentRecord {
        source: ConsentSource::UserPreferences,
        ..consent(PNID, customer(), "marketing", Consent::OptedOut, T0)
    };
    let all = consent(PNID, customer(), "all", Consent::OptedIn, T0 + 5);
    let others = [
        consent(
            PNID,
            CustomerKey::Bsuid("BR.1".into()),
            "all",
            Consent::OptedOut,
            T0,
        ),
        consent(
            PNID,
            CustomerKey::Phone(PHONE.into()),
            "all",
            Consent::OptedOut,
            T0,
        ),
        consent("999", customer(), "all", Consent::OptedOut, T0),
    ];
    for c in others.iter().chain([&marketing, &all]) {
        store.record_consent(c).await.unwrap();
    }
    // The window item shares the partition: it must not be read as a consent.
    store
        .advance_window(
            PNID,
            &customer(),
            &CustomerRef::new(Some(BSUID), Some(PHONE)).unwrap(),
            &wa_domain::window::WindowUpdate {
                inbound_at: T0,
                customer_service_until: T0 + 86_400,
                free_entry_point_until: None,
            },
            None,
        )
        .await
        .unwrap();

    let before = store.metrics().snapshot();
    let mut got = store.consents(PNID, &customer()).await.unwrap();
    assert_eq!(cost(&store, before, "consents"), rw(1, 0));
    got.sort_by(|a, b| a.scope.cmp(&b.scope));
    assert_eq!(got, vec![all, marketing]);
    assert_eq!(
        store
            .consents(PNID, &CustomerKey::Bsuid("BR.nobody".into()))
            .await
            .unwrap(),
        vec![]
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_status_webhook_confirms_an_unconfirmed_send_and_enters_history() {
    let (store, _, _) = fresh_table().await;
    let mut r = send(1);
    r.state = SendState::Unconfirmed {
        since_ms: T0 * 1000,
        resent: false,
    };
    r.attempts = 1;
    store.create_send(&r, T0).await.unwrap();

    let body = status_webhook("wamid.OUT1", "sent", T0 + 3, r.id.as_str(), "");
    apply_webhook(&store, &body, T0 + 4).await;

    let got = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(
        got.state,
        SendState::Accepted {
            at_ms: (T0 + 4) * 1000,
            by_webhook: true
        }
    );
    assert_eq!(got.wamid.as_deref(), Some("wamid.OUT1"));
    assert_eq!(got.statuses.at(DeliveryStatus::Sent), Some(T0 + 3));
    assert_eq!(got.version, 2);

    let page = store.history(PNID, &customer(), 10, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let m = &page.items[0].message;
    assert_eq!(m.direction, Direction::Outbound);
    assert_eq!(m.id, r.id.as_str());
    assert_eq!(m.wamid, "wamid.OUT1");
    assert_eq!(
        page.items[0].delivery.as_ref().and_then(|d| d.current()),
        Some(DeliveryStatus::Sent)
    );

    // The same webhook again changes nothing, and a later status only adds to it.
    apply_webhook(&store, &body, T0 + 5).await;
    assert_eq!(store.get_send(&r.id).await.unwrap(), Some(got));
    apply_webhook(
        &store,
        &status_webhook("wamid.OUT1", "delivered", T0 + 6, r.id.as_str(), ""),
        T0 + 7,
    )
    .await;
    let later = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(later.statuses.current(), Some(DeliveryStatus::Delivered));
    // The send is accepted now: the receipt went to the send only (one write, which moves
    // its version on), and the history shows it from there.
    assert_eq!(later.version, 3);
    let page = store.history(PNID, &customer(), 10, None).await.unwrap();
    assert_eq!(page.items.len(), 1, "the message is in the history once");
    assert_eq!(
        page.items[0].delivery.as_ref().and_then(|d| d.current()),
        Some(DeliveryStatus::Delivered)
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_receipt_for_a_send_in_the_history_is_one_write_and_read_back_with_the_send() {
    let (store, client, table) = fresh_table().await;
    let r = accepted(4, "wamid.OUT4");
    store.create_send(&r, T0).await.unwrap();
    // What the worker does once Meta accepted the send.
    let m =
        wa_domain::outbound::deliver::history_record(&r, "wamid.OUT4", T0 * 1000, 86_400).unwrap();
    store.record_message(&m).await.unwrap();
    let id = r.id.as_str().to_owned();
    // The number is known (its first webhook writes that once).
    TemplateStore::remember_number(&store, PNID, "WABA1")
        .await
        .unwrap();

    let pricing = r#","pricing":{"billable":true,"pricing_model":"PMP","category":"utility","type":"regular"}"#;
    for (i, status) in ["sent", "delivered", "read"].into_iter().enumerate() {
        let before = store.metrics().snapshot();
        let ts = T0 + 2 + i as i64;
        apply_webhook(
            &store,
            &status_webhook("wamid.OUT4", status, ts, &id, pricing),
            ts,
        )
        .await;
        // The send's status only: one write, no read.
        assert_eq!(cost(&store, before, status), rw(0, 1), "{status}");
    }
    // Not on the history record, which is indexed: each write there would also rewrite
    // its index entry.
    let record = raw(&client, &table, "MSG#wamid.OUT4", "MSG").await.unwrap();
    for attr in ["st_sent", "st_delivered", "st_read"] {
        assert!(
            !record.contains_key(attr),
            "{attr} written to the history record"
        );
    }
    let item = raw(&client, &table, &format!("SEND#{id}"), "SEND")
        .await
        .unwrap();
    assert_eq!(n_attr(&item, "st_read"), T0 + 4);
    let got = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(
        got.version, 4,
        "one write per receipt, each moving the version on"
    );
    assert_eq!(got.state, r.state);
    // Meta's pricing object is kept on the send, and a save of the send keeps it.
    let kept: serde_json::Value = serde_json::from_str(got.pricing.as_deref().unwrap()).unwrap();
    assert_eq!(kept["category"], "utility");
    let mut saved = got.clone();
    assert!(store.save_send(&mut saved).await.unwrap());
    let got = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(got.pricing, saved.pricing);
    // The conversation history shows the send's receipts, on the record of its wamid only
    // (another record of the send, say from a resend after a timeout, keeps its own).
    let other =
        wa_domain::outbound::deliver::history_record(&r, "wamid.OUT4b", T0 * 1000 - 1, 86_400)
            .unwrap();
    store.record_message(&other).await.unwrap();
    let page = store.history(PNID, &customer(), 10, None).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[0].message.wamid, "wamid.OUT4");
    let shown = page.items[0].delivery.as_ref().unwrap();
    assert_eq!(shown.history, got.statuses);
    assert_eq!(page.items[1].message.wamid, "wamid.OUT4b");
    assert_eq!(page.items[1].delivery, None);
    assert_eq!(
        got.statuses.entries(),
        vec![
            (DeliveryStatus::Sent, T0 + 2),
            (DeliveryStatus::Delivered, T0 + 3),
            (DeliveryStatus::Read, T0 + 4)
        ]
    );
    // The broadcast planner's batch read sees the same statuses.
    let other = send(5);
    store.create_send(&other, T0).await.unwrap();
    let both = BroadcastStore::get_sends(&store, &[r.id.clone(), other.id.clone()])
        .await
        .unwrap();
    assert_eq!(both[0].as_ref().map(|s| &s.statuses), Some(&got.statuses));
    assert_eq!(both[1].as_ref().map(|s| s.statuses.current()), Some(None));

    // A replay of a known receipt changes nothing.
    apply_webhook(
        &store,
        &status_webhook("wamid.OUT4", "read", T0 + 4, &id, ""),
        T0 + 9,
    )
    .await;
    let again = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(again.statuses, got.statuses);
    assert_eq!(again.state, r.state);

    // `failed` still goes to the send: it changes its state.
    apply_webhook(
        &store,
        &status_webhook("wamid.OUT4", "failed", T0 + 10, &id, ""),
        T0 + 11,
    )
    .await;
    let failed = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(failed.state, SendState::Failed);
    assert_eq!(failed.statuses.at(DeliveryStatus::Read), Some(T0 + 4));
    assert_eq!(failed.statuses.current(), Some(DeliveryStatus::Failed));
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_failed_status_fails_an_accepted_send_with_its_code() {
    let (store, _, _) = fresh_table().await;
    let r = accepted(1, "wamid.OUT2");
    store.create_send(&r, T0).await.unwrap();

    let errors = r#","errors":[{"code":131049,"title":"This message was not delivered to maintain healthy ecosystem engagement.","message":"This message was not delivered to maintain healthy ecosystem engagement.","error_data":{"details":"In order to maintain a healthy ecosystem engagement, the message failed to be delivered."}}]"#;
    apply_webhook(
        &store,
        &status_webhook("wamid.OUT2", "failed", T0 + 3, r.id.as_str(), errors),
        T0 + 4,
    )
    .await;

    let got = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(got.state, SendState::Failed);
    assert_eq!(got.error.as_ref().map(|e| e.code), Some(131_049));
    assert_eq!(got.statuses.current(), Some(DeliveryStatus::Failed));
    assert_eq!(got.wamid.as_deref(), Some("wamid.OUT2"));
    assert_eq!(got.version, 2);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_later_status_of_an_accepted_send_costs_no_read_and_keeps_the_version_order() {
    let (store, client, table) = fresh_table().await;
    let r = accepted(3, "wamid.OUT3");
    store.create_send(&r, T0).await.unwrap();
    let id = r.id.as_str().to_owned();
    apply_webhook(
        &store,
        &status_webhook("wamid.OUT3", "sent", T0 + 2, &id, ""),
        T0 + 3,
    )
    .await;
    // Read by someone (a worker, an operator's redrive) before the next status comes.
    let mut stale = store.get_send(&r.id).await.unwrap().unwrap();

    let before = store.metrics().snapshot();
    let delivered = status_webhook("wamid.OUT3", "delivered", T0 + 5, &id, "");
    apply_webhook(&store, &delivered, T0 + 6).await;
    // The send's status: one write, and the send is not read.
    assert_eq!(
        cost(&store, before, "a delivered status of an accepted send"),
        rw(0, 1)
    );
    let got = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(got.statuses.at(DeliveryStatus::Sent), Some(T0 + 2));
    assert_eq!(got.statuses.current(), Some(DeliveryStatus::Delivered));
    assert_eq!(got.statuses.at(DeliveryStatus::Delivered), Some(T0 + 5));
    assert_eq!(got.state, r.state);
    assert_eq!(got.version, stale.version + 1);
    let item = raw(&client, &table, &format!("SEND#{id}"), "SEND")
        .await
        .unwrap();
    assert_eq!(n_attr(&item, "st_delivered"), T0 + 5);

    // A save over the read from before the status is refused, so it cannot drop it.
    stale.attempts = 9;
    assert!(!store.save_send(&mut stale).await.unwrap());
    // A save over a fresh read folds the status into the document.
    let mut fresh = got.clone();
    fresh.attempts = 2;
    assert!(store.save_send(&mut fresh).await.unwrap());
    let saved = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(saved.statuses, got.statuses);

    // A replay changes nothing; an earlier time of a known status still wins (read path).
    apply_webhook(&store, &delivered, T0 + 7).await;
    assert_eq!(store.get_send(&r.id).await.unwrap(), Some(saved.clone()));
    apply_webhook(
        &store,
        &status_webhook("wamid.OUT3", "delivered", T0 + 4, &id, ""),
        T0 + 8,
    )
    .await;
    let earlier = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(earlier.statuses.at(DeliveryStatus::Delivered), Some(T0 + 4));

    // Another wamid under this send's id is not the cheap path's: read, applied as before
    // (the send keeps its own wamid).
    apply_webhook(
        &store,
        &status_webhook("wamid.OTHER", "read", T0 + 9, &id, ""),
        T0 + 10,
    )
    .await;
    let last = store.get_send(&r.id).await.unwrap().unwrap();
    assert_eq!(last.wamid.as_deref(), Some("wamid.OUT3"));
    assert_eq!(last.statuses.current(), Some(DeliveryStatus::Read));
}
