use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::broadcast::LimitStore;
use crate::broadcast::limit::charge_one;
use crate::customer::{CustomerKey, CustomerRef};
use crate::event::InboundEvent;
use crate::model::MessagingLimit;
use crate::outbound::{SendId, TransportFailure, public_status};
use crate::pacing::memory::InMemoryPacingStore;
use crate::pacing::pair::PairDecision;
use crate::ports::{Consent, ConsentRecord, ConsentSource, SendJob};
use crate::status::DeliveryStatus;
use crate::templates::{
    RefusalKind, TemplateCategory, TemplateDef, TemplateStatus, TemplateStore, Verdict, check_send,
};
use crate::testing::{InMemoryStore, ManualClock, ScriptedGraph};
use crate::window::WindowUpdate;

const PNID: &str = "106540352242922";
const PHONE: &str = "5511999990000";
const T0: i64 = 1_795_420_800_000;

type Engine = Deliverer<
    InMemoryStore,
    Arc<InMemoryPacingStore>,
    Arc<InMemoryPacingStore>,
    ScriptedGraph,
    ManualClock,
>;

fn engine_with(config: DeliverConfig) -> Engine {
    engine_over(Arc::new(InMemoryPacingStore::default()), config)
}

/// An engine whose pacing store (counters, pair states, brakes) is `pacing`: two engines over
/// one are two worker processes of one deployment (each with its own sends here).
fn engine_over(pacing: Arc<InMemoryPacingStore>, config: DeliverConfig) -> Engine {
    Deliverer::new(
        InMemoryStore::default(),
        pacing.clone(),
        pacing,
        ScriptedGraph::default(),
        ManualClock::at(T0),
        config,
        PacerConfig::default(),
        PairPolicy::default(),
        7,
    )
}

fn engine() -> Engine {
    engine_with(DeliverConfig::default())
}

fn customer(phone: &str) -> (CustomerKey, CustomerRef) {
    (
        CustomerKey::Phone(phone.into()),
        CustomerRef::new(None, Some(phone)).unwrap(),
    )
}

/// A customer of `phone` who wrote a minute ago.
async fn wrote(e: &Engine, phone: &str) {
    let (key, who) = customer(phone);
    let at = e.clock().now_ms() / 1000 - 60;
    e.store()
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

/// A pending send stored as send-api would.
async fn queued(e: &Engine, phone: &str, kind: SendKind, n: u8) -> SendJob {
    let (key, who) = customer(phone);
    let (message_type, body) = match kind {
        SendKind::Template => (
            "template",
            json!({"messaging_product": "whatsapp", "to": phone, "type": "template",
                   "template": {"name": "hello", "language": {"code": "en"}}}),
        ),
        _ => (
            "text",
            json!({"messaging_product": "whatsapp", "to": phone, "type": "text", "text": {"body": "hi"}}),
        ),
    };
    let now_ms = e.clock().now_ms();
    let r = SendRecord {
        customer: Some(key),
        who: Some(who),
        message_type: message_type.into(),
        body,
        ..SendRecord::pending(
            SendId::new(now_ms, [n; 10]),
            PNID,
            kind,
            now_ms,
            now_ms / 1000 + 86_400,
        )
    };
    e.store().create_send(&r, 0).await.unwrap();
    SendJob::for_send(&r)
}

fn rejected(http_status: u16, code: i64) -> GraphOutcome {
    GraphOutcome::Rejected {
        http_status,
        code,
        subcode: None,
        message: format!("error {code}"),
        details: None,
        fbtrace_id: None,
    }
}

async fn deliver(e: &Engine, job: &SendJob) -> JobOutcome {
    e.deliver(job, 1).await.unwrap()
}

fn send(e: &Engine, job: &SendJob) -> SendRecord {
    e.store().send(&job.send_id).unwrap()
}

#[tokio::test]
async fn an_accepted_send_records_its_wamid_and_enters_the_history() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    let posted = e.graph().posted();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].0, PNID);
    assert_eq!(
        posted[0].1["biz_opaque_callback_data"],
        job.send_id.as_str()
    );
    assert_eq!(posted[0].1["text"]["body"], "hi");
    let r = send(&e, &job);
    assert_eq!(r.wamid.as_deref(), Some("wamid.1"));
    assert!(matches!(
        r.state,
        SendState::Accepted {
            by_webhook: false,
            ..
        }
    ));
    assert_eq!(r.attempts, 1);
    let m = e.store().message("wamid.1").unwrap();
    assert_eq!(m.id, job.send_id.as_str());
    assert_eq!(m.direction, Direction::Outbound);

    // SQS delivers the same message again: nothing is posted twice.
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    assert_eq!(e.graph().posted().len(), 1);
}

/// The status webhook Meta posts for a send (its callback data is the send's id).
fn receipt(id: &SendId, wamid: &str, status: &str, at_secs: i64, extra: &str) -> InboundEvent {
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550001234","phone_number_id":"{PNID}"}},"statuses":[{{"id":"{wamid}","status":"{status}","timestamp":"{at_secs}","recipient_id":"{PHONE}","biz_opaque_callback_data":"{id}"{extra}}}]}}}}]}}]}}"#
    );
    let mut events = crate::webhook::split(body.as_bytes()).unwrap();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

async fn apply(e: &Engine, ev: &InboundEvent) {
    let cfg = crate::inbound::InboundConfig::default();
    crate::inbound::apply(e.store(), ev, &cfg, T0 / 1000)
        .await
        .unwrap();
}

#[tokio::test]
async fn receipts_of_an_accepted_send_are_written_to_the_send_and_shown_in_its_history() {
    use crate::ports::ConversationReader;
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    let at = T0 / 1000;
    let pricing = r#","pricing":{"billable":true,"category":"service"}"#;
    for (status, t) in [("sent", at + 1), ("read", at + 3), ("delivered", at + 2)] {
        apply(&e, &receipt(&job.send_id, "wamid.1", status, t, pricing)).await;
    }
    // On the send only: the history record (whose every write rewrites its index entry in
    // the adapter) is left alone.
    assert_eq!(e.store().delivery("wamid.1"), None);
    let r = send(&e, &job);
    assert_eq!(r.statuses.current(), Some(DeliveryStatus::Read));
    assert_eq!(r.statuses.at(DeliveryStatus::Sent), Some(at + 1));
    assert_eq!(
        r.pricing.as_deref(),
        Some(r#"{"billable":true,"category":"service"}"#)
    );
    // The history shows them all the same.
    let (key, _) = customer(PHONE);
    let page = e.store().history(PNID, &key, 10, None).await.unwrap();
    let item = page
        .items
        .iter()
        .find(|i| i.message.wamid == "wamid.1")
        .unwrap();
    let d = item.delivery.as_ref().unwrap();
    assert_eq!(d.current(), Some(DeliveryStatus::Read));
    assert_eq!(d.history.at(DeliveryStatus::Delivered), Some(at + 2));

    // A replay of an earlier receipt writes nothing to the send, and changes nothing.
    let version = send(&e, &job).version;
    apply(&e, &receipt(&job.send_id, "wamid.1", "sent", at + 1, "")).await;
    assert_eq!(send(&e, &job).version, version);
    assert_eq!(
        send(&e, &job).statuses.at(DeliveryStatus::Sent),
        Some(at + 1)
    );

    // A failure goes the long way: the send fails with Meta's error, the record keeps it.
    let failed = r#","errors":[{"code":131026,"title":"Message undeliverable"}]"#;
    apply(
        &e,
        &receipt(&job.send_id, "wamid.1", "failed", at + 4, failed),
    )
    .await;
    assert_eq!(public_status(&send(&e, &job)), "failed");
    let d = e.store().delivery("wamid.1").unwrap();
    assert_eq!(d.error, Some((131_026, "Message undeliverable".into())));
}

#[tokio::test]
async fn a_receipt_before_the_worker_saved_the_send_accepts_it_and_enters_the_history() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    // Meta's `sent` arrives while the send is still pending here (the worker's save lost
    // the race): the send is accepted by the webhook and its history record written.
    apply(
        &e,
        &receipt(&job.send_id, "wamid.early", "sent", T0 / 1000, ""),
    )
    .await;
    let r = send(&e, &job);
    assert_eq!(r.wamid.as_deref(), Some("wamid.early"));
    assert!(matches!(
        r.state,
        SendState::Accepted {
            by_webhook: true,
            ..
        }
    ));
    assert_eq!(r.statuses.current(), Some(DeliveryStatus::Sent));
    assert!(e.store().message("wamid.early").is_some());
}

#[tokio::test]
async fn throughput_errors_are_retried_with_backoff_then_dead_lettered_with_the_reason() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    e.graph().answer((0..5).map(|_| rejected(400, 130_429)));
    let mut delays = Vec::new();
    for _ in 0..4 {
        match deliver(&e, &job).await {
            JobOutcome::Defer { delay_ms } => delays.push(delay_ms),
            other => panic!("expected a deferral, got {other:?}"),
        }
        let r = send(&e, &job);
        assert!(matches!(r.state, SendState::Pending { .. }));
        assert_eq!(r.error.as_ref().unwrap().code, 130_429);
        // Too early: deferred again without a post.
        let posted = e.graph().posted().len();
        assert!(matches!(deliver(&e, &job).await, JobOutcome::Defer { .. }));
        assert_eq!(e.graph().posted().len(), posted);
        e.clock().advance(delays[delays.len() - 1]);
    }
    // Each backoff at least doubles the last.
    assert!(delays.windows(2).all(|w| w[1] >= w[0] * 2), "{delays:?}");
    match deliver(&e, &job).await {
        JobOutcome::DeadLetter { reason } => {
            assert!(reason.contains("5 attempts"), "{reason}");
            assert!(reason.contains("130429"), "{reason}");
        }
        other => panic!("expected the DLQ, got {other:?}"),
    }
    assert_eq!(send(&e, &job).state, SendState::DeadLettered);
    assert_eq!(e.graph().posted().len(), 5);
}

#[tokio::test]
async fn server_errors_and_refused_connections_are_retried() {
    for outcome in [
        rejected(500, 131_000),
        rejected(400, 131_057),
        rejected(503, 0),
        GraphOutcome::Transport(TransportFailure::ConnectFailed),
    ] {
        let e = engine();
        wrote(&e, PHONE).await;
        let job = queued(&e, PHONE, SendKind::Session, 1).await;
        e.graph().answer([outcome.clone()]);
        let JobOutcome::Defer { delay_ms } = deliver(&e, &job).await else {
            panic!("{outcome:?} should be retried");
        };
        e.clock().advance(delay_ms);
        assert_eq!(deliver(&e, &job).await, JobOutcome::Done, "{outcome:?}");
        assert_eq!(e.graph().posted().len(), 2);
        assert!(send(&e, &job).wamid.is_some());
    }
}

/// Two workers of one deployment (one pacing store) whose numbers send 80 a second.
fn two_workers_at_80() -> (Engine, Engine) {
    let config = DeliverConfig {
        default_limit: 80,
        ..DeliverConfig::default()
    };
    let pacing = Arc::new(InMemoryPacingStore::default());
    (
        engine_over(pacing.clone(), config.clone()),
        engine_over(pacing, config),
    )
}

#[tokio::test]
async fn throughput_and_maintenance_errors_halve_the_numbers_rate_in_every_worker() {
    let (e, other_worker) = two_workers_at_80();
    assert_eq!(e.brakes_of(PNID, T0).await.limit(80, T0), 80);
    wrote(&e, PHONE).await;
    for (n, code) in [(1, 130_429), (2, 131_057)] {
        let job = queued(&e, PHONE, SendKind::Session, n).await;
        e.graph().answer([rejected(400, code)]);
        assert!(matches!(deliver(&e, &job).await, JobOutcome::Defer { .. }));
        let now = e.clock().now_ms();
        assert_eq!(e.brakes_of(PNID, now).await.limit(80, now), 40, "{code}");
        // The other worker reads the number's brakes from the shared store.
        let seen = other_worker.brakes_of(PNID, now).await;
        assert_eq!(seen.limit(80, now), 40, "{code}");
        assert_eq!(seen.limit(80, now + 60_001), 80);
        assert_eq!(
            other_worker.brakes_of("other", now).await.limit(80, now),
            80
        );
        e.clock().advance(60_001);
        other_worker.clock().advance(60_001);
    }
}

#[tokio::test]
async fn a_worker_learns_another_ones_slow_down_within_the_freshness_of_its_copy() {
    let (e, other_worker) = two_workers_at_80();
    // The other worker has just read the number's brakes: none.
    assert_eq!(other_worker.brakes_of(PNID, T0).await.limit(80, T0), 80);
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    e.graph().answer([rejected(400, 130_429)]);
    assert!(matches!(deliver(&e, &job).await, JobOutcome::Defer { .. }));
    // Its copy is still fresh: it keeps the full rate until the copy is BRAKES_FRESH_MS old.
    let fresh = T0 + BRAKES_FRESH_MS - 1;
    assert_eq!(
        other_worker.brakes_of(PNID, fresh).await.limit(80, fresh),
        80
    );
    let stale = T0 + BRAKES_FRESH_MS;
    assert_eq!(
        other_worker.brakes_of(PNID, stale).await.limit(80, stale),
        40
    );
}

#[tokio::test]
async fn after_a_stop_sending_code_every_worker_holds_the_number_back() {
    let pacing = Arc::new(InMemoryPacingStore::default());
    let e = engine_over(pacing.clone(), DeliverConfig::default());
    let other_worker = engine_over(pacing.clone(), DeliverConfig::default());
    wrote(&e, PHONE).await;
    wrote(&other_worker, PHONE).await;
    let first = queued(&e, PHONE, SendKind::Session, 1).await;
    let elsewhere = queued(&other_worker, PHONE, SendKind::Session, 2).await;
    e.graph().answer([rejected(401, 190)]);
    assert!(matches!(
        deliver(&e, &first).await,
        JobOutcome::StopSending { code: 190, .. }
    ));
    // The other worker's send for the number is dead-lettered (redrivable) without a post.
    let JobOutcome::DeadLetter { reason } = deliver(&other_worker, &elsewhere).await else {
        panic!("held back in the other worker too");
    };
    assert!(reason.contains("190"), "{reason}");
    assert!(other_worker.graph().posted().is_empty());
    // A store that cannot be read leaves the worker with the copy it has: still held.
    pacing.set_failing(true);
    let now = other_worker.clock().now_ms() + BRAKES_FRESH_MS;
    assert_eq!(other_worker.brakes_of(PNID, now).await.held(now), Some(190));
    pacing.set_failing(false);
    // Once the hold is over, it asks Meta again.
    let later = queued(&other_worker, PHONE, SendKind::Session, 3).await;
    other_worker
        .clock()
        .advance(DeliverConfig::default().stop_hold_ms);
    assert_eq!(deliver(&other_worker, &later).await, JobOutcome::Done);
    assert_eq!(other_worker.graph().posted().len(), 1);
}

#[tokio::test]
async fn pair_rate_errors_hold_the_recipient_four_to_the_n_seconds() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    e.graph()
        .answer([rejected(400, 131_056), rejected(400, 131_056)]);
    let JobOutcome::Defer { delay_ms: first } = deliver(&e, &job).await else {
        panic!("131056 should defer");
    };
    assert!((1_000..=1_100).contains(&first), "{first}");
    e.clock().advance(first);
    let JobOutcome::Defer { delay_ms: second } = deliver(&e, &job).await else {
        panic!("131056 should defer");
    };
    assert!((4_000..=4_100).contains(&second), "{second}");
    e.clock().advance(second);
    // After a block the recipient has no burst left: the pair spacing may add a little.
    let mut waited = 0;
    while let JobOutcome::Defer { delay_ms } = deliver(&e, &job).await {
        assert!(delay_ms <= 6_000, "{delay_ms}");
        waited += delay_ms;
        e.clock().advance(delay_ms);
        assert!(waited <= 6_000);
    }
    assert_eq!(send(&e, &job).attempts, 3);
    assert_eq!(e.graph().posted().len(), 3);
}

#[tokio::test]
async fn permanent_errors_are_recorded_and_never_retried() {
    for code in [131_047, 131_026, 131_048, 131_049, 132_000, 132_012, 100] {
        let e = engine();
        wrote(&e, PHONE).await;
        let job = queued(&e, PHONE, SendKind::Session, 1).await;
        e.graph().answer([rejected(400, code)]);
        assert_eq!(deliver(&e, &job).await, JobOutcome::Done, "{code}");
        let r = send(&e, &job);
        assert_eq!(r.state, SendState::Failed, "{code}");
        assert_eq!(r.error.as_ref().unwrap().code, code);
        assert_eq!(public_status(&r), "failed");
        // Delivered again by the queue: still not posted again.
        e.clock().advance(3_600_000);
        assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
        assert_eq!(e.graph().posted().len(), 1, "{code}");
    }
}

#[tokio::test]
async fn a_131050_records_the_opt_out_so_nothing_else_goes() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Template, 1).await;
    e.graph().answer([rejected(400, 131_050)]);
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    assert_eq!(send(&e, &job).error.unwrap().code, 131_050);
    let (key, _) = customer(PHONE);
    let c = e.store().consent_of(PNID, &key, "marketing").unwrap();
    assert_eq!(c.consent, Consent::OptedOut);
    assert_eq!(c.source, ConsentSource::Error131050);
    // The next template to them is failed at dequeue, not posted.
    let next = queued(&e, PHONE, SendKind::Template, 2).await;
    assert_eq!(deliver(&e, &next).await, JobOutcome::Done);
    assert_eq!(send(&e, &next).error.unwrap().code, 131_050);
    assert_eq!(e.graph().posted().len(), 1);
}

#[tokio::test]
async fn a_timeout_after_sending_waits_for_a_status_webhook_before_any_resend() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    e.graph()
        .answer([GraphOutcome::Transport(TransportFailure::TimedOutAfterSend)]);
    let JobOutcome::Defer { delay_ms } = deliver(&e, &job).await else {
        panic!("unconfirmed should defer");
    };
    assert_eq!(delay_ms, e.config().unconfirmed_grace_ms);
    assert_eq!(public_status(&send(&e, &job)), "unconfirmed");
    // Redelivered early: no resend.
    e.clock().advance(1_000);
    assert!(matches!(deliver(&e, &job).await, JobOutcome::Defer { .. }));
    assert_eq!(e.graph().posted().len(), 1);
    // The status webhook arrives (as inbound-processor applies it).
    let mut r = send(&e, &job);
    r.apply_status(
        "wamid.meta",
        DeliveryStatus::Sent,
        T0 / 1000,
        None,
        e.clock().now_ms(),
    );
    assert!(e.store().save_send(&mut r).await.unwrap());
    e.clock().advance(delay_ms);
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    assert_eq!(
        e.graph().posted().len(),
        1,
        "confirmed by webhook: never resent"
    );
    assert_eq!(send(&e, &job).wamid.as_deref(), Some("wamid.meta"));
}

#[tokio::test]
async fn an_unconfirmed_send_is_resent_once_then_dead_lettered() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    let timeout = GraphOutcome::Transport(TransportFailure::TimedOutAfterSend);
    e.graph().answer([timeout.clone(), timeout]);
    let JobOutcome::Defer { delay_ms } = deliver(&e, &job).await else {
        panic!()
    };
    e.clock().advance(delay_ms);
    // No webhook came: one resend.
    let JobOutcome::Defer { delay_ms } = deliver(&e, &job).await else {
        panic!()
    };
    assert_eq!(e.graph().posted().len(), 2);
    e.clock().advance(delay_ms);
    let JobOutcome::DeadLetter { reason } = deliver(&e, &job).await else {
        panic!()
    };
    assert!(reason.contains("unconfirmed"), "{reason}");
    assert_eq!(e.graph().posted().len(), 2);
    let r = send(&e, &job);
    assert_eq!(r.state, SendState::DeadLettered);
    assert!(r.error.unwrap().message.contains("may have been delivered"));
}

#[tokio::test]
async fn a_worker_that_died_mid_call_leaves_an_unconfirmed_send() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    // A claim that was never settled (the worker crashed after posting, say).
    let mut r = send(&e, &job);
    r.claim(T0 + 30_000, false);
    assert!(e.store().save_send(&mut r).await.unwrap());
    // While the lease lasts, another delivery waits.
    assert_eq!(
        deliver(&e, &job).await,
        JobOutcome::Defer { delay_ms: 30_000 }
    );
    e.clock().advance(30_000);
    let JobOutcome::Defer { delay_ms } = deliver(&e, &job).await else {
        panic!()
    };
    assert_eq!(public_status(&send(&e, &job)), "unconfirmed");
    assert!(e.graph().posted().is_empty());
    e.clock().advance(delay_ms);
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    assert_eq!(e.graph().posted().len(), 1);
}

#[tokio::test]
async fn the_window_is_checked_again_at_dequeue() {
    let e = engine_with(DeliverConfig {
        window_margin_secs: 60,
        ..DeliverConfig::default()
    });
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    // 24 h later the window has closed.
    e.clock().advance(24 * 3_600_000);
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    let r = send(&e, &job);
    assert_eq!(r.state, SendState::Failed);
    assert_eq!(r.error.unwrap().code, 131_047);
    assert!(e.graph().posted().is_empty());
}

#[tokio::test]
async fn a_kept_fallback_goes_out_when_the_window_closed_before_dequeue() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    let mut r = send(&e, &job);
    r.fallback = Some(
        json!({"messaging_product": "whatsapp", "to": PHONE, "type": "template",
                             "template": {"name": "hello", "language": {"code": "en"}}}),
    );
    assert!(e.store().save_send(&mut r).await.unwrap());
    e.clock().advance(24 * 3_600_000);
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    let posted = e.graph().posted();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].1["type"], "template");
    assert_eq!(
        posted[0].1["biz_opaque_callback_data"],
        job.send_id.as_str()
    );
    assert_eq!(send(&e, &job).message_type, "template");
    assert!(
        charged(&e, PHONE).await,
        "the fallback is business-initiated"
    );
}

#[tokio::test]
async fn an_opt_out_after_queuing_stops_the_send_at_dequeue() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    let (key, _) = customer(PHONE);
    e.store()
        .record_consent(&ConsentRecord {
            phone_number_id: PNID.into(),
            customer: key,
            scope: "all".into(),
            consent: Consent::OptedOut,
            source: ConsentSource::Keyword,
            at: T0 / 1000,
            detail: None,
        })
        .await
        .unwrap();
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    assert_eq!(send(&e, &job).error.unwrap().code, 131_050);
    assert!(e.graph().posted().is_empty());
}

#[tokio::test]
async fn a_marketing_opt_out_stops_marketing_templates_at_dequeue_but_not_utility_ones() {
    let e = engine();
    let (a, b) = ("5511999990001", "5511999990002");
    let first = queued(&e, a, SendKind::Template, 1).await;
    let second = queued(&e, b, SendKind::Template, 2).await;
    for phone in [a, b] {
        e.store()
            .record_consent(&ConsentRecord {
                phone_number_id: PNID.into(),
                customer: customer(phone).0,
                scope: "marketing".into(),
                consent: Consent::OptedOut,
                source: ConsentSource::UserPreferences,
                at: T0 / 1000,
                detail: None,
            })
            .await
            .unwrap();
    }
    // While `hello` is not known, it is held to the marketing opt-out.
    assert_eq!(deliver(&e, &first).await, JobOutcome::Done);
    assert_eq!(send(&e, &first).error.unwrap().code, 131_050);
    // Once the registry says it is a utility template, it goes.
    e.store().set_waba(PNID, "WABA1");
    registered(&e, "hello", TemplateStatus::Approved).await;
    assert_eq!(deliver(&e, &second).await, JobOutcome::Done);
    assert_eq!(e.graph().posted().len(), 1, "the utility template went out");
    assert_eq!(e.graph().posted()[0].1["to"], b);
}

#[tokio::test]
async fn an_unknown_send_goes_to_the_dlq_with_its_reason() {
    let e = engine();
    let job = SendJob {
        send_id: SendId::new(T0, [9; 10]),
        group: "x".into(),
    };
    let JobOutcome::DeadLetter { reason } = deliver(&e, &job).await else {
        panic!()
    };
    assert!(reason.contains("no send"), "{reason}");
}

#[tokio::test]
async fn a_store_failure_is_returned_and_nothing_is_posted() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    e.store().set_failing(true);
    assert!(e.deliver(&job, 1).await.is_err());
    assert!(e.graph().posted().is_empty());
}

#[tokio::test]
async fn the_pair_rate_spaces_sends_to_one_recipient() {
    let e = engine();
    wrote(&e, PHONE).await;
    let mut jobs = Vec::new();
    for n in 0..5 {
        jobs.push(queued(&e, PHONE, SendKind::Session, n).await);
    }
    // A burst of three goes at once; the fourth waits about 6 s.
    for job in &jobs[..3] {
        assert_eq!(deliver(&e, job).await, JobOutcome::Done);
    }
    let JobOutcome::Defer { delay_ms } = deliver(&e, &jobs[3]).await else {
        panic!("the fourth should wait")
    };
    assert!((5_000..=6_000).contains(&delay_ms), "{delay_ms}");
    assert_eq!(e.graph().posted().len(), 3);
    // Another recipient is not held.
    wrote(&e, "5511888880000").await;
    let other = queued(&e, "5511888880000", SendKind::Session, 9).await;
    assert_eq!(deliver(&e, &other).await, JobOutcome::Done);
}

#[tokio::test]
async fn a_send_the_number_had_no_room_for_gives_its_pair_rate_slot_back() {
    // A number of one send a second whose next token is further off than the worker may wait
    // in-process: each try is put off, and each took one of the recipient's three quick sends
    // on the way.
    let pacing = Arc::new(InMemoryPacingStore::default());
    let e = Deliverer::new(
        InMemoryStore::default(),
        pacing.clone(),
        pacing.clone(),
        ScriptedGraph::default(),
        ManualClock::at(T0),
        DeliverConfig {
            default_limit: 1,
            max_inline_wait_ms: 0,
            ..DeliverConfig::default()
        },
        PacerConfig::default(),
        PairPolicy::default(),
        7,
    );
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 2).await;
    for _ in 0..4 {
        assert!(matches!(deliver(&e, &job).await, JobOutcome::Defer { .. }));
    }
    assert!(e.graph().posted().is_empty());
    // Handed back each time: the recipient still has the whole burst.
    let (key, _) = customer(PHONE);
    let p = PairPolicy::default();
    let mut state = pacing.pair_state(PNID, &key, true).await.unwrap();
    for _ in 0..3 {
        match p.decide(state.as_ref(), T0) {
            PairDecision::Send(s) => state = Some(s),
            PairDecision::WaitUntil(t) => panic!("held until {t}: a slot was kept"),
        }
    }
}

#[tokio::test]
async fn the_numbers_rate_holds_in_every_second() {
    let limit = 20;
    let e = engine_with(DeliverConfig {
        default_limit: limit,
        max_inline_wait_ms: 10_000,
        ..DeliverConfig::default()
    });
    let mut times = Vec::new();
    for n in 0..200u32 {
        let phone = format!("55119{n:08}");
        wrote(&e, &phone).await;
        let job = queued(&e, &phone, SendKind::Session, (n % 250) as u8).await;
        assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
        times.push(e.clock().now_ms());
    }
    let max = times
        .iter()
        .map(|&t| times.iter().filter(|&&u| u >= t && u < t + 1000).count())
        .max()
        .unwrap();
    assert!(max <= 22, "{max} sends in one second at L = {limit}");
    let span = (times[times.len() - 1] - times[0]) as f64 / 1000.0;
    let rate = (times.len() - 1) as f64 / span;
    assert!(rate > 17.0 && rate <= 22.0, "{rate:.1}/s");
}

#[test]
fn plan_never_attempts_a_settled_send() {
    let cfg = DeliverConfig::default();
    let mut r = crate::outbound::send::tests::record();
    for state in [
        SendState::Accepted {
            at_ms: 1,
            by_webhook: false,
        },
        SendState::Failed,
        SendState::DeadLettered,
    ] {
        r.state = state;
        assert_eq!(plan(&r, i64::MAX, &cfg), Plan::Done);
    }
}

#[tokio::test]
async fn a_worker_that_died_during_the_resend_leaves_it_for_the_dlq() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    let mut r = send(&e, &job);
    r.claim(T0 + 30_000, true);
    assert!(e.store().save_send(&mut r).await.unwrap());
    e.clock().advance(30_000);
    let JobOutcome::Defer { delay_ms } = deliver(&e, &job).await else {
        panic!()
    };
    e.clock().advance(delay_ms);
    assert!(matches!(
        deliver(&e, &job).await,
        JobOutcome::DeadLetter { .. }
    ));
    assert!(e.graph().posted().is_empty());
}

#[test]
fn read_receipts_are_grouped_by_the_message_they_mark() {
    let mut r = crate::outbound::send::tests::record();
    r.customer = None;
    r.who = None;
    r.kind = SendKind::ReadReceipt;
    r.body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN"});
    assert_eq!(SendJob::for_send(&r).group, format!("{PNID}:g:wamid.IN"));
}

/// The fallback template send-api keeps with a session message.
fn fallback_body(phone: &str) -> serde_json::Value {
    json!({"messaging_product": "whatsapp", "to": phone, "type": "template",
           "template": {"name": "hello", "language": {"code": "en"}}})
}

/// A pending session message to `phone` that carries a fallback template.
async fn queued_with_fallback(e: &Engine, phone: &str, n: u8) -> SendJob {
    let job = queued(e, phone, SendKind::Session, n).await;
    let mut r = send(e, &job);
    r.fallback = Some(fallback_body(phone));
    assert!(e.store().save_send(&mut r).await.unwrap());
    job
}

/// Whether `phone` is charged against the number's messaging limit (its account is not
/// known in these tests, so the portfolio is `pn:<number>`).
async fn charged(e: &Engine, phone: &str) -> bool {
    let who = [CustomerKey::Phone(phone.into()).as_storage()];
    let got = e
        .store()
        .charged_since(&format!("pn:{PNID}"), &who, 0)
        .await
        .unwrap();
    !got.is_empty()
}

/// Charges `count` other customers to the number's portfolio now (50 use up a tier-50 limit).
async fn charge_others(e: &Engine, count: u32) {
    let now = e.clock().now_ms() / 1000;
    for i in 0..count {
        let who = format!("p:55110000{i:04}");
        let charged = charge_one(
            e.store(),
            &format!("pn:{PNID}"),
            &who,
            false,
            MessagingLimit::Tier50,
            now,
        )
        .await
        .unwrap();
        assert!(charged.is_ok(), "customer {i} fits");
    }
}

fn tier_50() -> DeliverConfig {
    DeliverConfig {
        default_tier: MessagingLimit::Tier50,
        ..DeliverConfig::default()
    }
}

/// The number's account is `WABA1`, synced, with template `name` (en) in `status`.
async fn registered(e: &Engine, name: &str, status: TemplateStatus) {
    e.store().set_waba(PNID, "WABA1");
    e.store()
        .put_template(&TemplateDef {
            waba_id: "WABA1".into(),
            name: name.into(),
            language: "en".into(),
            id: None,
            status,
            category: TemplateCategory::Utility,
            components: json!([{"type": "BODY", "text": "Hello"}]),
            quality: None,
            updated_at: 1,
        })
        .await
        .unwrap();
    e.store().mark_synced("WABA1", 1).await.unwrap();
}

#[tokio::test]
async fn an_expired_token_dead_letters_the_send_for_a_redrive_instead_of_failing_it() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    e.graph().answer([rejected(401, 190)]);
    let JobOutcome::StopSending { code, reason } = deliver(&e, &job).await else {
        panic!("190 should stop sending");
    };
    assert_eq!(code, 190);
    assert!(reason.contains("190"), "{reason}");
    assert!(reason.contains("access token expired"), "{reason}");
    let mut r = send(&e, &job);
    assert_eq!(r.state, SendState::DeadLettered);
    assert_eq!(r.error.as_ref().unwrap().code, 190);
    // The operator rotates the token and redrives: the same send goes out.
    e.clock().advance(e.config().stop_hold_ms);
    assert!(r.redrive());
    assert!(e.store().save_send(&mut r).await.unwrap());
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    assert_eq!(e.graph().posted().len(), 2);
    let r = send(&e, &job);
    assert!(matches!(r.state, SendState::Accepted { .. }));
    assert_eq!(r.error, None);
}

#[tokio::test]
async fn every_stop_sending_code_dead_letters_rather_than_fails() {
    for code in [0, 3, 10, 131_005, 131_031, 131_042, 133_010, 200, 368] {
        let e = engine();
        wrote(&e, PHONE).await;
        let job = queued(&e, PHONE, SendKind::Session, 1).await;
        e.graph().answer([rejected(400, code)]);
        assert!(
            matches!(deliver(&e, &job).await, JobOutcome::StopSending { code: c, .. } if c == code),
            "{code}"
        );
        assert_eq!(send(&e, &job).state, SendState::DeadLettered, "{code}");
    }
}

#[tokio::test]
async fn after_a_stop_sending_code_the_numbers_backlog_is_dead_lettered_without_calling_meta() {
    let e = engine();
    let other = "5511888880000";
    wrote(&e, PHONE).await;
    wrote(&e, other).await;
    let first = queued(&e, PHONE, SendKind::Session, 1).await;
    let second = queued(&e, other, SendKind::Session, 2).await;
    let third = queued(&e, other, SendKind::Session, 3).await;
    e.graph().answer([rejected(401, 190)]);
    assert!(matches!(
        deliver(&e, &first).await,
        JobOutcome::StopSending { code: 190, .. }
    ));
    // Within the hold: dead-lettered (redrivable) with the code, not posted.
    let JobOutcome::DeadLetter { reason } = deliver(&e, &second).await else {
        panic!("held back");
    };
    assert!(reason.contains("190"), "{reason}");
    assert_eq!(e.graph().posted().len(), 1);
    let r = send(&e, &second);
    assert_eq!(
        (r.state, r.error.unwrap().code, r.attempts),
        (SendState::DeadLettered, 190, 0)
    );
    // Once the hold is over, Meta is asked again.
    e.clock().advance(e.config().stop_hold_ms);
    assert_eq!(deliver(&e, &third).await, JobOutcome::Done);
    assert_eq!(e.graph().posted().len(), 2);
}

#[tokio::test]
async fn a_131047_from_meta_sends_the_fallback_next_and_ends_accepted() {
    let e = engine();
    // Ventana's copy of the window says open; Meta's says closed.
    wrote(&e, PHONE).await;
    let job = queued_with_fallback(&e, PHONE, 1).await;
    e.graph().answer([rejected(400, 131_047)]);
    assert_eq!(
        deliver(&e, &job).await,
        JobOutcome::Defer { delay_ms: 0 },
        "tried again at once"
    );
    let r = send(&e, &job);
    assert_eq!(r.state, SendState::Pending { not_before_ms: T0 });
    assert_eq!(
        (r.kind, r.message_type.as_str()),
        (SendKind::Template, "template")
    );
    assert_eq!(r.fallback, None);
    assert_eq!(
        r.attempts, 0,
        "the session message's attempt does not count"
    );
    assert_eq!(r.error.unwrap().code, 131_047);
    assert!(
        charged(&e, PHONE).await,
        "the fallback is business-initiated"
    );

    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    let posted = e.graph().posted();
    assert_eq!(posted.len(), 2);
    assert_eq!(posted[0].1["type"], "text");
    assert_eq!(posted[1].1["type"], "template");
    assert_eq!(posted[1].1["template"]["name"], "hello");
    assert_eq!(
        posted[1].1["biz_opaque_callback_data"],
        job.send_id.as_str()
    );
    let r = send(&e, &job);
    assert!(matches!(r.state, SendState::Accepted { .. }));
    assert_eq!((r.attempts, r.error), (1, None));
    assert_eq!(
        e.store().message("wamid.2").unwrap().message_type,
        "template"
    );
}

#[tokio::test]
async fn a_131047_from_meta_without_a_fallback_fails_with_131047() {
    let e = engine();
    wrote(&e, PHONE).await;
    let job = queued(&e, PHONE, SendKind::Session, 1).await;
    e.graph().answer([rejected(400, 131_047)]);
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    let r = send(&e, &job);
    assert_eq!(r.state, SendState::Failed);
    assert_eq!(r.error.unwrap().code, 131_047);
    assert_eq!(r.kind, SendKind::Session);
    assert!(!charged(&e, PHONE).await);
    e.clock().advance(3_600_000);
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    assert_eq!(e.graph().posted().len(), 1);
}

#[tokio::test]
async fn a_fallback_switched_at_dequeue_waits_unsent_while_the_limit_is_full() {
    let e = engine_with(tier_50());
    wrote(&e, PHONE).await;
    let job = queued_with_fallback(&e, PHONE, 1).await;
    e.clock().advance(24 * 3_600_000);
    charge_others(&e, 50).await;
    let JobOutcome::Defer { delay_ms } = deliver(&e, &job).await else {
        panic!("deferred until the limit has room");
    };
    // Room comes back when the hour of the charges leaves the rolling 24 hours.
    assert!(
        (24 * 3_600_000..=25 * 3_600_000).contains(&delay_ms),
        "{delay_ms}"
    );
    assert!(e.graph().posted().is_empty(), "not sent");
    let r = send(&e, &job);
    let now = e.clock().now_ms();
    assert_eq!(
        r.state,
        SendState::Pending {
            not_before_ms: now + delay_ms
        },
        "not failed"
    );
    assert_eq!(r.error.as_ref().unwrap().code, 80_007);
    assert_eq!((r.kind, r.fallback.is_some()), (SendKind::Session, true));
    assert!(!charged(&e, PHONE).await);
    // Redelivered early (SQS caps a delay at 12 h): still waiting, still not sent.
    e.clock().advance(12 * 3_600_000);
    assert!(matches!(deliver(&e, &job).await, JobOutcome::Defer { .. }));
    assert!(e.graph().posted().is_empty());
    // Then there is room: the fallback goes, charged.
    e.clock().advance(delay_ms - 12 * 3_600_000);
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    let posted = e.graph().posted();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].1["type"], "template");
    assert!(charged(&e, PHONE).await);
}

#[tokio::test]
async fn a_131047_fallback_waits_unsent_while_the_limit_is_full() {
    let e = engine_with(tier_50());
    wrote(&e, PHONE).await;
    let job = queued_with_fallback(&e, PHONE, 1).await;
    charge_others(&e, 50).await;
    e.graph().answer([rejected(400, 131_047)]);
    let JobOutcome::Defer { delay_ms } = deliver(&e, &job).await else {
        panic!("deferred until the limit has room");
    };
    assert!(delay_ms > 23 * 3_600_000, "{delay_ms}");
    assert_eq!(e.graph().posted().len(), 1, "only the session message");
    let r = send(&e, &job);
    assert!(matches!(r.state, SendState::Pending { .. }));
    assert_eq!(r.error.as_ref().unwrap().code, 80_007);
    assert_eq!(r.attempts, 0);
    assert!(!charged(&e, PHONE).await);
}

#[tokio::test]
async fn a_fallback_to_a_customer_charged_in_the_last_day_is_free_at_a_full_limit() {
    let e = engine_with(tier_50());
    wrote(&e, PHONE).await;
    let job = queued_with_fallback(&e, PHONE, 1).await;
    e.clock().advance(24 * 3_600_000);
    let now = e.clock().now_ms() / 1000;
    let who = CustomerKey::Phone(PHONE.into()).as_storage();
    let portfolio = format!("pn:{PNID}");
    let first = charge_one(
        e.store(),
        &portfolio,
        &who,
        false,
        MessagingLimit::Tier50,
        now,
    );
    assert!(first.await.unwrap().is_ok());
    e.clock().advance(60_000);
    charge_others(&e, 49).await;
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    assert_eq!(e.graph().posted()[0].1["type"], "template");
}

#[tokio::test]
async fn a_fallback_is_charged_to_the_numbers_account_once_known() {
    let e = engine();
    e.store().set_waba(PNID, "WABA1");
    wrote(&e, PHONE).await;
    let job = queued_with_fallback(&e, PHONE, 1).await;
    e.clock().advance(24 * 3_600_000);
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    let who = [CustomerKey::Phone(PHONE.into()).as_storage()];
    let got = e.store().charged_since("WABA1", &who, 0).await.unwrap();
    assert_eq!(got.len(), 1);
}

#[tokio::test]
async fn a_paused_or_disabled_template_is_marked_so_in_the_registry() {
    for (code, status, kind) in [
        (132_015, TemplateStatus::Paused, RefusalKind::Paused),
        (132_016, TemplateStatus::Disabled, RefusalKind::Disabled),
    ] {
        let e = engine();
        registered(&e, "hello", TemplateStatus::Approved).await;
        let job = queued(&e, PHONE, SendKind::Template, 1).await;
        e.graph().answer([rejected(400, code)]);
        assert_eq!(deliver(&e, &job).await, JobOutcome::Done, "{code}");
        let r = send(&e, &job);
        assert_eq!((r.state, r.error.unwrap().code), (SendState::Failed, code));
        let def = e
            .store()
            .template("WABA1", "hello", "en")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(def.status, status, "{code}");
        assert_eq!(def.updated_at, T0 / 1000);
        // send-api now refuses it before queuing anything.
        let verdict = check_send(e.store(), PNID, &r.body["template"])
            .await
            .unwrap();
        let Verdict::Refused(refusal) = verdict else {
            panic!("{verdict:?}");
        };
        assert_eq!(refusal.kind, kind);
    }
}

#[tokio::test]
async fn a_paused_template_the_registry_does_not_know_is_added_paused() {
    // As a status webhook would: Meta's answer says the template exists and is paused, so
    // the next send of it is refused before it is queued, and its broadcasts pause.
    let e = engine();
    registered(&e, "other", TemplateStatus::Approved).await;
    let job = queued(&e, PHONE, SendKind::Template, 1).await;
    e.graph().answer([rejected(400, 132_015)]);
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    let added = e
        .store()
        .template("WABA1", "hello", "en")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(added.status, TemplateStatus::Paused);
    assert!(added.components.is_null());
}

#[tokio::test]
async fn a_newer_registry_update_is_not_overridden_by_a_paused_answer() {
    let e = engine();
    registered(&e, "hello", TemplateStatus::Approved).await;
    // A sync from after the send already knows better (reinstated, say).
    let mut def = e
        .store()
        .template("WABA1", "hello", "en")
        .await
        .unwrap()
        .unwrap();
    def.updated_at = T0 / 1000 + 10;
    e.store().put_template(&def).await.unwrap();
    let job = queued(&e, PHONE, SendKind::Template, 1).await;
    e.graph().answer([rejected(400, 132_015)]);
    assert_eq!(deliver(&e, &job).await, JobOutcome::Done);
    let def = e.store().template("WABA1", "hello", "en").await.unwrap();
    assert_eq!(def.unwrap().status, TemplateStatus::Approved);
}
