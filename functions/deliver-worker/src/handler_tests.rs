//! Handler tests on `events/deliver-worker/*.json` (SQS events as Lambda delivers them), with
//! the real engine over in-memory ports and a scripted Graph API.

use std::sync::{Arc, Mutex};

use serde_json::json;
use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::outbound::deliver::DeliverConfig;
use wa_domain::outbound::{GraphOutcome, SendId, SendKind, SendRecord, SendState};
use wa_domain::pacing::PacerConfig;
use wa_domain::pacing::memory::InMemoryPacingStore;
use wa_domain::pacing::pair::PairPolicy;
use wa_domain::testing::{InMemoryStore, ManualClock, ScriptedGraph};
use wa_domain::window::WindowUpdate;

use super::*;

const PNID: &str = "106540352242922";
const T0: i64 = 1_795_420_800_000;
const A: &str = "vnt.01KAP7X5Z8M3Q9R2T4V6W8Y0AB";
const B: &str = "vnt.01KAP7X5Z8M3Q9R2T4V6W8Y0AC";
const C: &str = "vnt.01KAP7X5Z8M3Q9R2T4V6W8Y0AD";

type TestEngine = Deliverer<
    InMemoryStore,
    Arc<InMemoryPacingStore>,
    Arc<InMemoryPacingStore>,
    ScriptedGraph,
    ManualClock,
>;

#[derive(Default)]
struct FakeControl {
    deferred: Mutex<Vec<(String, i64)>>,
    dead: Mutex<Vec<(String, String, String)>>,
    fail_dead_letter: bool,
}

impl QueueControl for FakeControl {
    async fn defer(&self, receipt_handle: &str, delay_ms: i64) -> Result<(), ControlFailure> {
        self.deferred
            .lock()
            .unwrap()
            .push((receipt_handle.to_owned(), delay_ms));
        Ok(())
    }

    async fn dead_letter(
        &self,
        body: &str,
        group: &str,
        reason: &str,
    ) -> Result<(), ControlFailure> {
        if self.fail_dead_letter {
            return Err(ControlFailure("DLQ down".into()));
        }
        self.dead
            .lock()
            .unwrap()
            .push((body.to_owned(), group.to_owned(), reason.to_owned()));
        Ok(())
    }
}

fn fixture(case: &str) -> SqsEvent {
    let path = format!(
        "{}/../../events/deliver-worker/{case}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("an SQS event")
}

fn engine() -> TestEngine {
    let pacing = Arc::new(InMemoryPacingStore::default());
    Deliverer::new(
        InMemoryStore::default(),
        pacing.clone(),
        pacing,
        ScriptedGraph::default(),
        ManualClock::at(T0),
        DeliverConfig::default(),
        PacerConfig::default(),
        PairPolicy::default(),
        1,
    )
}

/// Stores a pending text send `id` to `phone`, who wrote a minute ago.
async fn pending(e: &TestEngine, id: &str, phone: &str) {
    let who = CustomerRef::new(None, Some(phone)).unwrap();
    let key = CustomerKey::Phone(phone.into());
    e.store()
        .advance_window(
            PNID,
            &key,
            &who,
            &WindowUpdate::for_message(T0 / 1000 - 60, false),
            None,
        )
        .await
        .unwrap();
    let r = SendRecord {
        customer: Some(key),
        who: Some(who),
        message_type: "text".into(),
        body: json!({"messaging_product": "whatsapp", "to": phone, "type": "text", "text": {"body": "hi"}}),
        ..SendRecord::pending(
            SendId::parse(id).unwrap(),
            PNID,
            SendKind::Session,
            T0,
            T0 / 1000 + 86_400,
        )
    };
    e.store().create_send(&r, 0).await.unwrap();
}

fn failures(r: &SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

fn state(e: &TestEngine, id: &str) -> SendState {
    e.store().send(&SendId::parse(id).unwrap()).unwrap().state
}

#[tokio::test]
async fn a_batch_is_delivered_and_acknowledged() {
    let e = engine();
    pending(&e, A, "16505551234").await;
    pending(&e, B, "16505551234").await;
    pending(&e, C, "16505550000").await;
    let control = FakeControl::default();
    let r = handle(&e, &control, fixture("batch"), i64::MAX)
        .await
        .unwrap();
    assert!(failures(&r).is_empty(), "{:?}", failures(&r));
    assert_eq!(e.graph().posted().len(), 3);
    for id in [A, B, C] {
        assert!(matches!(state(&e, id), SendState::Accepted { .. }));
    }
    // A's group went in order.
    let posted = e.graph().posted();
    let order: Vec<_> = posted
        .iter()
        .map(|(_, b)| b["biz_opaque_callback_data"].as_str().unwrap().to_owned())
        .filter(|id| id != C)
        .collect();
    assert_eq!(order, [A, B]);
}

#[tokio::test]
async fn a_deferred_send_holds_the_rest_of_its_group_only() {
    let e = engine();
    pending(&e, A, "16505551234").await;
    pending(&e, B, "16505551234").await;
    pending(&e, C, "16505550000").await;
    e.graph().answer([GraphOutcome::Rejected {
        http_status: 400,
        code: 130_429,
        subcode: None,
        message: "throughput".into(),
        details: None,
        fbtrace_id: None,
    }]);
    let control = FakeControl::default();
    let r = handle(&e, &control, fixture("batch"), i64::MAX)
        .await
        .unwrap();
    let mut failed = failures(&r);
    failed.sort();
    // Records 1 (A) and 2 (B) of the first group; C's group went through.
    assert_eq!(
        failed,
        [
            "7c1b5f3e-0000-4000-8000-000000000001",
            "7c1b5f3e-0000-4000-8000-000000000002"
        ]
    );
    assert!(matches!(state(&e, B), SendState::Pending { .. }));
    assert_eq!(
        e.store().send(&SendId::parse(B).unwrap()).unwrap().attempts,
        0
    );
    assert!(matches!(state(&e, C), SendState::Accepted { .. }));
    let deferred = control.deferred.lock().unwrap().clone();
    assert_eq!(deferred.len(), 2);
    assert_eq!(deferred[0].0, "AQEBout1");
    assert_eq!(deferred[1].0, "AQEBout2");
    assert!(deferred[0].1 >= 1_000);
    assert_eq!(deferred[0].1, deferred[1].1);
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dlq_with_its_reason_and_is_acknowledged() {
    let e = engine();
    pending(&e, A, "16505551234").await;
    let control = FakeControl::default();
    let r = handle(&e, &control, fixture("poison"), i64::MAX)
        .await
        .unwrap();
    assert!(failures(&r).is_empty());
    let dead = control.dead.lock().unwrap().clone();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, r#"{"schema_version":7}"#);
    assert!(dead[0].2.contains("not an outbound job"), "{}", dead[0].2);
    assert_eq!(e.graph().posted().len(), 1);
}

#[tokio::test]
async fn when_the_dlq_is_down_the_message_stays_on_the_queue() {
    let e = engine();
    pending(&e, A, "16505551234").await;
    let control = FakeControl {
        fail_dead_letter: true,
        ..FakeControl::default()
    };
    let r = handle(&e, &control, fixture("poison"), i64::MAX)
        .await
        .unwrap();
    assert_eq!(failures(&r), ["7c1b5f3e-0000-4000-8000-000000000002"]);
}

#[tokio::test]
async fn an_unknown_send_is_dead_lettered() {
    let e = engine();
    let control = FakeControl::default();
    // None of the batch's sends exist.
    let r = handle(&e, &control, fixture("batch"), i64::MAX)
        .await
        .unwrap();
    assert!(failures(&r).is_empty());
    assert_eq!(control.dead.lock().unwrap().len(), 3);
    assert!(e.graph().posted().is_empty());
}

#[tokio::test]
async fn a_store_outage_retries_the_group_later_without_posting() {
    let e = engine();
    pending(&e, A, "16505551234").await;
    e.store().set_failing(true);
    let control = FakeControl::default();
    let r = handle(&e, &control, fixture("batch"), i64::MAX)
        .await
        .unwrap();
    assert_eq!(failures(&r).len(), 3);
    assert!(e.graph().posted().is_empty());
    assert!(
        control
            .deferred
            .lock()
            .unwrap()
            .iter()
            .all(|(_, d)| *d == STORE_RETRY_MS)
    );
}

#[tokio::test]
async fn nothing_starts_past_the_deadline() {
    let e = engine();
    pending(&e, A, "16505551234").await;
    let control = FakeControl::default();
    let r = handle(&e, &control, fixture("batch"), T0 - 1)
        .await
        .unwrap();
    assert_eq!(failures(&r).len(), 3);
    assert!(e.graph().posted().is_empty());
    assert!(
        control
            .deferred
            .lock()
            .unwrap()
            .iter()
            .all(|(_, d)| *d == 0)
    );
    assert!(matches!(state(&e, A), SendState::Pending { .. }));
}

#[tokio::test]
async fn an_expired_token_dead_letters_the_send_and_holds_the_numbers_others_back() {
    let e = engine();
    pending(&e, A, "16505551234").await;
    pending(&e, B, "16505551234").await;
    pending(&e, C, "16505550000").await;
    e.graph().answer([GraphOutcome::Rejected {
        http_status: 401,
        code: 190,
        subcode: Some(463),
        message: "Error validating access token: Session has expired".into(),
        details: None,
        fbtrace_id: Some("AbCdEfG".into()),
    }]);
    let control = FakeControl::default();
    let r = handle(&e, &control, fixture("batch"), i64::MAX)
        .await
        .unwrap();
    // Nothing is retried by the queue: all three are in the DLQ, redrivable.
    assert!(failures(&r).is_empty(), "{:?}", failures(&r));
    assert_eq!(e.graph().posted().len(), 1, "Meta is asked once");
    let dead = control.dead.lock().unwrap().clone();
    assert_eq!(dead.len(), 3);
    assert!(dead.iter().all(|(_, _, reason)| reason.contains("190")));
    assert!(dead[0].2.contains("stop sending"), "{}", dead[0].2);
    for id in [A, B, C] {
        let r = e.store().send(&SendId::parse(id).unwrap()).unwrap();
        assert_eq!(r.state, SendState::DeadLettered, "{id}");
        assert_eq!(r.error.unwrap().code, 190);
    }
}
