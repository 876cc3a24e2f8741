//! `wa-sqs` against moto: events reach the FIFO queue grouped, deduplicated and decodable.
//! Each test makes its own queues. Run with moto on `$AWS_ENDPOINT_URL` (`make test`).
// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::value::RawValue;
use wa_domain::customer::CustomerRef;
use wa_domain::event::{EventKind, InboundEvent};
use wa_domain::ports::{EventQueue, QueueError};
use wa_sqs::{EnvelopeError, MAX_MESSAGE_BYTES, NotQueued, SqsEventQueue, decode, encode};
use wa_tests::{FakeSqs, FreshQueue, config_for, fresh_inbound_queue};

fn event(customer: usize, n: usize) -> InboundEvent {
    let wamid = format!("wamid.C{customer}N{n}");
    InboundEvent {
        kind: EventKind::Message,
        field: "messages".into(),
        waba_id: Some("102290129340398".into()),
        phone_number_id: Some("106540352242922".into()),
        display_phone_number: Some("15550783881".into()),
        entry_time: None,
        customer: CustomerRef::new(Some(&format!("US.{customer}")), Some("15551234567")),
        contact: None,
        item: RawValue::from_string(format!(
            r#"{{"id":"{wamid}","type":"text","text":{{"body":"Hola, ¿qué tal? {n}"}}}}"#
        ))
        .unwrap(),
        natural_key: format!("message:{wamid}"),
    }
}

/// Receives (and deletes) everything until the queue has been empty for one long poll.
async fn drain(q: &FreshQueue) -> Vec<(String, InboundEvent)> {
    let mut got = Vec::new();
    loop {
        let out = q
            .client
            .receive_message()
            .queue_url(&q.url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return got;
        }
        for m in messages {
            let group = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned()
                .expect("FIFO messages carry their group");
            got.push((group, decode(m.body.as_deref().unwrap()).unwrap()));
            q.client
                .delete_message()
                .queue_url(&q.url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Publishes events that all fit in a message.
async fn publish(queue: &SqsEventQueue, events: Vec<InboundEvent>) {
    let n = events.len();
    let published = queue.publish(events).await.unwrap();
    assert!(published.oversized.is_empty(), "every event fits");
    assert_eq!(published.queued, n);
}

async fn queued(q: &FreshQueue) -> usize {
    let out = q
        .client
        .get_queue_attributes()
        .queue_url(&q.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    out.attributes
        .unwrap()
        .get(&QueueAttributeName::ApproximateNumberOfMessages)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn events_are_grouped_and_deduplicated() {
    let q = fresh_inbound_queue().await;
    // 25 events of 5 customers, interleaved as a webhook might list them.
    let events: Vec<InboundEvent> = (0..25).map(|i| event(i % 5, i / 5)).collect();

    publish(&q.queue, events.clone()).await;
    let m = q.queue.metrics().snapshot();
    eprintln!(
        "requests: publish 25 events: {} SendMessageBatch",
        m.requests
    );
    assert_eq!(m.requests, 3, "25 events fill three batches");
    assert_eq!(m.messages, 25);
    // Meta redelivers the webhook: the same events again queue nothing new.
    publish(&q.queue, events.clone()).await;

    let got = drain(&q).await;
    assert_eq!(got.len(), 25, "exactly one message per event");
    let by_key: HashMap<&str, &InboundEvent> =
        events.iter().map(|e| (e.natural_key(), e)).collect();
    let mut order: HashMap<String, Vec<String>> = HashMap::new();
    for (group, back) in &got {
        let sent = by_key[back.natural_key()];
        assert_eq!(group, &sent.group_id());
        assert_eq!(back.item.get(), sent.item.get(), "raw item unchanged");
        assert_eq!(back.customer, sent.customer);
        assert_eq!(back.kind, sent.kind);
        order
            .entry(group.clone())
            .or_default()
            .push(back.natural_key().to_owned());
    }
    assert_eq!(order.len(), 5);
    for (group, keys) in order {
        let sent: Vec<String> = events
            .iter()
            .filter(|e| e.group_id() == group)
            .map(|e| e.natural_key().to_owned())
            .collect();
        assert_eq!(keys, sent, "a customer's events keep their order");
    }
}

#[tokio::test]
async fn a_thousand_events_are_published() {
    // Against the fake endpoint: moto rescans a FIFO queue for every message it accepts, so
    // 1,000 messages take it over three minutes (`a_large_publish_reaches_moto_whole` does
    // 100 on moto).
    let fake = FakeSqs::start(Duration::from_millis(20)).await;
    let queue = SqsEventQueue::new(
        aws_sdk_sqs::Client::new(&config_for(&fake.endpoint).await),
        format!("{}/000000000000/inbound.fifo", fake.endpoint),
    );
    // 100 customers with 10 events each, interleaved.
    let events: Vec<InboundEvent> = (0..1_000).map(|i| event(i % 100, i / 100)).collect();
    let started = Instant::now();
    publish(&queue, events.clone()).await;
    let elapsed = started.elapsed();
    let m = queue.metrics().snapshot();
    eprintln!(
        "requests: publish 1000 events: {} SendMessageBatch in {elapsed:?}, at most {} at once",
        m.requests,
        fake.max_in_flight()
    );
    assert_eq!(m.requests, 100, "full batches");
    assert_eq!(fake.requests(), 100);
    assert_eq!(m.messages, 1_000);
    assert!(
        (2..=8).contains(&fake.max_in_flight()),
        "batches run concurrently, bounded: {}",
        fake.max_in_flight()
    );

    let got = fake.messages();
    assert_eq!(got.len(), 1_000);
    let mut order: HashMap<String, Vec<String>> = HashMap::new();
    for m in &got {
        let e = decode(&m.body).unwrap();
        assert_eq!(m.group, e.group_id());
        assert_eq!(m.dedup, e.dedup_id());
        order
            .entry(m.group.clone())
            .or_default()
            .push(e.natural_key().to_owned());
    }
    for (group, keys) in order {
        let sent: Vec<String> = events
            .iter()
            .filter(|e| e.group_id() == group)
            .map(|e| e.natural_key().to_owned())
            .collect();
        assert_eq!(keys, sent, "a customer's events keep their order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_large_publish_reaches_moto_whole() {
    let q = fresh_inbound_queue().await;
    let events: Vec<InboundEvent> = (0..100).map(|i| event(i % 20, i / 20)).collect();
    let started = Instant::now();
    publish(&q.queue, events.clone()).await;
    eprintln!(
        "requests: publish 100 events to moto: {} SendMessageBatch in {:?}",
        q.queue.metrics().snapshot().requests,
        started.elapsed()
    );
    assert_eq!(q.queue.metrics().snapshot().requests, 10);
    assert_eq!(queued(&q).await, 100);
    let got = consume(&q.client, &q.url, 100, Duration::from_secs(60)).await;
    let keys: HashSet<&str> = got.iter().map(|(_, e)| e.natural_key()).collect();
    assert_eq!(keys.len(), 100, "each event once");
    for (group, e) in &got {
        assert_eq!(group, &e.group_id());
    }
}

#[tokio::test]
async fn failed_entries_are_sent_again() {
    let fake = FakeSqs::start(Duration::ZERO).await;
    let queue = SqsEventQueue::new(
        aws_sdk_sqs::Client::new(&config_for(&fake.endpoint).await),
        format!("{}/000000000000/inbound.fifo", fake.endpoint),
    );
    let events: Vec<InboundEvent> = (0..25).map(|i| event(i % 5, i / 5)).collect();
    fake.fail(&events[3].dedup_id(), 1);
    fake.fail(&events[4].dedup_id(), 1);
    fake.fail(&events[20].dedup_id(), 2);
    publish(&queue, events.clone()).await;
    let m = queue.metrics().snapshot();
    eprintln!(
        "requests: publish 25 events, 3 failing: {} SendMessageBatch",
        m.requests
    );
    assert_eq!(m.messages, 25);
    assert_eq!(m.failed_entries, 4);
    assert_eq!(fake.messages().len(), 25);
    // Three batches; the one with the twice-failing entry is sent again twice, the two
    // others once: only failed entries go again.
    assert_eq!(m.requests, 3 + 2 + 1 + 1);
}

#[tokio::test]
async fn entries_failing_every_retry_make_publish_fail() {
    let fake = FakeSqs::start(Duration::ZERO).await;
    let queue = SqsEventQueue::new(
        aws_sdk_sqs::Client::new(&config_for(&fake.endpoint).await),
        format!("{}/000000000000/inbound.fifo", fake.endpoint),
    );
    let events: Vec<InboundEvent> = (0..5).map(|i| event(i, 0)).collect();
    fake.fail(&events[2].dedup_id(), 3);
    let r = queue.publish(events.clone()).await;
    let Err(QueueError::Unavailable(source)) = r else {
        panic!("expected Unavailable, got {r:?}");
    };
    let not_queued = source
        .downcast_ref::<NotQueued>()
        .expect("the source says what was refused");
    assert_eq!(not_queued.count, 1);
    assert_eq!(not_queued.code, "InternalError");
    assert_eq!(fake.requests(), 3, "sent once and retried twice");
    // Publishing again (Meta's retry) completes; the others are not queued twice.
    publish(&queue, events.clone()).await;
    assert_eq!(fake.messages().len(), 5);
}

/// Receives and deletes messages until `want` arrived or `within` passed.
async fn consume(
    client: &aws_sdk_sqs::Client,
    url: &str,
    want: usize,
    within: Duration,
) -> Vec<(String, InboundEvent)> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        let mut delete = Vec::new();
        for (i, m) in messages.into_iter().enumerate() {
            let group = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned()
                .expect("FIFO messages carry their group");
            got.push((group, decode(m.body.as_deref().unwrap()).unwrap()));
            delete.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.unwrap())
                    .build()
                    .unwrap(),
            );
        }
        client
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(delete))
            .send()
            .await
            .unwrap();
    }
    got
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn an_oversized_event_comes_back_and_the_rest_is_queued() {
    let q = fresh_inbound_queue().await;
    let mut big = event(1, 1);
    big.item = RawValue::from_string(format!(r#"{{"body":"{}"}}"#, "x".repeat(MAX_MESSAGE_BYTES)))
        .unwrap();
    let small = event(2, 1);
    // Same customer as the big one: its group goes on without it.
    let after = event(1, 2);

    let published = q
        .queue
        .publish(vec![small.clone(), big.clone(), after.clone()])
        .await
        .unwrap();
    assert_eq!(published.queued, 2);
    assert_eq!(published.oversized.len(), 1);
    let o = &published.oversized[0];
    assert!(o.message.len() > MAX_MESSAGE_BYTES);
    assert_eq!(o.limit, MAX_MESSAGE_BYTES);
    assert_eq!(
        (o.kind, o.field.as_str(), o.natural_key.as_str()),
        (big.kind, "messages", big.natural_key.as_str())
    );
    // The message handed back is this queue's own envelope: replayed, it is the event.
    let back = decode(&o.message).unwrap();
    assert_eq!(back.item.get(), big.item.get());
    assert_eq!(back.natural_key, big.natural_key);
    assert_eq!(back.customer, big.customer);
    let m = q.queue.metrics().snapshot();
    assert_eq!((m.requests, m.messages, m.oversized), (1, 2, 1));
    let mut got: Vec<String> = drain(&q)
        .await
        .into_iter()
        .map(|(_, e)| e.natural_key)
        .collect();
    got.sort();
    assert_eq!(got, [after.natural_key, small.natural_key]);

    // A batch near the limit is fine: two events of ~120 KiB go in one request.
    let mut near = event(3, 1);
    near.item =
        RawValue::from_string(format!(r#"{{"body":"{}"}}"#, "y".repeat(120 * 1024))).unwrap();
    let mut near2 = near.clone();
    near2.natural_key = "message:near2".into();
    publish(&q.queue, vec![near, near2]).await;
    let m = q.queue.metrics().snapshot();
    assert_eq!((m.requests, m.messages), (2, 4));
    assert_eq!(queued(&q).await, 2);

    // Nothing but an oversized event: nothing is sent.
    let published = q.queue.publish(vec![big]).await.unwrap();
    assert_eq!((published.queued, published.oversized.len()), (0, 1));
    assert_eq!(q.queue.metrics().snapshot().requests, 2, "no request");
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn unknown_schema_version_is_rejected() {
    let q = fresh_inbound_queue().await;
    let body =
        encode(&event(1, 1))
            .unwrap()
            .replacen(r#""schema_version":1"#, r#""schema_version":2"#, 1);
    q.client
        .send_message()
        .queue_url(&q.url)
        .message_body(&body)
        .message_group_id("g")
        .message_deduplication_id("d")
        .send()
        .await
        .unwrap();
    let out = q
        .client
        .receive_message()
        .queue_url(&q.url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let messages = out.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    assert!(matches!(
        decode(messages[0].body.as_deref().unwrap()),
        Err(EnvelopeError::UnknownSchemaVersion(2))
    ));
}

#[tokio::test]
async fn unreachable_queue_is_an_error() {
    let config = wa_tests::unreachable_config().await;
    let queue = SqsEventQueue::new(
        aws_sdk_sqs::Client::new(&config),
        "http://127.0.0.1:9/000000000000/none.fifo",
    );
    let events: Vec<InboundEvent> = (0..30).map(|i| event(i, 0)).collect();
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(15), queue.publish(events.clone()))
        .await
        .expect("publish must not hang");
    assert!(matches!(r, Err(QueueError::Unavailable(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
