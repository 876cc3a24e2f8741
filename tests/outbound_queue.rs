//! `wa-sqs`'s outbound queue against moto: send jobs reach the FIFO queue grouped,
//! deduplicated and decodable; the worker's controls defer and dead-letter them; redrive
//! moves dead letters back. Each test makes its own queues. Run with moto on
//! `$AWS_ENDPOINT_URL`: `scripts/with-moto.sh cargo test -p wa-tests --test outbound_queue
//! -- --include-ignored`.
// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use wa_domain::outbound::SendId;
use wa_domain::ports::{OutboundQueue, QueueError, SendJob};
use wa_sqs::{
    ControlError, FifoQueueSpec, JobError, OutboundControl, REASON_ATTRIBUTE, SqsOutboundQueue,
    decode_job, encode_job, redrive,
};
use wa_tests::{
    FreshOutbound, fresh_inbound_queue, fresh_outbound_queue, moto_config, unique_name,
    unreachable_config,
};

const GROUP_A: &str = "106540352242922:u:US.13491208655302741918";
const GROUP_B: &str = "106540352242922:p:15551234567";

/// A job with a distinct send id for each `n`.
fn job(n: u8, group: &str) -> SendJob {
    SendJob {
        send_id: SendId::new(1_764_000_000_000 + i64::from(n), [n; 10]),
        group: group.into(),
    }
}

/// Receives up to 10 messages (waiting up to `wait_secs`), with every attribute.
async fn receive(client: &Client, url: &str, max: i32, wait_secs: i32) -> Vec<Message> {
    client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

async fn delete(client: &Client, url: &str, m: &Message) {
    client
        .delete_message()
        .queue_url(url)
        .receipt_handle(m.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
}

fn attribute(m: &Message, name: MessageSystemAttributeName) -> String {
    m.attributes()
        .and_then(|a| a.get(&name))
        .cloned()
        .unwrap_or_else(|| panic!("message without {name:?}"))
}

fn group(m: &Message) -> String {
    attribute(m, MessageSystemAttributeName::MessageGroupId)
}

fn body(m: &Message) -> &str {
    m.body().unwrap()
}

/// Receives and deletes everything until the queue has been empty for one long poll.
async fn drain(client: &Client, url: &str) -> Vec<Message> {
    let mut got = Vec::new();
    loop {
        let batch = receive(client, url, 10, 1).await;
        if batch.is_empty() {
            return got;
        }
        for m in batch {
            delete(client, url, &m).await;
            got.push(m);
        }
    }
}

/// (visible, in flight) message counts.
async fn counts(client: &Client, url: &str) -> (u64, u64) {
    let attrs = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let n = |k| attrs[&k].parse::<u64>().unwrap();
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// The send ids in the bodies of `messages` whose group is `group`, in order.
fn ids_in(messages: &[Message], group_id: &str) -> Vec<SendId> {
    messages
        .iter()
        .filter(|m| group(m) == group_id)
        .map(|m| decode_job(body(m)).unwrap().send_id)
        .collect()
}

/// Enqueues `jobs`, then receives each and dead-letters it with reason `why <n>`, in order.
async fn dead_letter_all(q: &FreshOutbound, jobs: &[SendJob]) {
    for j in jobs {
        q.queue.enqueue(j).await.unwrap();
    }
    let mut done = 0;
    while done < jobs.len() {
        let batch = receive(&q.client, &q.url, 10, 1).await;
        assert!(!batch.is_empty(), "all {} jobs come back", jobs.len());
        for m in batch {
            let j = decode_job(body(&m)).unwrap();
            let n = jobs.iter().position(|x| x == &j).unwrap();
            q.control
                .dead_letter(body(&m), &j.group, &format!("why {n}"))
                .await
                .unwrap();
            delete(&q.client, &q.url, &m).await;
            done += 1;
        }
    }
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn queues_are_created_with_their_redrive_policy_and_retention() {
    let q = fresh_outbound_queue().await;
    assert!(q.url.ends_with("outbound.fifo") && q.dlq_url.ends_with("outbound-dlq.fifo"));
    let attrs = |url: String| {
        let client = q.client.clone();
        async move {
            client
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()
        }
    };
    let main = attrs(q.url.clone()).await;
    let policy: serde_json::Value =
        serde_json::from_str(&main[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(
        policy["maxReceiveCount"].as_u64(),
        Some(u64::from(FifoQueueSpec::outbound().max_receive_count))
    );
    assert!(
        policy["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with("outbound-dlq.fifo")
    );
    assert_eq!(
        main[&QueueAttributeName::ContentBasedDeduplication],
        "false"
    );
    assert_eq!(main[&QueueAttributeName::VisibilityTimeout], "60");
    let dlq = attrs(q.dlq_url.clone()).await;
    assert_eq!(dlq[&QueueAttributeName::MessageRetentionPeriod], "1209600");
    assert_eq!(dlq[&QueueAttributeName::FifoQueue], "true");

    // The old entry point still makes the inbound pair, and creating again returns it.
    let client = Client::new(&moto_config().await);
    let prefix = format!("{}-", unique_name("v-"));
    let first = wa_sqs::create_fifo_queue_with_dlq(&client, &prefix)
        .await
        .unwrap();
    assert!(first.0.ends_with("inbound.fifo") && first.1.ends_with("inbound-dlq.fifo"));
    let again = wa_sqs::create_fifo_queue_with_dlq(&client, &prefix)
        .await
        .unwrap();
    assert_eq!(first, again);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn an_enqueued_job_carries_its_group_dedup_id_and_envelope() {
    let q = fresh_outbound_queue().await;
    let j = job(1, GROUP_A);
    q.queue.enqueue(&j).await.unwrap();

    let got = receive(&q.client, &q.url, 10, 1).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(group(m), GROUP_A);
    assert_eq!(
        attribute(m, MessageSystemAttributeName::MessageDeduplicationId),
        j.send_id.as_str()
    );
    assert_eq!(
        body(m),
        format!(
            r#"{{"schema_version":1,"send_id":"{}","group":"{GROUP_A}"}}"#,
            j.send_id.as_str()
        )
    );
    assert_eq!(decode_job(body(m)).unwrap(), j);
    let s = q.queue.metrics().snapshot();
    assert_eq!((s.requests, s.messages, s.failed_entries), (1, 1, 0));
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_group_sqs_would_refuse_is_hashed_but_kept_in_the_envelope() {
    let q = fresh_outbound_queue().await;
    let odd = format!("106540352242922:g:{}", "grupo de ventas ".repeat(10));
    let j = job(1, &odd);
    q.queue.enqueue(&j).await.unwrap();
    let got = receive(&q.client, &q.url, 10, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(group(&got[0]), wa_sqs::sqs_id(&odd));
    assert!(wa_sqs::is_valid_sqs_id(&group(&got[0])));
    assert_eq!(decode_job(body(&got[0])).unwrap().group, odd);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_send_enqueued_twice_within_the_dedup_window_is_received_once() {
    let q = fresh_outbound_queue().await;
    let j = job(1, GROUP_A);
    q.queue.enqueue(&j).await.unwrap();
    q.queue.enqueue(&j).await.unwrap();
    let got = drain(&q.client, &q.url).await;
    assert_eq!(got.len(), 1);
    assert_eq!(decode_job(body(&got[0])).unwrap(), j);
    // Both requests succeeded; SQS kept one message.
    assert_eq!(q.queue.metrics().snapshot().messages, 2);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn groups_are_independent_and_each_keeps_its_order() {
    let q = fresh_outbound_queue().await;
    let a: Vec<SendJob> = (1..=3).map(|n| job(n, GROUP_A)).collect();
    let b = job(9, GROUP_B);
    for j in &a {
        q.queue.enqueue(j).await.unwrap();
    }
    q.queue.enqueue(&b).await.unwrap();

    // The first of A is in flight: A's later sends wait, B's does not.
    let first = receive(&q.client, &q.url, 1, 1).await;
    assert_eq!(decode_job(body(&first[0])).unwrap(), a[0]);
    let next = receive(&q.client, &q.url, 10, 1).await;
    assert_eq!(
        next.iter()
            .map(|m| decode_job(body(m)).unwrap())
            .collect::<Vec<_>>(),
        vec![b.clone()],
        "only the other group is served while A's head is in flight"
    );
    delete(&q.client, &q.url, &first[0]).await;
    delete(&q.client, &q.url, &next[0]).await;

    let rest = drain(&q.client, &q.url).await;
    assert_eq!(
        ids_in(&rest, GROUP_A),
        vec![a[1].send_id.clone(), a[2].send_id.clone()]
    );
    assert_eq!(rest.len(), 2);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn defer_hides_the_message_for_about_the_delay() {
    let q = fresh_outbound_queue().await;
    let j = job(1, GROUP_A);
    q.queue.enqueue(&j).await.unwrap();
    let got = receive(&q.client, &q.url, 10, 1).await;
    let handle = got[0].receipt_handle().unwrap();

    let deferred_at = Instant::now();
    assert_eq!(q.control.defer(handle, 1_500).await.unwrap(), 2);
    // The queue's own visibility timeout is 60 s: only the deferral can bring it back soon.
    assert!(
        receive(&q.client, &q.url, 10, 1).await.is_empty(),
        "invisible right after the deferral"
    );
    let mut again = Vec::new();
    while again.is_empty() && deferred_at.elapsed() < Duration::from_secs(6) {
        again = receive(&q.client, &q.url, 10, 1).await;
    }
    let waited = deferred_at.elapsed();
    assert_eq!(again.len(), 1, "visible again after the delay");
    assert!(
        waited >= Duration::from_millis(1_800) && waited < Duration::from_secs(5),
        "came back after {waited:?}"
    );
    assert_eq!(decode_job(body(&again[0])).unwrap(), j);
    assert_eq!(
        attribute(
            &again[0],
            MessageSystemAttributeName::ApproximateReceiveCount
        ),
        "2"
    );

    // A deferral of zero (or less) makes it visible at once.
    assert_eq!(
        q.control
            .defer(again[0].receipt_handle().unwrap(), -10)
            .await
            .unwrap(),
        0
    );
    let third = receive(&q.client, &q.url, 10, 0).await;
    assert_eq!(third.len(), 1);

    // Once deleted, its handle no longer names a message in flight.
    delete(&q.client, &q.url, &third[0]).await;
    let err = q
        .control
        .defer(third[0].receipt_handle().unwrap(), 1_000)
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::NotInFlight(_)), "{err:?}");
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn dead_letter_puts_a_copy_in_the_dlq_with_the_reason() {
    let q = fresh_outbound_queue().await;
    let j = job(1, GROUP_A);
    q.queue.enqueue(&j).await.unwrap();
    let got = receive(&q.client, &q.url, 10, 1).await;
    let reason = format!(
        "gave up after 5 attempts: code 131000 ({})",
        "x".repeat(3000)
    );
    q.control
        .dead_letter(body(&got[0]), &j.group, &reason)
        .await
        .unwrap();
    // The caller acknowledges the original (the event source mapping deletes it).
    delete(&q.client, &q.url, &got[0]).await;

    let dead = receive(&q.client, &q.dlq_url, 10, 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(body(&dead[0]), body(&got[0]));
    assert_eq!(group(&dead[0]), GROUP_A);
    let stored = dead[0].message_attributes().unwrap()[REASON_ATTRIBUTE]
        .string_value()
        .unwrap();
    assert!(stored.starts_with("gave up after 5 attempts: code 131000 (xxx"));
    assert_eq!(stored.len(), wa_sqs::MAX_REASON_BYTES);
    assert_ne!(
        attribute(&dead[0], MessageSystemAttributeName::MessageDeduplicationId),
        j.send_id.as_str(),
        "a fresh deduplication id"
    );
    assert!(drain(&q.client, &q.url).await.is_empty());
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn redrive_moves_everything_back_in_group_order_even_within_the_dedup_window() {
    let q = fresh_outbound_queue().await;
    let jobs = vec![
        job(1, GROUP_A),
        job(2, GROUP_A),
        job(3, GROUP_A),
        job(4, GROUP_B),
    ];
    dead_letter_all(&q, &jobs).await;
    assert_eq!(counts(&q.client, &q.dlq_url).await, (4, 0));

    // Seconds after their first enqueue: a redrive under the send id would be swallowed.
    let report = redrive(&q.client, &q.dlq_url, &q.url, 100).await.unwrap();
    assert_eq!(report.moved.len(), 4);
    assert!(report.not_deleted.is_empty());
    let moved: HashMap<SendId, (Option<String>, Option<String>)> = report
        .moved
        .iter()
        .map(|r| {
            (
                decode_job(&r.body).unwrap().send_id,
                (r.group.clone(), r.reason.clone()),
            )
        })
        .collect();
    for (n, j) in jobs.iter().enumerate() {
        assert_eq!(
            moved[&j.send_id],
            (Some(j.group.clone()), Some(format!("why {n}")))
        );
    }
    let order_a: Vec<SendId> = report
        .moved
        .iter()
        .filter(|r| r.group.as_deref() == Some(GROUP_A))
        .map(|r| decode_job(&r.body).unwrap().send_id)
        .collect();
    assert_eq!(
        order_a,
        jobs[..3]
            .iter()
            .map(|j| j.send_id.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(counts(&q.client, &q.dlq_url).await, (0, 0));

    let back = drain(&q.client, &q.url).await;
    assert_eq!(back.len(), 4, "every redriven message is received again");
    assert_eq!(
        ids_in(&back, GROUP_A),
        jobs[..3]
            .iter()
            .map(|j| j.send_id.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(ids_in(&back, GROUP_B), vec![jobs[3].send_id.clone()]);
    assert!(
        back.iter().all(|m| m
            .message_attributes()
            .is_none_or(|a| !a.contains_key(REASON_ATTRIBUTE))),
        "the reason stays behind"
    );
    // SQS remembers the first enqueue's deduplication id (the send id) for five minutes,
    // deleted or not; moto forgets it once the message is deleted, so check the ids.
    for m in &back {
        let dedup = attribute(m, MessageSystemAttributeName::MessageDeduplicationId);
        assert_ne!(dedup, decode_job(body(m)).unwrap().send_id.as_str());
    }
    // Nothing is left anywhere.
    assert!(
        redrive(&q.client, &q.dlq_url, &q.url, 100)
            .await
            .unwrap()
            .moved
            .is_empty()
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn redrive_moves_at_most_max() {
    let q = fresh_outbound_queue().await;
    let jobs: Vec<SendJob> = (1..=3).map(|n| job(n, GROUP_A)).collect();
    dead_letter_all(&q, &jobs).await;

    let first = redrive(&q.client, &q.dlq_url, &q.url, 2).await.unwrap();
    assert_eq!(
        first
            .moved
            .iter()
            .map(|r| decode_job(&r.body).unwrap())
            .collect::<Vec<_>>(),
        jobs[..2].to_vec()
    );
    assert_eq!(counts(&q.client, &q.dlq_url).await.0, 1);
    let rest = redrive(&q.client, &q.dlq_url, &q.url, 2).await.unwrap();
    assert_eq!(rest.moved.len(), 1);
    assert_eq!(decode_job(&rest.moved[0].body).unwrap(), jobs[2]);
    assert_eq!(
        ids_in(&drain(&q.client, &q.url).await, GROUP_A),
        jobs.iter().map(|j| j.send_id.clone()).collect::<Vec<_>>()
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn redrive_works_for_the_inbound_queue_too() {
    let q = fresh_inbound_queue().await;
    // What SQS's own redrive policy leaves in the DLQ: the bodies, no reason.
    for n in 0..2 {
        q.client
            .send_message()
            .queue_url(&q.dlq_url)
            .message_body(format!(r#"{{"schema_version":1,"event":{{"n":{n}}}}}"#))
            .message_group_id("106540352242922:US.1")
            .message_deduplication_id(format!("message:wamid.{n}"))
            .send()
            .await
            .unwrap();
    }
    let report = redrive(&q.client, &q.dlq_url, &q.url, 10).await.unwrap();
    assert_eq!(report.moved.len(), 2);
    assert!(report.moved.iter().all(|r| r.reason.is_none()));
    let back = drain(&q.client, &q.url).await;
    assert_eq!(
        back.iter().map(|m| body(m).to_owned()).collect::<Vec<_>>(),
        [0, 1]
            .map(|n| format!(r#"{{"schema_version":1,"event":{{"n":{n}}}}}"#))
            .to_vec()
    );
    assert!(back.iter().all(|m| group(m) == "106540352242922:US.1"));
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn a_requeue_with_a_dedup_suffix_is_not_swallowed() {
    // moto remembers deduplication ids only while their message is in the queue (SQS does
    // for five minutes, deleted or not), so the first copy stays queued here.
    let q = fresh_outbound_queue().await;
    let j = job(1, GROUP_A);
    q.queue.enqueue(&j).await.unwrap();
    q.queue.enqueue(&j).await.unwrap();
    q.queue.enqueue_with_dedup_suffix(&j, "r1").await.unwrap();
    q.queue.enqueue_with_dedup_suffix(&j, "r1").await.unwrap();
    q.queue.enqueue_with_dedup_suffix(&j, "r2").await.unwrap();
    let got = drain(&q.client, &q.url).await;
    assert_eq!(
        got.iter()
            .map(|m| attribute(m, MessageSystemAttributeName::MessageDeduplicationId))
            .collect::<Vec<_>>(),
        [
            j.send_id.as_str().to_owned(),
            format!("{}.r1", j.send_id.as_str()),
            format!("{}.r2", j.send_id.as_str())
        ],
        "one message per deduplication id"
    );
    assert!(got.iter().all(|m| decode_job(body(m)).unwrap() == j));
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL (make test)"]
async fn undecodable_bodies_give_a_typed_error() {
    let q = fresh_outbound_queue().await;
    let v2 = encode_job(&job(1, GROUP_A))
        .unwrap()
        .replace(r#""schema_version":1"#, r#""schema_version":2"#);
    for (n, b) in ["not json", r#"{"schema_version":1,"event":{}}"#, &v2]
        .into_iter()
        .enumerate()
    {
        q.client
            .send_message()
            .queue_url(&q.url)
            .message_body(b)
            .message_group_id(GROUP_A)
            .message_deduplication_id(format!("bad-{n}"))
            .send()
            .await
            .unwrap();
    }
    let got = drain(&q.client, &q.url).await;
    let errors: Vec<JobError> = got
        .iter()
        .map(|m| decode_job(body(m)).unwrap_err())
        .collect();
    assert!(matches!(errors[0], JobError::Json(_)), "{errors:?}");
    assert!(matches!(errors[1], JobError::MissingSendId), "{errors:?}");
    assert!(
        matches!(errors[2], JobError::UnknownSchemaVersion(2)),
        "{errors:?}"
    );
}

#[tokio::test]
async fn an_unreachable_queue_fails_after_retries() {
    let client = Client::new(&unreachable_config().await);
    let url = "http://127.0.0.1:9/123456789012/v-outbound.fifo";
    let queue = SqsOutboundQueue::new(client.clone(), url);
    let err = queue.enqueue(&job(1, GROUP_A)).await.unwrap_err();
    assert!(matches!(err, QueueError::Unavailable(_)), "{err:?}");
    let s = queue.metrics().snapshot();
    assert!(s.requests > 1, "a failed send is retried: {s:?}");
    assert_eq!((s.failed_entries, s.messages), (s.requests, 0));

    let control = OutboundControl::new(client, url, "http://127.0.0.1:9/1/v-outbound-dlq.fifo");
    let err = control.dead_letter("{}", GROUP_A, "why").await.unwrap_err();
    assert!(matches!(err, ControlError::DeadLetter(_)), "{err:?}");
    let err = control.defer("handle", 1_000).await.unwrap_err();
    assert!(matches!(err, ControlError::Defer(_)), "{err:?}");
}
