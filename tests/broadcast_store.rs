//! Broadcasts against moto: `wa-dynamodb`'s [`BroadcastStore`] and [`LimitStore`], and
//! `wa-sqs`'s outbound batches and step queue, driven by the planner itself.
//! Run with moto on `$AWS_ENDPOINT_URL` (`make test`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use serde_json::json;
use wa_domain::broadcast::create;
use wa_domain::broadcast::limit::bucket_of;
use wa_domain::broadcast::planner::{Deps, PlannerConfig, StepResult, step};
use wa_domain::broadcast::*;
use wa_domain::ports::*;
use wa_domain::testing::{InMemoryStore, ManualClock};
use wa_dynamodb::DynamoStore;
use wa_sqs::{SqsStepQueue, create_step_queues, decode_job, decode_step};
use wa_tests::aws::{fresh_outbound_queue, moto_config, unique_name};
use wa_tests::{fresh_table, raw_partition};

const PN: &str = "1001";
const T0: i64 = 1_800_000_000;

async fn receive_all(client: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let r = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let msgs = r.messages.unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            out.push(m.body.unwrap_or_default());
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.unwrap_or_default())
                .send()
                .await
                .unwrap();
        }
    }
}

async fn run(
    store: &DynamoStore,
    deps: &Deps<
        '_,
        DynamoStore,
        DynamoStore,
        InMemoryStore,
        NoSource,
        wa_sqs::SqsOutboundQueue,
        ManualClock,
    >,
    cfg: &PlannerConfig,
    id: &BroadcastId,
    until: i64,
) {
    let mut chain = store.get_broadcast(id).await.unwrap().unwrap().chain;
    for _ in 0..1_000 {
        match step(deps, cfg, id, chain).await.unwrap() {
            StepResult::Again {
                after_secs,
                chain: c,
            } => {
                chain = c;
                if deps.clock.now_ms() / 1000 + after_secs >= until {
                    return;
                }
                deps.clock.advance(after_secs * 1000);
            }
            StepResult::Idle => return,
        }
    }
    panic!("runaway");
}

#[tokio::test]
async fn a_broadcast_is_planned_into_sends_and_jobs_within_the_limit_and_once() {
    let (store, _, _) = fresh_table().await;
    let q = fresh_outbound_queue().await;
    let sqs = aws_sdk_sqs::Client::new(&moto_config().await);
    let (steps_url, _) = create_step_queues(&sqs, &format!("{}-", unique_name("v-")), "steps")
        .await
        .unwrap();
    let steps = SqsStepQueue::new(sqs.clone(), &steps_url);
    let templates = InMemoryStore::default();
    templates.set_waba(PN, "W1");
    store
        .record_account(&AccountRecord {
            waba_id: "W1".into(),
            key: "messaging_limit".into(),
            at: 1,
            attributes: vec![("tier".into(), "TIER_50".into())],
        })
        .await
        .unwrap();
    store
        .record_consent(&ConsentRecord {
            phone_number_id: PN.into(),
            customer: wa_domain::customer::CustomerKey::Phone("15550000007".into()),
            scope: "all".into(),
            consent: Consent::OptedOut,
            source: ConsentSource::Keyword,
            at: 1,
            detail: None,
        })
        .await
        .unwrap();
    // 60 rows: 55 customers, 5 repeated (one of them the customer of the invalid row 5,
    // whose first valid row that repeat is); one opted out.
    let mut rows: Vec<_> = (0..55)
        .map(|i| json!({"to": format!("1555{i:07}")}))
        .collect();
    rows.extend([0, 1, 2, 3, 5].map(|i| json!({"to": format!("1555{i:07}")})));
    rows[5] = json!({"to": "12"});
    let body = json!({"phone_number_id": PN, "template": {"name": "promo", "language": "es"},
        "recipients": rows, "release": {"all_at_once": true}});
    let req = create::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
    let clock = ManualClock::at(T0 * 1000);
    let id = create::create(&store, &templates, &steps, req, T0 * 1000, [9; 10], 86_400)
        .await
        .unwrap();
    let msgs = receive_all(&sqs, &steps_url).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(decode_step(&msgs[0]).unwrap(), (id.clone(), 1));

    let deps = Deps {
        store: &store,
        limits: &store,
        templates: &templates,
        source: &NoSource,
        outbound: &q.queue,
        clock: &clock,
    };
    let cfg = PlannerConfig {
        page: 25,
        recheck_secs: 100_000,
        ..PlannerConfig::default()
    };
    run(&store, &deps, &cfg, &id, T0 + 3600).await;
    let b = store.get_broadcast(&id).await.unwrap().unwrap();
    // The 50 tier lets 50 go today.
    assert_eq!(b.counts.queued, 50);
    assert_eq!(b.counts.skipped_invalid, 1);
    assert_eq!(b.counts.skipped_opted_out, 1);
    assert_eq!(b.view()["counts"]["waiting_for_limit"], 60 - b.cursor);
    let jobs: Vec<_> = receive_all(&q.client, &q.url)
        .await
        .iter()
        .map(|m| decode_job(m).unwrap())
        .collect();
    let ids: HashSet<_> = jobs.iter().map(|j| j.send_id.clone()).collect();
    assert_eq!(jobs.len(), 50);
    assert_eq!(ids.len(), 50);
    let sends = store
        .get_sends(&ids.iter().cloned().collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(sends.iter().all(|s| {
        s.as_ref()
            .is_some_and(|s| s.broadcast_id.as_deref() == Some(id.as_str()))
    }));

    // A day later the rest goes; the duplicates were skipped once each.
    clock.advance(25 * 3600 * 1000);
    run(&store, &deps, &cfg, &id, T0 + 30 * 3600).await;
    let b = store.get_broadcast(&id).await.unwrap().unwrap();
    assert_eq!(b.cursor, 60);
    assert_eq!(b.counts.queued, 54);
    assert_eq!(b.counts.skipped_duplicate, 4);
    let more = receive_all(&q.client, &q.url).await;
    assert_eq!(more.len(), 4);
    let entries = store.entries(&id, 0, 1_000).await.unwrap();
    assert_eq!(entries.len(), 60);
    assert!(entries.iter().enumerate().all(|(i, e)| e.index == i as u64));
}

#[tokio::test]
async fn ledger_pages_cross_partitions_and_sends_are_created_once() {
    let (store, observer_client, table) = fresh_table().await;
    let id = BroadcastId::new(T0 * 1000, [1; 10]);
    let entries: Vec<_> = (9_990..10_010)
        .map(|i| LedgerEntry::pending(&id, i, RecipientRow::default(), T0 + 100))
        .collect();
    store.put_entries(&entries).await.unwrap();
    let page = store.entries(&id, 9_995, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.index).collect::<Vec<_>>(),
        (9_995..10_005).collect::<Vec<_>>()
    );
    let tail = store.entries(&id, 10_005, 100).await.unwrap();
    assert_eq!(tail.len(), 5);

    // A customer's send names the row that made it; no send, no owner.
    store
        .create_sends(
            &[broadcast_send(&id, 3, "a"), broadcast_send(&id, 4, "b")],
            true,
        )
        .await
        .unwrap();
    let ids: Vec<_> = (3..6)
        .map(|i| send_id_for(&id, T0 * 1000, &format!("p:{i}")))
        .collect();
    assert_eq!(
        store.send_owners(&ids).await.unwrap(),
        vec![Some(3), Some(4), None]
    );
    // A send under such an id without its row (not one the planner made) is an error, not a
    // customer free to send to again.
    let mut stray = broadcast_send(&id, 5, "c");
    stray.broadcast_index = None;
    store.create_sends(&[stray], true).await.unwrap();
    assert!(matches!(
        store.send_owners(&ids).await,
        Err(StoreError::Corrupt(_))
    ));

    // Limit: reservations stop at the limit; charges are seen.
    assert_eq!(store.reserve("W", 30, 50, T0).await.unwrap(), (30, None));
    let (g, retry) = store.reserve("W", 30, 50, T0 + 10).await.unwrap();
    assert_eq!(g, 20);
    assert!(retry.is_some_and(|t| t > T0 + 86_400));
    assert_eq!(store.reserve("W", 1, 50, T0 + 20).await.unwrap().0, 0);
    // A day and an hour later, the buckets have left the window.
    assert_eq!(
        store.reserve("W", 5, 50, T0 + 25 * 3600).await.unwrap().0,
        5
    );
    store
        .record_charges("W", &["p:1".into()], T0)
        .await
        .unwrap();
    let seen = store
        .charged_since("W", &["p:1".into(), "p:2".into()], T0 - 1)
        .await
        .unwrap();
    assert_eq!(seen, HashMap::from([("p:1".to_owned(), T0)]));
    assert!(
        store
            .charged_since("W", &["p:1".into()], T0)
            .await
            .unwrap()
            .is_empty()
    );

    // Moving counted customers between hours: up, then down; a gone bucket stays gone.
    let (t1, hour) = (T0 + 30 * 86_400, 3600);
    assert_eq!(store.reserve("V", 40, 50, t1).await.unwrap().0, 40);
    store
        .adjust_buckets("V", &[(bucket_of(t1) + hour, 7)])
        .await
        .unwrap();
    store
        .adjust_buckets("V", &[(bucket_of(t1), -7), (bucket_of(t1) - 5 * hour, -3)])
        .await
        .unwrap();
    let later = t1 + hour;
    assert_eq!(
        store.reserve("V", 50, 50, later).await.unwrap().0,
        10,
        "33 + 7 of 50 used, the gone bucket's -3 not applied"
    );
    let buckets = raw_partition(&observer_client, &table, "LIMIT#V")
        .await
        .into_iter()
        .map(|i| {
            (
                i["sk"].as_s().unwrap().clone(),
                i["count"].as_n().unwrap().clone(),
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(
        buckets.len(),
        2,
        "no bucket made by a count down: {buckets:?}"
    );
}

#[tokio::test]
async fn an_idempotency_key_is_claimed_once_until_it_expires() {
    let (store, _, _) = fresh_table().await;
    let (a, b) = (
        BroadcastId::new(T0 * 1000, [1; 10]),
        BroadcastId::new(T0 * 1000, [2; 10]),
    );
    assert_eq!(
        store
            .claim_creation("k", &a, "h1", T0 + 100, T0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .claim_creation("k", &b, "h2", T0 + 200, T0 + 50)
            .await
            .unwrap(),
        Some((a.clone(), "h1".to_owned())),
        "held by the first request, whatever the second brings"
    );
    // Past its time the key is free again (DynamoDB deletes expired items late).
    assert_eq!(
        store
            .claim_creation("k", &b, "h2", T0 + 300, T0 + 100)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .claim_creation("k", &a, "h1", T0 + 400, T0 + 150)
            .await
            .unwrap(),
        Some((b, "h2".to_owned()))
    );
}

/// The ledger's items in moto for partition `part` of broadcast `id`: (sort key, entries).
async fn ledger_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &BroadcastId,
    part: u64,
) -> Vec<(String, usize)> {
    raw_partition(client, table, &format!("BCASTL#{id}#{part}"))
        .await
        .iter()
        .map(|i| {
            let n = i
                .get("count")
                .map_or(1, |c| c.as_n().unwrap().parse().unwrap());
            (i["sk"].as_s().unwrap().clone(), n)
        })
        .collect()
}

#[tokio::test]
async fn the_ledger_is_packed_by_page_and_read_merged_on_every_write() {
    let (store, client, table) = fresh_table().await;
    let id = BroadcastId::new(T0 * 1000, [2; 10]);
    let row = |i: u64, bytes: usize| RecipientRow {
        to: Some(format!("1555{i:07}")),
        components: json!([{"type": "body", "parameters": [{"type": "text", "text": "x".repeat(bytes)}]}]),
        ..RecipientRow::default()
    };
    // An import of 250 rows: three pages, one item each.
    let imported: Vec<_> = (0..250)
        .map(|i| LedgerEntry::pending(&id, i, row(i, 10), T0 + 100))
        .collect();
    store.put_entries(&imported).await.unwrap();
    assert_eq!(
        ledger_items(&client, &table, &id, 0).await,
        vec![
            ("0000000000".to_owned(), 100),
            ("0000000100".to_owned(), 100),
            ("0000000200".to_owned(), 50)
        ]
    );
    assert_eq!(store.entries(&id, 0, 1_000).await.unwrap(), imported);

    // A sparse write (what settling does) changes those entries and keeps the rest.
    let mut a = imported[105].clone();
    a.outcome = Outcome::Queued;
    a.send_id = Some(wa_domain::outbound::SendId::new(T0 * 1000, [3; 10]));
    let mut b = imported[7].clone();
    b.outcome = Outcome::SkippedOptedOut;
    store.put_entries(&[a.clone(), b.clone()]).await.unwrap();
    let mut want = imported.clone();
    want[105] = a;
    want[7] = b;
    assert_eq!(store.entries(&id, 0, 1_000).await.unwrap(), want);
    assert_eq!(store.entries(&id, 100, 10).await.unwrap(), want[100..110]);
    assert_eq!(ledger_items(&client, &table, &id, 0).await.len(), 3);

    // The import goes on in the last page: it is filled in, still one item.
    let more: Vec<_> = (250..300)
        .map(|i| LedgerEntry::pending(&id, i, row(i, 10), T0 + 100))
        .collect();
    store.put_entries(&more).await.unwrap();
    want.extend(more);
    assert_eq!(store.entries(&id, 0, 1_000).await.unwrap(), want);
    assert_eq!(
        ledger_items(&client, &table, &id, 0).await[2],
        ("0000000200".to_owned(), 100)
    );

    // A page of the largest rows (64 KiB CSV records) is cut into items DynamoDB takes.
    let big: Vec<_> = (1_000..1_100)
        .map(|i| LedgerEntry::pending(&id, i, row(i, 64 * 1024), T0 + 100))
        .collect();
    store.put_entries(&big).await.unwrap();
    let items = ledger_items(&client, &table, &id, 1).await;
    assert!(items.len() > 1, "{items:?}");
    assert_eq!(items.iter().map(|(_, n)| n).sum::<usize>(), 100);
    assert_eq!(store.entries(&id, 1_000, 100).await.unwrap(), big);
    // Reads run on across partitions only while the entries do, whatever the limit.
    assert_eq!(store.entries(&id, 290, 50).await.unwrap(), want[290..300]);
    assert_eq!(
        store.entries(&id, 5, usize::MAX).await.unwrap(),
        want[5..300]
    );
    assert!(store.entries(&id, 5, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn ledger_entries_written_one_per_item_are_read_and_folded_into_pages() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let (store, client, table) = fresh_table().await;
    let id = BroadcastId::new(T0 * 1000, [4; 10]);
    // Entries 0..3 as the ledger stored them before it was packed: one item each.
    let old: Vec<_> = (0..3)
        .map(|i| LedgerEntry::pending(&id, i, RecipientRow::default(), T0 + 100))
        .collect();
    for e in &old {
        client
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S(format!("BCASTL#{id}#0")))
            .item("sk", AttributeValue::S(format!("{:010}", e.index)))
            .item("doc", AttributeValue::S(serde_json::to_string(e).unwrap()))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(store.entries(&id, 0, 10).await.unwrap(), old);
    // A write of one of them packs the page and removes the single items.
    let mut changed = old[1].clone();
    changed.outcome = Outcome::SkippedInvalid;
    store
        .put_entries(std::slice::from_ref(&changed))
        .await
        .unwrap();
    assert_eq!(
        ledger_items(&client, &table, &id, 0).await,
        vec![("0000000000".to_owned(), 3)]
    );
    assert_eq!(
        store.entries(&id, 0, 10).await.unwrap(),
        vec![old[0].clone(), changed, old[2].clone()]
    );
}

#[tokio::test]
async fn a_ledger_write_of_whole_pages_reads_nothing_and_leaves_no_stale_chunk() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use wa_tests::counting_proxy::CountingProxy;
    let (_, client, table) = fresh_table().await;
    let proxy = CountingProxy::start(&wa_tests::moto_endpoint()).await;
    let counted = wa_tests::config_for(&proxy.endpoint).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&counted), &table);
    let queries = || {
        proxy
            .snapshot()
            .get("dynamodb:Query")
            .map_or(0, |c| c.requests)
    };
    let id = BroadcastId::new(T0 * 1000, [5; 10]);
    let row = |i: u64, bytes: usize| RecipientRow {
        to: Some(format!("1555{i:07}")),
        components: json!([{"type": "body", "parameters": [{"type": "text", "text": "x".repeat(bytes)}]}]),
        ..RecipientRow::default()
    };
    // Half a page of the largest rows, then the whole of it: the half is read and merged;
    // the whole is written without a read and overwrites every chunk the half had.
    let big: Vec<_> = (0..100)
        .map(|i| LedgerEntry::pending(&id, i, row(i, 64 * 1024), T0 + 100))
        .collect();
    let q0 = queries();
    store.put_entries(&big[..50]).await.unwrap();
    assert_eq!(queries() - q0, 1);
    let half = ledger_items(&client, &table, &id, 0).await;
    // Position 51 as the ledger stored it before it was packed (one item, its own row).
    let legacy = LedgerEntry::pending(&id, 51, row(51, 1), T0 + 100);
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S(format!("BCASTL#{id}#0")))
        .item("sk", AttributeValue::S("0000000051".to_owned()))
        .item(
            "doc",
            AttributeValue::S(serde_json::to_string(&legacy).unwrap()),
        )
        .send()
        .await
        .unwrap();
    let mut planned = big.clone();
    for e in planned.iter_mut() {
        e.outcome = Outcome::SkippedInvalid;
    }
    let q1 = queries();
    store.put_entries(&planned).await.unwrap();
    assert_eq!(queries() - q1, 0, "a whole page is written without a read");
    let whole = ledger_items(&client, &table, &id, 0).await;
    assert!(
        half.len() > 1 && whole.len() > half.len(),
        "{half:?} {whole:?}"
    );
    assert!(
        half.iter()
            .all(|(sk, _)| whole.iter().any(|(w, _)| w == sk))
    );
    // The chunks hold each position once (two rows of 64 KiB each); the legacy item is
    // left, and overruled by the chunk that holds position 51.
    assert_eq!(whole.iter().map(|(_, n)| n).sum::<usize>(), 101);
    assert!(whole.contains(&("0000000051".to_owned(), 1)), "{whole:?}");
    assert_eq!(store.entries(&id, 0, 100).await.unwrap(), planned);
    // Two whole pages at once, and a part of one: only the part reads.
    let next: Vec<_> = (100..300)
        .map(|i| LedgerEntry::pending(&id, i, row(i, 10), T0 + 100))
        .collect();
    let q2 = queries();
    store.put_entries(&next).await.unwrap();
    assert_eq!(queries() - q2, 0);
    let mut one = next[150].clone();
    one.outcome = Outcome::SkippedOptedOut;
    store.put_entries(std::slice::from_ref(&one)).await.unwrap();
    assert_eq!(queries() - q2, 1);
    let mut want = next.clone();
    want[150] = one;
    assert_eq!(store.entries(&id, 100, 200).await.unwrap(), want);
}

fn broadcast_send(id: &BroadcastId, index: u64, text: &str) -> wa_domain::outbound::SendRecord {
    use wa_domain::outbound::{SendKind, SendRecord};
    SendRecord {
        body: json!({"text": text}),
        broadcast_id: Some(id.as_str().to_owned()),
        broadcast_index: Some(index),
        ..SendRecord::pending(
            send_id_for(id, T0 * 1000, &format!("p:{index}")),
            "1001",
            SendKind::Template,
            T0 * 1000,
            T0 + 86_400,
        )
    }
}

#[tokio::test]
async fn a_pages_sends_are_batch_written_first_and_never_overwritten_on_a_retry() {
    let (store, _, _) = fresh_table().await;
    let id = BroadcastId::new(T0 * 1000, [2; 10]);
    // First attempt: 60 sends (three BatchWriteItem requests), all readable.
    let first: Vec<_> = (0..60).map(|i| broadcast_send(&id, i, "first")).collect();
    store.create_sends(&first, true).await.unwrap();
    let ids: Vec<_> = first.iter().map(|s| s.id.clone()).collect();
    let got = store.get_sends(&ids).await.unwrap();
    assert!(
        got.iter()
            .all(|s| s.as_ref().is_some_and(|s| s.body["text"] == "first"))
    );
    // A retry of the page (after a crash) with 70 sends: the 60 are kept as they were, the
    // 10 new ones are written.
    let again: Vec<_> = (0..70).map(|i| broadcast_send(&id, i, "again")).collect();
    store.create_sends(&again, false).await.unwrap();
    let ids: Vec<_> = again.iter().map(|s| s.id.clone()).collect();
    let got = store.get_sends(&ids).await.unwrap();
    let texts: Vec<_> = got
        .iter()
        .map(|s| {
            s.as_ref().unwrap().body["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(texts[..60], vec!["first".to_owned(); 60][..]);
    assert_eq!(texts[60..], vec!["again".to_owned(); 10][..]);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn the_audience_resolves_aliases_and_reads_the_marketing_consent_only_when_asked() {
    use wa_domain::customer::{CustomerKey, CustomerRef};
    use wa_domain::window::WindowUpdate;
    let (store, _, _) = fresh_table().await;
    let both = CustomerRef::new(Some("US.9"), Some("15550009")).unwrap();
    let bsuid = CustomerKey::Bsuid("US.9".into());
    store.resolve_customer(PN, &both).await.unwrap();
    store
        .advance_window(
            PN,
            &bsuid,
            &both,
            &WindowUpdate::for_message(T0, false),
            None,
        )
        .await
        .unwrap();
    for (scope, consent) in [("all", Consent::OptedIn), ("marketing", Consent::OptedOut)] {
        store
            .record_consent(&ConsentRecord {
                phone_number_id: PN.into(),
                customer: bsuid.clone(),
                scope: scope.into(),
                consent,
                source: ConsentSource::Api,
                at: T0,
                detail: None,
            })
            .await
            .unwrap();
    }
    let who = [
        CustomerRef::new(None, Some("15550009")).unwrap(),
        CustomerRef::new(None, Some("15550010")).unwrap(),
    ];
    for marketing in [true, false] {
        let a = store.audience(PN, &who, marketing).await.unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(
            a[0].key,
            Some(bsuid.clone()),
            "the phone resolves to its BSUID"
        );
        assert_eq!(
            a[0].window.and_then(|w| w.last_inbound_at),
            Some(T0),
            "the BSUID's window"
        );
        let mut scopes: Vec<&str> = a[0].consents.iter().map(|c| c.scope.as_str()).collect();
        scopes.sort_unstable();
        let expected: &[&str] = if marketing {
            &["all", "marketing"]
        } else {
            &["all"]
        };
        assert_eq!(scopes, expected, "marketing: {marketing}");
        assert_eq!(a[1].key, Some(CustomerKey::Phone("15550010".into())));
        assert!(a[1].window.is_none() && a[1].consents.is_empty());
    }
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_numbers_queue_time_starts_now_when_behind_and_adds_up_across_planners() {
    let (one, _, table) = fresh_table().await;
    // A second handle on the same table: another planner invocation.
    let other = DynamoStore::new(aws_sdk_dynamodb::Client::new(&moto_config().await), &table);
    let fake = wa_domain::broadcast::memory::MemoryBroadcasts::new(std::sync::Arc::new(
        InMemoryStore::default(),
    ));
    let now = T0 * 1000;
    // (store, now, add): a first page, one by the other planner, one after the queue ran
    // dry, and one for another number.
    for (store, at, add, want) in [
        (&one, now, 1_250, now + 1_250),
        (&other, now + 500, 1_250, now + 2_500),
        (&one, now + 600, 2_000, now + 4_500),
        (&other, now + 10_000, 1_250, now + 11_250),
    ] {
        assert_eq!(store.queue_pace(PN, at, add).await.unwrap(), want);
        assert_eq!(
            fake.queue_pace(PN, at, add).await.unwrap(),
            want,
            "the fake agrees"
        );
    }
    assert_eq!(
        one.queue_pace("another", now, 100).await.unwrap(),
        now + 100
    );
    // Two planners at once: both pages count.
    let (x, y) = tokio::join!(
        one.queue_pace(PN, now + 10_000, 1_000),
        other.queue_pace(PN, now + 10_000, 1_000)
    );
    let mut got = [x.unwrap(), y.unwrap()];
    got.sort();
    assert_eq!(got, [now + 12_250, now + 13_250]);
}
