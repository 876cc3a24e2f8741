//! `wa-dynamodb` against moto: the store behaves as `wa_domain::testing::InMemoryStore` does.
//! Each test makes its own table. Run with moto on `$AWS_ENDPOINT_URL` (`make test`).
// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::ports::*;
use wa_domain::status::DeliveryStatus::{self, *};
use wa_domain::testing::InMemoryStore;
use wa_domain::window::{CUSTOMER_SERVICE_SECS, FREE_ENTRY_POINT_SECS, WindowUpdate};
use wa_dynamodb::{DynamoStore, MetricsSnapshot};
use wa_tests::{fresh_table, raw_partition};

const PNID: &str = "106540352242922";

fn who(user_id: Option<&str>, wa_id: Option<&str>) -> CustomerRef {
    CustomerRef::new(user_id, wa_id).unwrap()
}

fn message(customer: &CustomerKey, who: &CustomerRef, wamid: &str, ts: i64) -> MessageRecord {
    MessageRecord {
        id: wamid.to_owned(),
        wamid: wamid.to_owned(),
        phone_number_id: PNID.to_owned(),
        customer: customer.clone(),
        who: who.clone(),
        direction: Direction::Inbound,
        message_type: "text".to_owned(),
        timestamp: ts,
        raw: format!(r#"{{"id":"{wamid}","type":"text","text":{{"body":"hola {ts}"}}}}"#),
        expires_at: ts + 90 * 86_400,
    }
}

fn outbound(wamid: &str, ts: i64) -> MessageRecord {
    let c = who(Some("US.77"), Some("15550000077"));
    MessageRecord {
        direction: Direction::Outbound,
        ..message(&c.direct_key(), &c, wamid, ts)
    }
}

fn status(wamid: &str, s: DeliveryStatus, ts: i64) -> StatusRecord {
    StatusRecord {
        wamid: wamid.to_owned(),
        phone_number_id: Some(PNID.to_owned()),
        status: s,
        timestamp: ts,
        error: None,
        callback_data: None,
        recipient: Some(who(Some("US.77"), Some("15550000077"))),
        pricing: None,
        expires_at: ts + 90 * 86_400,
    }
}

/// Requests the store sent since `before`, printed for the cost report.
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

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn replayed_wamid_is_recorded_once() {
    let (store, _, _) = fresh_table().await;
    let c = who(Some("US.1"), Some("15551230001"));
    let m = message(&c.direct_key(), &c, "wamid.ONE", 1_700_000_000);

    let before = store.metrics().snapshot();
    assert_eq!(store.record_message(&m).await.unwrap(), Recorded::New);
    assert_eq!(cost(&store, before, "record_message (new)"), rw(0, 1));

    let before = store.metrics().snapshot();
    assert_eq!(store.record_message(&m).await.unwrap(), Recorded::Duplicate);
    assert_eq!(cost(&store, before, "record_message (replay)"), rw(0, 1));

    // Meta redelivers for up to 7 days: the same wamid later, with other fields, is still a
    // duplicate and changes nothing.
    let days_later = MessageRecord {
        expires_at: m.expires_at + 5 * 86_400,
        raw: "{}".into(),
        ..m.clone()
    };
    assert_eq!(
        store.record_message(&days_later).await.unwrap(),
        Recorded::Duplicate
    );

    let page = store
        .history(PNID, &c.direct_key(), 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].message, m);
    assert_eq!(page.items[0].delivery, None);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn statuses_out_of_order_end_monotonic() {
    let (store, _, _) = fresh_table().await;
    let fake = InMemoryStore::default();

    // read, then sent, then delivered → read, with each first timestamp.
    let a = outbound("wamid.A", 1_000);
    store.record_message(&a).await.unwrap();
    let before = store.metrics().snapshot();
    store
        .apply_status(&status("wamid.A", Read, 20))
        .await
        .unwrap();
    assert_eq!(cost(&store, before, "apply_status (new status)"), rw(0, 1));
    for s in [status("wamid.A", Sent, 5), status("wamid.A", Delivered, 10)] {
        store.apply_status(&s).await.unwrap();
    }
    let d = store.delivery("wamid.A").await.unwrap().unwrap();
    assert_eq!(d.current(), Some(Read));
    assert_eq!(
        d.history.entries(),
        vec![(Sent, 5), (Delivered, 10), (Read, 20)]
    );

    // failed, then read → failed; the first error is kept.
    let b = outbound("wamid.B", 1_000);
    store.record_message(&b).await.unwrap();
    let failed = StatusRecord {
        error: Some((131026, "Message undeliverable".into())),
        callback_data: Some("order-17".into()),
        pricing: Some(r#"{"billable":false}"#.into()),
        ..status("wamid.B", Failed, 10)
    };
    let read = StatusRecord {
        error: Some((1, "later error".into())),
        callback_data: Some("other".into()),
        ..status("wamid.B", Read, 12)
    };
    store.apply_status(&failed).await.unwrap();
    store.apply_status(&read).await.unwrap();
    let d = store.delivery("wamid.B").await.unwrap().unwrap();
    assert_eq!(d.current(), Some(Failed));
    assert_eq!(d.error, Some((131026, "Message undeliverable".into())));
    assert_eq!(d.callback_data.as_deref(), Some("order-17"));

    // A repeated status keeps its first (earliest) timestamp, whatever the arrival order.
    let c = outbound("wamid.C", 1_000);
    store.record_message(&c).await.unwrap();
    let mut costs = Vec::new();
    for ts in [9, 7, 8, 7] {
        let before = store.metrics().snapshot();
        store
            .apply_status(&status("wamid.C", Sent, ts))
            .await
            .unwrap();
        costs.push(cost(
            &store,
            before,
            &format!("apply_status (sent at {ts})"),
        ));
    }
    // 9 new, 7 earlier, 8 later (a failed condition, then the first-wins rest), 7 again.
    assert_eq!(costs, vec![rw(0, 1), rw(0, 1), rw(0, 2), rw(0, 1)]);
    let d = store.delivery("wamid.C").await.unwrap().unwrap();
    assert_eq!(d.history.at(Sent), Some(7));

    // Exactly what the in-memory fake ends with, and visible in history.
    for m in [&a, &b, &c] {
        fake.record_message(m).await.unwrap();
    }
    for s in [
        status("wamid.A", Read, 20),
        status("wamid.A", Sent, 5),
        status("wamid.A", Delivered, 10),
        failed,
        read,
        status("wamid.C", Sent, 9),
        status("wamid.C", Sent, 7),
        status("wamid.C", Sent, 8),
        status("wamid.C", Sent, 7),
    ] {
        fake.apply_status(&s).await.unwrap();
    }
    for wamid in ["wamid.A", "wamid.B", "wamid.C"] {
        assert_eq!(
            store.delivery(wamid).await.unwrap(),
            fake.delivery(wamid),
            "{wamid}"
        );
    }
    let page = store.history(PNID, &a.customer, 10, None).await.unwrap();
    let fake_page = fake.history(PNID, &a.customer, 10, None).await.unwrap();
    assert_eq!(page.items, fake_page.items);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn status_before_its_message_is_kept_and_stays_out_of_history() {
    let (store, _, _) = fresh_table().await;
    let m = outbound("wamid.EARLY", 1_000);
    store
        .apply_status(&status("wamid.EARLY", Delivered, 1_005))
        .await
        .unwrap();
    let history = store.history(PNID, &m.customer, 10, None).await.unwrap();
    assert!(history.items.is_empty(), "a status alone is no message");

    assert_eq!(store.record_message(&m).await.unwrap(), Recorded::New);
    assert_eq!(store.record_message(&m).await.unwrap(), Recorded::Duplicate);
    let history = store.history(PNID, &m.customer, 10, None).await.unwrap();
    assert_eq!(history.items.len(), 1);
    assert_eq!(history.items[0].message, m);
    let delivery = history.items[0].delivery.as_ref().unwrap();
    assert_eq!(delivery.current(), Some(Delivered));
    assert_eq!(delivery.history.at(Delivered), Some(1_005));
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn window_never_moves_back() {
    let (store, _, _) = fresh_table().await;
    let fake = InMemoryStore::default();
    let newer_who = who(Some("US.5"), Some("15550000005"));
    let older_who = who(Some("US.5"), Some("15559999999"));
    let key = newer_who.direct_key();
    let newer = WindowUpdate::for_message(10_000, false);
    let older = WindowUpdate::for_message(5_000, false);

    let before = store.metrics().snapshot();
    store
        .advance_window(PNID, &key, &newer_who, &newer, Some("Lucía"))
        .await
        .unwrap();
    assert_eq!(cost(&store, before, "advance_window"), rw(0, 1));
    let before = store.metrics().snapshot();
    store
        .advance_window(PNID, &key, &older_who, &older, Some("Old name"))
        .await
        .unwrap();
    assert_eq!(cost(&store, before, "advance_window (older)"), rw(0, 1));
    for (w, u, p) in [
        (&newer_who, &newer, "Lucía"),
        (&older_who, &older, "Old name"),
    ] {
        fake.advance_window(PNID, &key, w, u, Some(p))
            .await
            .unwrap();
    }

    let (window, ids) = store.window(PNID, &key).await.unwrap().unwrap();
    assert_eq!(window.last_inbound_at, Some(10_000));
    assert_eq!(
        window.customer_service_until,
        Some(10_000 + CUSTOMER_SERVICE_SECS)
    );
    assert_eq!(window.free_entry_point_until, None);
    assert_eq!(ids, newer_who, "the older message's ids do not win");
    assert_eq!(Some((window, ids)), fake.window(PNID, &key).await.unwrap());

    // A replay of the newest message changes nothing either.
    store
        .advance_window(PNID, &key, &newer_who, &newer, Some("Lucía"))
        .await
        .unwrap();
    assert_eq!(store.window(PNID, &key).await.unwrap().unwrap().0, window);
    assert_eq!(
        store
            .window(PNID, &CustomerKey::Bsuid("US.none".into()))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn free_entry_point_window_is_kept_separately() {
    let (store, _, _) = fresh_table().await;
    let fake = InMemoryStore::default();
    let c = who(Some("US.6"), None);
    let key = c.direct_key();
    let steps = [
        (1_000, true),  // from an ad: 24 h and 72 h
        (2_000, false), // newer, plain: 24 h moves, 72 h stays
        (500, true),    // older referral: nothing moves
        (3_000, true),  // newer referral: both move
    ];
    for (i, (at, referral)) in steps.into_iter().enumerate() {
        let u = WindowUpdate::for_message(at, referral);
        let before = store.metrics().snapshot();
        store
            .advance_window(PNID, &key, &c, &u, None)
            .await
            .unwrap();
        let used = cost(
            &store,
            before,
            &format!("advance_window (referral: {referral})"),
        );
        assert_eq!(used.writes, if referral { 2 } else { 1 });
        fake.advance_window(PNID, &key, &c, &u, None).await.unwrap();
        let got = store.window(PNID, &key).await.unwrap().unwrap();
        assert_eq!(
            Some(got.clone()),
            fake.window(PNID, &key).await.unwrap(),
            "step {i}"
        );
        if i == 2 {
            assert_eq!(
                got.0.customer_service_until,
                Some(2_000 + CUSTOMER_SERVICE_SECS)
            );
            assert_eq!(
                got.0.free_entry_point_until,
                Some(1_000 + FREE_ENTRY_POINT_SECS)
            );
        }
    }
    let (w, _) = store.window(PNID, &key).await.unwrap().unwrap();
    assert_eq!(
        w.free_entry_point_until,
        Some(3_000 + FREE_ENTRY_POINT_SECS)
    );
    assert_eq!(w.last_inbound_at, Some(3_000));
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn bsuid_and_phone_resolve_to_one_customer() {
    let (store, _, _) = fresh_table().await;
    let both = who(Some("US.13491208655302741918"), Some("16505551234"));
    let bsuid = CustomerKey::Bsuid("US.13491208655302741918".into());

    let before = store.metrics().snapshot();
    assert_eq!(store.resolve_customer(PNID, &both).await.unwrap(), bsuid);
    // Read the alias, put it, read the phone's consents and window (none here), link the
    // phone's history, mark it.
    assert_eq!(
        cost(&store, before, "resolve_customer (new alias)"),
        rw(3, 3)
    );
    let before = store.metrics().snapshot();
    assert_eq!(store.resolve_customer(PNID, &both).await.unwrap(), bsuid);
    assert_eq!(
        cost(&store, before, "resolve_customer (known alias)"),
        rw(1, 0)
    );

    let phone_only = who(None, Some("+1 650-555-1234"));
    let before = store.metrics().snapshot();
    assert_eq!(
        store.resolve_customer(PNID, &phone_only).await.unwrap(),
        bsuid
    );
    assert_eq!(
        cost(&store, before, "resolve_customer (phone only)"),
        rw(1, 0)
    );

    let before = store.metrics().snapshot();
    assert_eq!(
        store
            .lookup_customer(PNID, &CustomerKey::Phone("16505551234".into()))
            .await
            .unwrap(),
        bsuid
    );
    assert_eq!(cost(&store, before, "lookup_customer (phone)"), rw(1, 0));
    let before = store.metrics().snapshot();
    assert_eq!(store.lookup_customer(PNID, &bsuid).await.unwrap(), bsuid);
    assert_eq!(cost(&store, before, "lookup_customer (bsuid)"), rw(0, 0));

    // The first alias is kept; aliases are per business number; unknown phones stay phones.
    let other = who(Some("US.999"), Some("16505551234"));
    assert_eq!(
        store.resolve_customer(PNID, &other).await.unwrap(),
        CustomerKey::Bsuid("US.999".into())
    );
    assert_eq!(
        store.resolve_customer(PNID, &phone_only).await.unwrap(),
        bsuid
    );
    assert_eq!(
        store.resolve_customer("999", &phone_only).await.unwrap(),
        CustomerKey::Phone("16505551234".into())
    );
    let unknown = CustomerKey::Phone("4915112345678".into());
    assert_eq!(
        store.lookup_customer(PNID, &unknown).await.unwrap(),
        unknown
    );
    assert!(matches!(
        store.resolve_customer(PNID, &CustomerRef::default()).await,
        Err(StoreError::Corrupt(_))
    ));

    // The same sequence on the fake gives the same keys.
    let fake = InMemoryStore::default();
    fake.resolve_customer(PNID, &both).await.unwrap();
    fake.resolve_customer(PNID, &other).await.unwrap();
    assert_eq!(
        fake.resolve_customer(PNID, &phone_only).await.unwrap(),
        bsuid
    );
}

/// What a [`DynamoStore`] built on a [`Spy`]'s client asked for, and what it is told to fail.
#[derive(Debug, Default)]
struct SpyState {
    /// `ConsistentRead` of each GetItem of a phone alias, in order.
    alias_reads: Vec<bool>,
    /// Fail every Query (before it is sent) while set.
    fail_queries: bool,
    /// Fail every UpdateItem (before it is sent) while set.
    fail_updates: bool,
}

/// An SDK interceptor that watches the store's requests before they are sent.
#[derive(Debug, Default, Clone)]
struct Spy(std::sync::Arc<std::sync::Mutex<SpyState>>);

impl aws_sdk_dynamodb::config::Intercept for Spy {
    fn name(&self) -> &'static str {
        "Spy"
    }

    fn read_before_execution(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<
            '_,
        >,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_sdk_dynamodb::operation::{
            get_item::GetItemInput, query::QueryInput, update_item::UpdateItemInput,
        };
        let mut state = self.0.lock().unwrap();
        let input = context.input();
        if let Some(get) = input.downcast_ref::<GetItemInput>() {
            let pk = get
                .key()
                .and_then(|k| k.get("pk"))
                .and_then(|v| v.as_s().ok());
            if pk.is_some_and(|pk| pk.starts_with("ALIAS#")) {
                state.alias_reads.push(get.consistent_read() == Some(true));
            }
        }
        if state.fail_queries && input.downcast_ref::<QueryInput>().is_some() {
            return Err("the spy fails this Query".into());
        }
        if state.fail_updates && input.downcast_ref::<UpdateItemInput>().is_some() {
            return Err("the spy fails this UpdateItem".into());
        }
        Ok(())
    }
}

/// A second store on `table` whose requests pass through a [`Spy`].
async fn spied_store(table: &str) -> (DynamoStore, Spy) {
    let spy = Spy::default();
    let conf = aws_sdk_dynamodb::config::Builder::from(&wa_tests::moto_config().await)
        .interceptor(spy.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(conf);
    (DynamoStore::new(client, table), spy)
}

/// A keyword consent record of `customer`.
fn consent_record(customer: &CustomerKey, scope: &str, consent: Consent, at: i64) -> ConsentRecord {
    ConsentRecord {
        phone_number_id: PNID.into(),
        customer: customer.clone(),
        scope: scope.into(),
        consent,
        source: ConsentSource::Keyword,
        at,
        detail: None,
    }
}

/// What the store holds for a customer looked up as `asked`: the key found, its consents
/// (sorted by scope) and its window.
async fn customer_state<S: ConversationReader + SendStore>(
    store: &S,
    asked: &CustomerKey,
) -> (
    CustomerKey,
    Vec<ConsentRecord>,
    Option<wa_domain::window::Window>,
) {
    let key = store.lookup_customer(PNID, asked).await.unwrap();
    let mut consents = store.consents(PNID, &key).await.unwrap();
    consents.sort_by(|a, b| a.scope.cmp(&b.scope));
    let window = store.window(PNID, &key).await.unwrap().map(|w| w.0);
    (key, consents, window)
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn an_opt_out_by_phone_alone_holds_once_the_phone_is_a_bsuid_alias() {
    use wa_domain::consent::{Blocked, Purpose, may_send};
    let (store, _, _) = fresh_table().await;
    let fake = InMemoryStore::default();
    let phone = CustomerKey::Phone("16505551234".into());
    let bsuid = CustomerKey::Bsuid("US.13491208655302741918".into());
    let phone_only = who(None, Some("16505551234"));
    let bsuid_only = who(Some("US.13491208655302741918"), None);
    let both = who(Some("US.13491208655302741918"), Some("16505551234"));

    // Before Meta sends the BSUID with the phone: a STOP and a marketing opt-out by phone,
    // and an ad's message under the phone; a newer marketing opt-in and message under the
    // BSUID alone (a message without a phone).
    let stop = consent_record(&phone, "all", Consent::OptedOut, 1_000);
    let phone_marketing = consent_record(&phone, "marketing", Consent::OptedOut, 1_100);
    let bsuid_opt_in = ConsentRecord {
        source: ConsentSource::Api,
        detail: Some(ConsentDetail {
            origin: "checkout".into(),
            proof: Some("form v3".into()),
        }),
        ..consent_record(&bsuid, "marketing", Consent::OptedIn, 1_200)
    };
    let before = store.metrics().snapshot();
    store.record_consent(&stop).await.unwrap();
    assert_eq!(
        cost(&store, before, "record_consent (phone, no alias)"),
        rw(1, 1),
        "a consent under a phone reads the phone's alias after writing"
    );
    store.record_consent(&phone_marketing).await.unwrap();
    store.record_consent(&bsuid_opt_in).await.unwrap();
    let phone_ad = WindowUpdate::for_message(900, true);
    let bsuid_msg = WindowUpdate::for_message(2_000, false);
    store
        .advance_window(PNID, &phone, &phone_only, &phone_ad, None)
        .await
        .unwrap();
    store
        .advance_window(PNID, &bsuid, &bsuid_only, &bsuid_msg, None)
        .await
        .unwrap();
    for c in [&stop, &phone_marketing, &bsuid_opt_in] {
        fake.record_consent(c).await.unwrap();
    }
    fake.advance_window(PNID, &phone, &phone_only, &phone_ad, None)
        .await
        .unwrap();
    fake.advance_window(PNID, &bsuid, &bsuid_only, &bsuid_msg, None)
        .await
        .unwrap();
    assert_eq!(store.lookup_customer(PNID, &phone).await.unwrap(), phone);

    let before = store.metrics().snapshot();
    assert_eq!(store.resolve_customer(PNID, &both).await.unwrap(), bsuid);
    // Alias read and put; the phone's consents and window read; two consents and the
    // window's two attributes copied (the older marketing opt-out's condition fails); the
    // phone's history linked; marked.
    assert_eq!(
        cost(&store, before, "resolve_customer (new alias, carried over)"),
        rw(3, 7)
    );
    fake.resolve_customer(PNID, &both).await.unwrap();

    let stop_for_bsuid = ConsentRecord {
        customer: bsuid.clone(),
        ..stop.clone()
    };
    for asked in [&phone, &bsuid] {
        let (key, consents, window) = customer_state(&store, asked).await;
        assert_eq!(key, bsuid, "asked by {asked:?}");
        assert_eq!(
            consents,
            vec![stop_for_bsuid.clone(), bsuid_opt_in.clone()],
            "asked by {asked:?}: the STOP came along; the newer opt-in was not overwritten"
        );
        assert_eq!(
            may_send(&consents, Purpose::Marketing, false),
            Err(Blocked::OptedOut("all"))
        );
        assert_eq!(
            window,
            Some(wa_domain::window::Window {
                last_inbound_at: Some(2_000),
                customer_service_until: Some(2_000 + CUSTOMER_SERVICE_SECS),
                free_entry_point_until: Some(900 + FREE_ENTRY_POINT_SECS),
            }),
            "asked by {asked:?}: the ad's window came along; the newer one did not move back"
        );
        assert_eq!(
            (key, consents, window),
            customer_state(&fake, asked).await,
            "the fake agrees"
        );
    }
    // The phone's own records stay (a reader with a stale alias still sees the STOP).
    assert_eq!(
        store.consent(PNID, &phone, "all").await.unwrap(),
        Some(stop.clone())
    );

    // Known and carried over: one read, as before.
    let before = store.metrics().snapshot();
    assert_eq!(store.resolve_customer(PNID, &both).await.unwrap(), bsuid);
    assert_eq!(
        cost(&store, before, "resolve_customer (known alias)"),
        rw(1, 0)
    );

    // A writer that resolved the phone before the alias existed (send-api's PUT by phone,
    // a 131050 for an old send) writes under the phone after the copy: the BSUID gets it.
    let late = consent_record(&phone, "marketing", Consent::OptedOut, 1_300);
    store.record_consent(&late).await.unwrap();
    fake.record_consent(&late).await.unwrap();
    let expected = ConsentRecord {
        customer: bsuid.clone(),
        ..late
    };
    assert_eq!(
        store.consent(PNID, &bsuid, "marketing").await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(fake.consent_of(PNID, &bsuid, "marketing"), Some(expected));
    // An older one does not overwrite the BSUID's newer record.
    let stale = consent_record(&phone, "all", Consent::OptedIn, 500);
    store.record_consent(&stale).await.unwrap();
    assert_eq!(
        store.consent(PNID, &bsuid, "all").await.unwrap(),
        Some(stop_for_bsuid)
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_carry_over_cut_short_is_finished_by_the_retry() {
    let (store, client, table) = fresh_table().await;
    let (spied, spy) = spied_store(&table).await;
    let phone = CustomerKey::Phone("4915112345678".into());
    let bsuid = CustomerKey::Bsuid("DE.77".into());
    let both = who(Some("DE.77"), Some("4915112345678"));
    let stop = consent_record(&phone, "all", Consent::OptedOut, 1_000);
    store.record_consent(&stop).await.unwrap();
    store
        .advance_window(
            PNID,
            &phone,
            &who(None, Some("4915112345678")),
            &WindowUpdate::for_message(900, false),
            None,
        )
        .await
        .unwrap();
    let alias_item = || async {
        raw_partition(&client, &table, &format!("ALIAS#{PNID}#4915112345678"))
            .await
            .pop()
            .unwrap()
    };

    // The alias is put, then the read of the phone's consents fails: no copy, no mark.
    spy.0.lock().unwrap().fail_queries = true;
    assert!(matches!(
        spied.resolve_customer(PNID, &both).await,
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(
        store.lookup_customer(PNID, &phone).await.unwrap(),
        bsuid,
        "the alias exists"
    );
    assert_eq!(store.consent(PNID, &bsuid, "all").await.unwrap(), None);
    assert!(!alias_item().await.contains_key("carried"));

    // A retry gets further: the consents are copied, then the window's update fails.
    spy.0.lock().unwrap().fail_queries = false;
    spy.0.lock().unwrap().fail_updates = true;
    assert!(spied.resolve_customer(PNID, &both).await.is_err());
    assert!(store.consent(PNID, &bsuid, "all").await.unwrap().is_some());
    assert_eq!(store.window(PNID, &bsuid).await.unwrap(), None);
    assert!(!alias_item().await.contains_key("carried"));

    // The next delivery finishes the copy and marks the alias.
    spy.0.lock().unwrap().fail_updates = false;
    assert_eq!(spied.resolve_customer(PNID, &both).await.unwrap(), bsuid);
    assert_eq!(
        store.consent(PNID, &bsuid, "all").await.unwrap(),
        Some(ConsentRecord {
            customer: bsuid.clone(),
            ..stop
        })
    );
    let (w, _) = store.window(PNID, &bsuid).await.unwrap().unwrap();
    assert_eq!(w.customer_service_until, Some(900 + CUSTOMER_SERVICE_SECS));
    assert_eq!(
        alias_item().await.get("carried"),
        Some(&AttributeValue::Bool(true))
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_changed_bsuid_takes_the_old_ones_consents_and_window_and_its_phone_alias() {
    let (store, _, _) = fresh_table().await;
    let fake = InMemoryStore::default();
    let old = CustomerKey::Bsuid("BR.1".into());
    let new = CustomerKey::Bsuid("BR.2".into());
    let phone = CustomerKey::Phone("5511999".into());
    let old_both = who(Some("BR.1"), Some("5511999"));
    let new_both = who(Some("BR.2"), Some("5511999"));
    // BR.1 with its phone as alias, opted out of marketing, window open; BR.2 already has a
    // newer opt-in of scope `all` that the older opt-out of BR.1's must not override.
    let opt_out = consent_record(&old, "marketing", Consent::OptedOut, 1_000);
    let old_all = consent_record(&old, "all", Consent::OptedOut, 1_050);
    let new_all = consent_record(&new, "all", Consent::OptedIn, 1_100);
    let msg = WindowUpdate::for_message(1_200, false);
    store.resolve_customer(PNID, &old_both).await.unwrap();
    fake.resolve_customer(PNID, &old_both).await.unwrap();
    for c in [&opt_out, &old_all, &new_all] {
        store.record_consent(c).await.unwrap();
        fake.record_consent(c).await.unwrap();
    }
    store
        .advance_window(PNID, &old, &old_both, &msg, None)
        .await
        .unwrap();
    fake.advance_window(PNID, &old, &old_both, &msg, None)
        .await
        .unwrap();
    // The message announcing the change comes keyed by the new BSUID with the phone: the
    // phone's first alias (BR.1) is kept by resolve_customer; change_customer moves it.
    assert_eq!(store.resolve_customer(PNID, &new_both).await.unwrap(), new);
    assert_eq!(store.lookup_customer(PNID, &phone).await.unwrap(), old);
    for _ in 0..2 {
        store
            .change_customer(PNID, &old, &new, &new_both, Some("5511999"))
            .await
            .unwrap();
        fake.change_customer(PNID, &old, &new, &new_both, Some("5511999"))
            .await
            .unwrap();
        let (key, consents, window) = customer_state(&store, &phone).await;
        assert_eq!(key, new, "the phone resolves to the new BSUID");
        let got: Vec<_> = consents
            .iter()
            .map(|c| (c.scope.as_str(), c.consent, c.at))
            .collect();
        assert_eq!(
            got,
            [
                ("all", Consent::OptedIn, 1_100),
                ("marketing", Consent::OptedOut, 1_000)
            ]
        );
        assert_eq!(window.unwrap().last_inbound_at, Some(1_200));
        assert_eq!(
            customer_state(&store, &phone).await,
            customer_state(&fake, &phone).await,
            "the adapter and the fake agree"
        );
    }
    // An alias of another customer is not taken over.
    let other = CustomerKey::Bsuid("BR.3".into());
    store
        .change_customer(PNID, &other, &new, &new_both, Some("5511999"))
        .await
        .unwrap();
    store
        .change_customer(PNID, &new, &other, &new_both, Some("5511000"))
        .await
        .unwrap();
    assert_eq!(store.lookup_customer(PNID, &phone).await.unwrap(), new);
    assert_eq!(
        store
            .lookup_customer(PNID, &CustomerKey::Phone("5511000".into()))
            .await
            .unwrap(),
        CustomerKey::Phone("5511000".into()),
        "no alias is made for a phone that had none"
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn phone_lookups_read_the_alias_strongly_consistent() {
    let (_, _, table) = fresh_table().await;
    let (store, spy) = spied_store(&table).await;
    let phone = CustomerKey::Phone("16505551234".into());
    let both = who(Some("US.1"), Some("16505551234"));
    store.resolve_customer(PNID, &both).await.unwrap();
    spy.0.lock().unwrap().alias_reads.clear();
    assert_eq!(
        store.lookup_customer(PNID, &phone).await.unwrap(),
        CustomerKey::Bsuid("US.1".into())
    );
    store
        .resolve_customer(PNID, &who(None, Some("16505551234")))
        .await
        .unwrap();
    // send-api reads the window and consents strongly consistent next: the alias must be
    // read the same way, or a phone made an alias a moment ago still resolves to itself.
    assert_eq!(spy.0.lock().unwrap().alias_reads, vec![true, true]);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn message_without_phone_is_recorded() {
    let (store, _, _) = fresh_table().await;
    let c = who(Some("US.ONLYBSUID"), None);
    let before = store.metrics().snapshot();
    let key = store.resolve_customer(PNID, &c).await.unwrap();
    assert_eq!(
        cost(&store, before, "resolve_customer (bsuid only)"),
        rw(0, 0)
    );
    assert_eq!(key, CustomerKey::Bsuid("US.ONLYBSUID".into()));

    let m = message(&key, &c, "wamid.NOPHONE", 1_700_000_100);
    assert_eq!(store.record_message(&m).await.unwrap(), Recorded::New);
    store
        .advance_window(
            PNID,
            &key,
            &c,
            &WindowUpdate::for_message(m.timestamp, false),
            None,
        )
        .await
        .unwrap();

    let page = store.history(PNID, &key, 10, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].message.who.wa_id, None);
    assert_eq!(page.items[0].message, m);
    let (_, ids) = store.window(PNID, &key).await.unwrap().unwrap();
    assert_eq!(ids, c);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn history_is_newest_first_and_paginates() {
    let (store, _, _) = fresh_table().await;
    let fake = InMemoryStore::default();
    let c = who(Some("US.H"), Some("15550000100"));
    let key = c.direct_key();
    let other = who(Some("US.OTHER"), None);
    // 23 messages, some sharing a timestamp (the wamid breaks the tie), out of order.
    for i in 0..23i64 {
        let ts = 1_700_000_000 + (i * 7919) % 23 / 2;
        let m = message(&key, &c, &format!("wamid.H{i:02}"), ts);
        store.record_message(&m).await.unwrap();
        fake.record_message(&m).await.unwrap();
    }
    for i in 0..5 {
        let m = message(
            &other.direct_key(),
            &other,
            &format!("wamid.O{i}"),
            1_800_000_000,
        );
        store.record_message(&m).await.unwrap();
    }

    let expected = fake.history(PNID, &key, 100, None).await.unwrap().items;
    assert_eq!(expected.len(), 23);

    for limit in [7usize, 23, 1] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let before = store.metrics().snapshot();
            let page = store
                .history(PNID, &key, limit, cursor.as_deref())
                .await
                .unwrap();
            if pages == 0 {
                // The customer's links to earlier keys (none), then their messages.
                assert_eq!(cost(&store, before, "history page").reads, 2);
            }
            pages += 1;
            assert!(page.items.len() <= limit);
            seen.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
            assert!(pages < 100, "pagination does not end");
        }
        assert_eq!(pages, 23usize.div_ceil(limit), "limit {limit}");
        let wamids: Vec<&str> = seen.iter().map(|h| h.message.wamid.as_str()).collect();
        let unique: HashSet<&str> = wamids.iter().copied().collect();
        assert_eq!(unique.len(), 23, "no duplicates across pages");
        assert_eq!(seen, expected, "newest first, as the fake orders them");
    }

    // Cursors are opaque but checked.
    let first = store.history(PNID, &key, 5, None).await.unwrap();
    let cursor = first.next_cursor.unwrap();
    for bad in ["not-a-cursor!", "e30", "", "eyJwayI6MX0"] {
        assert!(
            matches!(
                store.history(PNID, &key, 5, Some(bad)).await,
                Err(StoreError::Corrupt(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        store
            .history(PNID, &other.direct_key(), 5, Some(&cursor))
            .await,
        Err(StoreError::Corrupt(_))
    ));
    let empty = store
        .history(PNID, &CustomerKey::Phone("123456".into()), 5, None)
        .await
        .unwrap();
    assert_eq!(empty, HistoryPage::default());
}

/// Every page of `customer`'s history, `limit` at a time: the wamids of each page.
async fn history_pages<S: ConversationReader>(
    store: &S,
    customer: &CustomerKey,
    limit: usize,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .history(PNID, customer, limit, cursor.as_deref())
            .await
            .unwrap();
        pages.push(page.items.iter().map(|h| h.message.wamid.clone()).collect());
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return pages,
        }
        assert!(pages.len() < 100, "pagination does not end");
    }
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_customers_history_takes_in_their_earlier_keys_merged_by_time() {
    let (store, _, _) = fresh_table().await;
    let fake = InMemoryStore::default();
    let phone = CustomerKey::Phone("5511777".into());
    let (br7, br8) = (
        CustomerKey::Bsuid("BR.7".into()),
        CustomerKey::Bsuid("BR.8".into()),
    );
    let phone_only = who(None, Some("5511777"));
    let both7 = who(Some("BR.7"), Some("5511777"));
    let both8 = who(Some("BR.8"), Some("5511777"));
    let record = |m: MessageRecord| {
        let (store, fake) = (&store, &fake);
        async move {
            store.record_message(&m).await.unwrap();
            fake.record_message(&m).await.unwrap();
        }
    };
    // Before Meta sent a BSUID: two messages under the phone.
    record(message(&phone, &phone_only, "wamid.p100", 100)).await;
    record(message(&phone, &phone_only, "wamid.p200", 200)).await;
    // The first message with the BSUID makes the phone its alias.
    assert_eq!(store.resolve_customer(PNID, &both7).await.unwrap(), br7);
    assert_eq!(fake.resolve_customer(PNID, &both7).await.unwrap(), br7);
    record(message(&br7, &both7, "wamid.b300", 300)).await;
    // One that took long to arrive: older than the phone's last.
    record(message(&br7, &both7, "wamid.b150", 150)).await;
    record(message(&br7, &both7, "wamid.b400", 400)).await;
    // The BSUID changes; one more message under the new one, and a late one under the old.
    for _ in 0..2 {
        store
            .change_customer(PNID, &br7, &br8, &both8, Some("5511777"))
            .await
            .unwrap();
        fake.change_customer(PNID, &br7, &br8, &both8, Some("5511777"))
            .await
            .unwrap();
    }
    record(message(&br8, &both8, "wamid.c500", 500)).await;
    record(message(&br7, &both7, "wamid.b450", 450)).await;
    // An unrelated customer with newer messages stays out.
    let stranger = who(Some("BR.9"), None);
    record(message(
        &stranger.direct_key(),
        &stranger,
        "wamid.s999",
        999,
    ))
    .await;

    let all = ["c500", "b450", "b400", "b300", "p200", "b150", "p100"];
    let wamids =
        |names: &[&str]| -> Vec<String> { names.iter().map(|n| format!("wamid.{n}")).collect() };
    // By the new BSUID, or by the phone (its alias follows the change): everything, newest
    // first, two at a time across the three keys' partitions.
    assert_eq!(store.lookup_customer(PNID, &phone).await.unwrap(), br8);
    let pages = history_pages(&store, &br8, 2).await;
    let want: Vec<Vec<String>> = all.chunks(2).map(wamids).collect();
    assert_eq!(pages, want);
    assert_eq!(history_pages(&fake, &br8, 2).await, want, "the fake agrees");
    assert_eq!(history_pages(&store, &br8, 100).await, vec![wamids(&all)]);
    // Pages of 7 end with the last message: no cursor to an empty page.
    assert_eq!(history_pages(&store, &br8, 7).await.len(), 1);
    // The old BSUID's history is its own and the phone's.
    let old = ["b450", "b400", "b300", "p200", "b150", "p100"];
    assert_eq!(history_pages(&store, &br7, 4).await.concat(), wamids(&old));
    assert_eq!(history_pages(&fake, &br7, 4).await.concat(), wamids(&old));
    // A cursor whose last message is under an earlier key is still this customer's; it is
    // refused for another customer.
    let first = store.history(PNID, &br8, 2, None).await.unwrap();
    let cursor = first.next_cursor.unwrap(); // after b450, under BR.7
    assert_eq!(
        store
            .history(PNID, &br8, 1, Some(&cursor))
            .await
            .unwrap()
            .items[0]
            .message
            .wamid,
        "wamid.b400"
    );
    assert!(matches!(
        store
            .history(PNID, &stranger.direct_key(), 2, Some(&cursor))
            .await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn aliases_made_before_history_links_are_linked_by_the_upgrade_scan() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (store, client, table) = fresh_table().await;
    let phone = CustomerKey::Phone("5511600".into());
    let bsuid = CustomerKey::Bsuid("BR.60".into());
    // As the table stood before links: the phone's alias (carried), and history under both.
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S(format!("ALIAS#{PNID}#5511600")))
        .item("sk", AttributeValue::S("ALIAS".into()))
        .item("customer", AttributeValue::S("u:BR.60".into()))
        .item("carried", AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();
    let phone_only = who(None, Some("5511600"));
    let both = who(Some("BR.60"), Some("5511600"));
    store
        .record_message(&message(&phone, &phone_only, "wamid.a1", 100))
        .await
        .unwrap();
    store
        .record_message(&message(&bsuid, &both, "wamid.a2", 200))
        .await
        .unwrap();
    let wamids = |page: HistoryPage| -> Vec<String> {
        page.items.into_iter().map(|h| h.message.wamid).collect()
    };
    let before = store.history(PNID, &bsuid, 10, None).await.unwrap();
    assert_eq!(wamids(before), ["wamid.a2"]);
    // The scan links it, once however often it runs.
    for _ in 0..2 {
        assert_eq!(store.link_aliased_histories().await.unwrap(), (1, 1));
        let after = store.history(PNID, &bsuid, 10, None).await.unwrap();
        assert_eq!(wamids(after), ["wamid.a2", "wamid.a1"]);
    }
    // Aliases made from now on come linked; the scan sees them too and writes the same link.
    store
        .resolve_customer(PNID, &who(Some("BR.61"), Some("5511601")))
        .await
        .unwrap();
    assert_eq!(store.link_aliased_histories().await.unwrap(), (2, 2));
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_history_page_stops_where_a_partition_was_cut_by_the_1_mb_limit() {
    let (store, _, _) = fresh_table().await;
    let fake = InMemoryStore::default();
    let (old, new) = (
        CustomerKey::Bsuid("BR.40".into()),
        CustomerKey::Bsuid("BR.41".into()),
    );
    let (who_old, who_new) = (who(Some("BR.40"), None), who(Some("BR.41"), None));
    // The new key: 15 messages of 150 KB (a Query returns about six of them per 1 MB page),
    // at odd times; the old key: 20 small ones at even times, interleaved with them.
    for t in (1..30).step_by(2) {
        let m = MessageRecord {
            raw: format!(r#"{{"text":{{"body":"{}"}}}}"#, "x".repeat(150 * 1024)),
            ..message(&new, &who_new, &format!("wamid.n{t:02}"), t)
        };
        store.record_message(&m).await.unwrap();
        fake.record_message(&m).await.unwrap();
    }
    for t in (2..=40).step_by(2) {
        let m = message(&old, &who_old, &format!("wamid.o{t:02}"), t);
        store.record_message(&m).await.unwrap();
        fake.record_message(&m).await.unwrap();
    }
    store
        .change_customer(PNID, &old, &new, &who_new, None)
        .await
        .unwrap();
    fake.change_customer(PNID, &old, &new, &who_new, None)
        .await
        .unwrap();
    let pages = history_pages(&store, &new, 50).await;
    assert!(
        pages.len() > 1,
        "the big partition cuts the pages: {pages:?}"
    );
    assert!(pages.iter().all(|p| !p.is_empty()));
    let want = history_pages(&fake, &new, 50).await.concat();
    assert_eq!(want.len(), 35);
    assert_eq!(pages.concat(), want, "every message once, newest first");
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn an_api_opt_in_keeps_its_origin_and_proof_until_a_newer_record() {
    let (store, _, _) = fresh_table().await;
    let key = CustomerKey::Phone("34600111222".into());
    let opt_in = ConsentRecord {
        phone_number_id: PNID.into(),
        customer: key.clone(),
        scope: "marketing".into(),
        consent: Consent::OptedIn,
        source: ConsentSource::Api,
        at: 1_000,
        detail: Some(wa_domain::ports::ConsentDetail {
            origin: "checkout".into(),
            proof: Some("box ticked: 'Send me offers on WhatsApp' (form v3)".into()),
        }),
    };
    store.record_consent(&opt_in).await.unwrap();
    assert_eq!(
        store.consent(PNID, &key, "marketing").await.unwrap(),
        Some(opt_in.clone())
    );
    let no_proof = ConsentRecord {
        at: 1_001,
        detail: Some(wa_domain::ports::ConsentDetail {
            origin: "web_form".into(),
            proof: None,
        }),
        ..opt_in.clone()
    };
    store.record_consent(&no_proof).await.unwrap();
    assert_eq!(store.consents(PNID, &key).await.unwrap(), vec![no_proof]);
    // A STOP-like opt-out replaces it, and carries no detail of its own.
    let out = ConsentRecord {
        consent: Consent::OptedOut,
        source: ConsentSource::UserPreferences,
        at: 1_002,
        detail: None,
        ..opt_in
    };
    store.record_consent(&out).await.unwrap();
    assert_eq!(
        store.consent(PNID, &key, "marketing").await.unwrap(),
        Some(out)
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn consent_and_account_records_are_newest_wins() {
    let (store, _, _) = fresh_table().await;
    let fake = InMemoryStore::default();
    let key = CustomerKey::Bsuid("US.C".into());
    let consent = |consent, source, at| ConsentRecord {
        phone_number_id: PNID.into(),
        customer: key.clone(),
        scope: "marketing".into(),
        consent,
        source,
        at,
        detail: None,
    };
    let steps = [
        consent(Consent::OptedOut, ConsentSource::UserPreferences, 100),
        consent(Consent::OptedIn, ConsentSource::Api, 50), // older: ignored
        consent(Consent::OptedIn, ConsentSource::Keyword, 200),
        consent(Consent::OptedOut, ConsentSource::Error131050, 150), // older: ignored
    ];
    for (i, c) in steps.iter().enumerate() {
        let before = store.metrics().snapshot();
        store.record_consent(c).await.unwrap();
        assert_eq!(cost(&store, before, "record_consent"), rw(0, 1));
        fake.record_consent(c).await.unwrap();
        assert_eq!(
            store.consent(PNID, &key, "marketing").await.unwrap(),
            fake.consent_of(PNID, &key, "marketing"),
            "step {i}"
        );
    }
    assert_eq!(
        store.consent(PNID, &key, "marketing").await.unwrap(),
        Some(steps[2].clone())
    );
    assert_eq!(store.consent(PNID, &key, "all").await.unwrap(), None);

    let account = |at, attrs: &[(&str, &str)]| AccountRecord {
        waba_id: "102290129340398".into(),
        key: "template#order_update#en_US".into(),
        at,
        attributes: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let steps = [
        account(100, &[("status", "APPROVED"), ("type", "x")]),
        account(90, &[("status", "REJECTED"), ("reason", "ABUSIVE_CONTENT")]),
        account(150, &[("reason", "NONE"), ("status", "PAUSED")]),
    ];
    for (i, a) in steps.iter().enumerate() {
        store.record_account(a).await.unwrap();
        fake.record_account(a).await.unwrap();
        assert_eq!(
            store.account(&a.waba_id, &a.key).await.unwrap(),
            fake.account(&a.waba_id, &a.key),
            "step {i}"
        );
    }
    let stored = store
        .account("102290129340398", "template#order_update#en_US")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.at, 150);
    assert_eq!(
        stored.attributes,
        vec![
            ("reason".to_owned(), "NONE".to_owned()),
            ("status".to_owned(), "PAUSED".to_owned())
        ]
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn events_are_kept_once() {
    let (store, _, _) = fresh_table().await;
    let event = |key: &str, at| EventRecord {
        natural_key: key.into(),
        waba_id: Some("102290129340398".into()),
        phone_number_id: Some(PNID.into()),
        field: "messages".into(),
        kind: "error".into(),
        at,
        raw: format!(r#"{{"code":131000,"at":{at}}}"#),
        expires_at: at + 90 * 86_400,
    };
    let first = event("error:102290129340398:abc", 1_000);
    let before = store.metrics().snapshot();
    assert_eq!(store.record_event(&first).await.unwrap(), Recorded::New);
    assert_eq!(cost(&store, before, "record_event"), rw(0, 1));
    assert_eq!(
        store.record_event(&first).await.unwrap(),
        Recorded::Duplicate
    );
    let replay = EventRecord {
        raw: "{}".into(),
        ..first.clone()
    };
    assert_eq!(
        store.record_event(&replay).await.unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(
        store.event(&first.natural_key).await.unwrap(),
        Some(first.clone())
    );

    let second = event("error:102290129340398:def", 2_000);
    let unscoped = EventRecord {
        waba_id: None,
        phone_number_id: None,
        ..event("field:unknown:1", 1_500)
    };
    store.record_event(&second).await.unwrap();
    store.record_event(&unscoped).await.unwrap();
    let recent = store.recent_events("102290129340398", 10).await.unwrap();
    assert_eq!(recent, vec![second, first]);
    assert_eq!(store.recent_events("-", 10).await.unwrap(), vec![unscoped]);
    assert_eq!(store.event("nope").await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn api_key_scope_and_revocation() {
    let (store, _, _) = fresh_table().await;
    let any = wa_domain::auth::hash_key("vnt_dev_key");
    let some = wa_domain::auth::hash_key("vnt_scoped_key");
    let none = wa_domain::auth::hash_key("vnt_no_numbers");

    let before = store.metrics().snapshot();
    store
        .put_key(&any, &KeyScope::AnyNumber, "dev")
        .await
        .unwrap();
    assert_eq!(cost(&store, before, "put_key"), rw(0, 1));
    let scoped = KeyScope::Numbers(vec![PNID.into(), "2".into()]);
    store.put_key(&some, &scoped, "shop").await.unwrap();
    store
        .put_key(&none, &KeyScope::Numbers(vec![]), "empty")
        .await
        .unwrap();

    let before = store.metrics().snapshot();
    assert_eq!(
        store.find_key(&any).await.unwrap(),
        Some(KeyScope::AnyNumber)
    );
    assert_eq!(cost(&store, before, "find_key"), rw(1, 0));
    let found = store.find_key(&some).await.unwrap().unwrap();
    assert_eq!(found, scoped);
    assert!(found.allows(PNID) && !found.allows("3"));
    assert_eq!(
        store.find_key(&none).await.unwrap(),
        Some(KeyScope::Numbers(vec![]))
    );
    assert_eq!(store.find_key("0".repeat(64).as_str()).await.unwrap(), None);

    assert!(store.revoke_key(&some).await.unwrap());
    assert_eq!(store.find_key(&some).await.unwrap(), None);
    assert!(!store.revoke_key("deadbeef").await.unwrap());
    assert_eq!(
        store.find_key("deadbeef").await.unwrap(),
        None,
        "no stub left"
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn quarantine_keeps_a_3mb_body_in_chunks() {
    let (store, client, table) = fresh_table().await;
    // 3 MB of every byte value, not compressible, not UTF-8.
    let mut body = Vec::with_capacity(3 * 1024 * 1024);
    let mut x: u32 = 0x9E37_79B9;
    while body.len() < 3 * 1024 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        body.extend_from_slice(&x.to_le_bytes());
    }
    let received_at = 1_700_000_000;

    let before = store.metrics().snapshot();
    let id = store
        .quarantine(&body, "unparseable payload", received_at)
        .await
        .unwrap();
    assert_eq!(cost(&store, before, "quarantine (3 MB)"), rw(1, 2));
    use sha2::Digest;
    assert_eq!(id, hex::encode(sha2::Sha256::digest(&body)));

    // Again: found, nothing written.
    let before = store.metrics().snapshot();
    assert_eq!(
        store
            .quarantine(&body, "again", received_at + 5)
            .await
            .unwrap(),
        id
    );
    assert_eq!(cost(&store, before, "quarantine (again)"), rw(1, 0));

    let (back, reason) = store.quarantined(&id).await.unwrap().unwrap();
    assert_eq!(back.len(), body.len());
    assert!(back == body, "the bytes come back unchanged");
    assert_eq!(reason, "unparseable payload");

    // The chunks as stored: ≤ 300 KiB each, in order, each with the TTL.
    let chunks = raw_partition(&client, &table, &format!("QUARANTINE#{id}")).await;
    let chunk_items: Vec<_> = chunks
        .iter()
        .filter(|i| matches!(i.get("sk"), Some(AttributeValue::S(s)) if s.starts_with("CHUNK#")))
        .collect();
    assert_eq!(
        chunk_items.len(),
        (3 * 1024 * 1024usize).div_ceil(300 * 1024)
    );
    let mut joined = Vec::new();
    for item in &chunk_items {
        let Some(AttributeValue::B(b)) = item.get("data") else {
            panic!("chunk without data");
        };
        assert!(b.as_ref().len() <= wa_dynamodb::quarantine::CHUNK_BYTES);
        joined.extend_from_slice(b.as_ref());
        assert_eq!(
            item.get("ttl"),
            Some(&AttributeValue::N(
                (received_at + wa_dynamodb::quarantine::RETENTION_SECS).to_string()
            ))
        );
    }
    assert!(joined == body);

    assert_eq!(store.quarantined(&"0".repeat(64)).await.unwrap(), None);
    let small = store.quarantine(b"", "empty", received_at).await.unwrap();
    assert_eq!(
        store.quarantined(&small).await.unwrap(),
        Some((Vec::new(), "empty".to_owned()))
    );
}

#[tokio::test]
async fn unreachable_table_is_unavailable() {
    let config = wa_tests::unreachable_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), "none");
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        store.record_message(&outbound("wamid.X", 1)),
    )
    .await
    .expect("must not hang");
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(started.elapsed().as_secs() < 10);
}
