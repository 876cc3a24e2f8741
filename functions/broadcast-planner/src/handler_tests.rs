//! The handler on the `events/broadcast-planner/*.json` fixtures, with the in-memory fakes.

use std::sync::Arc;

use super::*;
use wa_domain::broadcast::create::{self, CreateRequest};
use wa_domain::broadcast::memory::MemoryBroadcasts;
use wa_domain::broadcast::{BroadcastId, RecipientRow, Release, TemplateRef};
use wa_domain::testing::{InMemoryStore, ManualClock};

const PN: &str = "106540352242922";
const NOW_MS: i64 = 1_795_428_000_000;
const FIXTURE_ID: &str = "bc_01KAP7X5Z8M3Q9R2T4V6W8Y0AB";

fn fixture(case: &str, id: &BroadcastId) -> SqsEvent {
    let path = format!(
        "{}/../../events/broadcast-planner/{case}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text.replace(FIXTURE_ID, id.as_str())).unwrap()
}

fn row(to: &str) -> RecipientRow {
    RecipientRow {
        to: Some(to.into()),
        recipient: None,
        components: serde_json::Value::Null,
        problem: None,
    }
}

/// A broadcast of four recipients (one repeated), all at once; its first step taken off.
async fn world() -> (MemoryBroadcasts, InMemoryStore, BroadcastId) {
    let mem = MemoryBroadcasts::new(Arc::new(InMemoryStore::default()));
    let templates = InMemoryStore::default();
    let req = CreateRequest {
        phone_number_id: PN.into(),
        template: TemplateRef {
            name: "order_update".into(),
            language: "en_US".into(),
        },
        recipients: ["16505550000", "16505550001", "16505550002", "16505550001"]
            .map(row)
            .to_vec(),
        recipients_csv: None,
        require_opt_in: false,
        release: Release::ALL_AT_ONCE,
        idempotency: None,
    };
    let id = create::create(&mem, &templates, &mem, req, NOW_MS, [3; 10], 86_400)
        .await
        .unwrap();
    assert_eq!(mem.take_steps().len(), 1);
    (mem, templates, id)
}

#[tokio::test]
async fn a_step_message_plans_the_broadcast_and_schedules_the_next_step() {
    let (mem, templates, id) = world().await;
    let clock = ManualClock::at(NOW_MS);
    let deps = Deps {
        store: &mem,
        limits: &mem,
        templates: &templates,
        source: &mem,
        outbound: &mem,
        clock: &clock,
    };
    let res = handle(&deps, &PlannerConfig::default(), &mem, fixture("step", &id)).await;
    assert!(res.batch_item_failures.is_empty());
    assert_eq!(mem.jobs().len(), 3, "three distinct recipients queued");
    let next = mem.take_steps();
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].0, id);
    assert_eq!(next[0].1, 1, "same chain");
    let b = mem.get_broadcast(&id).await.unwrap().unwrap();
    assert_eq!(b.counts.queued, 3);
    assert_eq!(b.counts.skipped_duplicate, 1);
}

#[tokio::test]
async fn a_poison_record_and_a_failed_step_are_batch_failures_and_the_rest_is_done() {
    let (mem, templates, id) = world().await;
    let clock = ManualClock::at(NOW_MS);
    let deps = Deps {
        store: &mem,
        limits: &mem,
        templates: &templates,
        source: &mem,
        outbound: &mem,
        clock: &clock,
    };
    let res = handle(
        &deps,
        &PlannerConfig::default(),
        &mem,
        fixture("step-and-poison", &id),
    )
    .await;
    let failed: Vec<&str> = res
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["5d2c6a1e-0000-4000-8000-000000000002"]);
    assert_eq!(mem.jobs().len(), 3);

    // The outbound queue down: the step fails and is retried by SQS; nothing is counted.
    let (mem, templates, id) = world().await;
    mem.set_queue_failing(true);
    let deps = Deps {
        store: &mem,
        limits: &mem,
        templates: &templates,
        source: &mem,
        outbound: &mem,
        clock: &clock,
    };
    let res = handle(&deps, &PlannerConfig::default(), &mem, fixture("step", &id)).await;
    assert_eq!(res.batch_item_failures.len(), 1);
    assert!(
        mem.take_steps().is_empty(),
        "no follow-up for a failed step"
    );
    let b = mem.get_broadcast(&id).await.unwrap().unwrap();
    assert_eq!(b.cursor, 0);
}

#[tokio::test]
async fn a_message_of_an_old_chain_is_dropped_without_a_follow_up() {
    let (mem, templates, id) = world().await;
    create::pause(&mem, &id).await.unwrap();
    let clock = ManualClock::at(NOW_MS);
    let deps = Deps {
        store: &mem,
        limits: &mem,
        templates: &templates,
        source: &mem,
        outbound: &mem,
        clock: &clock,
    };
    let res = handle(&deps, &PlannerConfig::default(), &mem, fixture("step", &id)).await;
    assert!(res.batch_item_failures.is_empty());
    assert!(mem.jobs().is_empty());
    assert!(mem.take_steps().is_empty());
}
