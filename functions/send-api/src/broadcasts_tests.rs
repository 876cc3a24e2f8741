//! The broadcast routes on the `events/send-api/broadcast-*.json` fixtures, with the
//! in-memory fakes.

use std::sync::Arc;

use super::*;
use crate::handler::{Deps, handle_all};
use wa_domain::auth::hash_key;
use wa_domain::broadcast::memory::MemoryBroadcasts;
use wa_domain::broadcast::planner::{self, PlannerConfig, StepResult};
use wa_domain::outbound::accept::AcceptConfig;
use wa_domain::ports::KeyScope;
use wa_domain::testing::{InMemoryStore, ManualClock, RecordingOutbound};

use crate::test_support::{NOW_MS, PNID, fixture, keyed_store};
use wa_domain::templates::{TemplateCategory, TemplateDef, TemplateStatus};
/// The id the fixtures carry.
const FIXTURE_ID: &str = "bc_01KAP7X5Z8M3Q9R2T4V6W8Y0AB";

struct World {
    deps: Deps<InMemoryStore, RecordingOutbound>,
    bc: BroadcastDeps<MemoryBroadcasts, InMemoryStore, MemoryBroadcasts>,
}

/// `test-api-key` for PNID, `other-key` for another number.
async fn world() -> World {
    let store = keyed_store().await;
    store
        .put_key(
            &hash_key("other-key"),
            &KeyScope::Numbers(vec!["999999999999999".into()]),
            "o",
        )
        .await
        .unwrap();
    let mem = MemoryBroadcasts::new(Arc::new(InMemoryStore::default()));
    World {
        deps: Deps {
            store,
            queue: RecordingOutbound::default(),
            config: AcceptConfig::default(),
        },
        bc: BroadcastDeps {
            store: mem.clone(),
            templates: InMemoryStore::default(),
            steps: mem,
            retention_secs: 86_400,
            uploads: None,
        },
    }
}

async fn call(w: &World, event: &str) -> (u16, String, Response<Body>) {
    let req = lambda_http::request::from_str(event).expect("API Gateway v2 event");
    let res = handle_all(&w.deps, Some(&w.bc), req, NOW_MS, [7; 10]).await;
    let text = match res.body() {
        Body::Text(t) => t.clone(),
        other => panic!("unexpected body {other:?}"),
    };
    (res.status().as_u16(), text, res)
}

async fn call_json(w: &World, event: &str) -> (u16, Value) {
    let (status, text, _) = call(w, event).await;
    (status, serde_json::from_str(&text).unwrap())
}

/// Creates the fixture broadcast; returns its id.
async fn created(w: &World) -> String {
    let (status, body) = call_json(w, &fixture("broadcast-create")).await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn with_id(case: &str, id: &str) -> String {
    fixture(case).replace(FIXTURE_ID, id)
}

#[tokio::test]
async fn a_broadcast_is_created_with_its_first_step_queued_and_viewed_with_counts() {
    let w = world().await;
    let id = created(&w).await;
    assert!(id.starts_with("bc_"), "{id}");
    let steps = w.bc.steps.take_steps();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].0.as_str(), id);
    let (status, v) = call_json(&w, &with_id("broadcast-get", &id)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], id);
    assert_eq!(v["state"], "running");
    assert_eq!(v["counts"]["total"], 5);
    assert_eq!(v["counts"]["pending"], 5);
    assert_eq!(v["release"]["percent"], 100);
}

#[tokio::test]
async fn keys_are_checked_against_the_broadcasts_number() {
    let w = world().await;
    let (status, v) = call_json(&w, &fixture("broadcast-create-no-key")).await;
    assert_eq!((status, v["error"]["code"].as_i64()), (401, Some(190)));
    let (status, v) = call_json(&w, &fixture("broadcast-create-other-number")).await;
    assert_eq!((status, v["error"]["code"].as_i64()), (403, Some(10)));
    assert!(
        w.bc.steps.take_steps().is_empty(),
        "nothing queued when refused"
    );

    let id = created(&w).await;
    let (status, _) = call_json(&w, &with_id("broadcast-get-no-key", &id)).await;
    assert_eq!(status, 401);
    // Another number's key sees no such broadcast, for every route.
    for case in [
        "broadcast-get",
        "broadcast-pause",
        "broadcast-resume",
        "broadcast-recipients",
    ] {
        let ev = with_id(case, &id).replace("test-api-key", "other-key");
        let (status, v) = call_json(&w, &ev).await;
        assert_eq!(status, 404, "{case}: {v}");
    }
    // An unknown id is the same 404.
    let (status, _) = call_json(&w, &fixture("broadcast-get")).await;
    assert_eq!(status, 404);
    let (_, v) = call_json(&w, &with_id("broadcast-get", &id)).await;
    assert_eq!(v["state"], "running", "another key could not pause it");
}

#[tokio::test]
async fn a_bad_body_is_a_400_naming_the_problem() {
    let w = world().await;
    let (status, v) = call_json(&w, &fixture("broadcast-create-bad")).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("template"),
        "{v}"
    );
}

#[tokio::test]
async fn a_template_the_registry_refuses_is_a_400_with_metas_code_and_nothing_is_queued() {
    let w = world().await;
    w.bc.templates.set_waba(PNID, "WABA1");
    let def = |status, components| TemplateDef {
        waba_id: "WABA1".into(),
        name: "order_update".into(),
        language: "en_US".into(),
        id: None,
        status,
        category: TemplateCategory::Utility,
        components,
        quality: None,
        updated_at: 0,
    };
    let put = |d: TemplateDef, at: i64| {
        let templates = &w.bc.templates;
        async move {
            templates
                .put_template(&TemplateDef {
                    updated_at: at,
                    ..d
                })
                .await
                .unwrap()
        }
    };
    put(def(TemplateStatus::Paused, Value::Null), 1).await;
    let (status, v) = call_json(&w, &fixture("broadcast-create")).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], 132_015, "{v}");
    assert!(
        v["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("PAUSED"),
        "{v}"
    );
    // Approved, with a body of two placeholders where the fixture's rows give one.
    let two = serde_json::json!([{"type": "BODY", "text": "Order {{1}} is {{2}}"}]);
    put(def(TemplateStatus::Approved, two), 2).await;
    let (status, v) = call_json(&w, &fixture("broadcast-create")).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], 132_000, "{v}");
    let details = v["error"]["error_data"]["details"].as_str().unwrap();
    assert!(details.starts_with("recipients[0]: "), "{details}");
    assert!(w.bc.steps.take_steps().is_empty(), "no planner step queued");
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retried_create_the_same_broadcast() {
    let w = world().await;
    let keyed = |key: &str, drop_last: bool| {
        let mut event: Value = serde_json::from_str(&fixture("broadcast-create")).unwrap();
        event["headers"]["idempotency-key"] = key.into();
        if drop_last {
            let mut body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
            body["recipients"].as_array_mut().unwrap().pop();
            event["body"] = body.to_string().into();
        }
        event.to_string()
    };
    let (status, first) = call_json(&w, &keyed("order-42", false)).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = call_json(&w, &keyed("order-42", false)).await;
    assert_eq!((status, &again["id"]), (202, &first["id"]), "{again}");
    let (status, other) = call_json(&w, &keyed("order-42", true)).await;
    assert_eq!(status, 422, "{other}");
    assert_eq!(other["error"]["code"], 100);
    let (status, v) = call_json(&w, &keyed(" ", false)).await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn a_csv_list_is_refused_until_an_s3_source_exists_and_nothing_is_written() {
    let w = world().await;
    let mut event: serde_json::Value = serde_json::from_str(&fixture("broadcast-create")).unwrap();
    let mut body: serde_json::Value =
        serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    body.as_object_mut().unwrap().remove("recipients");
    body["recipients_csv"] = serde_json::json!({"bucket": "lists", "key": "march.csv"});
    event["body"] = body.to_string().into();
    let (status, v) = call_json(&w, &event.to_string()).await;
    assert_eq!(status, 400, "{v}");
    let details = v["error"]["error_data"]["details"].as_str().unwrap();
    assert!(details.contains("recipients_csv"), "{v}");
    assert!(w.bc.steps.take_steps().is_empty(), "no planner step queued");
}

#[tokio::test]
async fn pause_and_resume_change_the_state_and_the_chain() {
    let w = world().await;
    let id = created(&w).await;
    w.bc.steps.take_steps();
    let (status, v) = call_json(&w, &with_id("broadcast-pause", &id)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "paused");
    assert_eq!(v["paused_reason"], "api");
    let (status, v) = call_json(&w, &with_id("broadcast-resume", &id)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "running");
    let steps = w.bc.steps.take_steps();
    assert_eq!(steps.len(), 1, "resume queues a step of the new chain");
    assert_eq!(steps[0].1, 3, "created 1, paused 2, resumed 3");
}

#[tokio::test]
async fn the_ledger_is_paged_as_json_and_as_csv_after_planning() {
    let w = world().await;
    let id = created(&w).await;
    // Run the planner over the fakes until it has planned everyone.
    let bid = BroadcastId::parse(&id).unwrap();
    let clock = ManualClock::at(NOW_MS);
    let d = planner::Deps {
        store: &w.bc.store,
        limits: &w.bc.store,
        templates: &w.bc.templates,
        source: &w.bc.store,
        outbound: &w.bc.store,
        clock: &clock,
    };
    let cfg = PlannerConfig::default();
    let r = planner::step(&d, &cfg, &bid, 1).await.unwrap();
    assert!(matches!(r, StepResult::Again { .. }), "{r:?}");

    let (status, v) = call_json(&w, &with_id("broadcast-recipients", &id)).await;
    assert_eq!(status, 200, "{v}");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["index"], 0);
    assert_eq!(data[0]["outcome"], "queued");
    assert_eq!(v["next_cursor"], "2");
    let next = with_id("broadcast-recipients", &id)
        .replace("\"limit\": \"2\"", "\"limit\": \"2\", \"cursor\": \"2\"")
        .replace("limit=2", "limit=2&cursor=2");
    let (_, v) = call_json(&w, &next).await;
    let outcomes: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["queued", "skipped_duplicate"]);

    let (status, text, res) = call(&w, &with_id("broadcast-recipients-csv", &id)).await;
    assert_eq!(status, 200);
    assert_eq!(res.headers()[CONTENT_TYPE], "text/csv");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "index,to,recipient,outcome,send_id,error_code,error"
    );
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines[5].starts_with("4,not a phone,,skipped_invalid,"),
        "{text}"
    );
    assert!(res.headers().get("x-next-cursor").is_none());

    let (_, v) = call_json(&w, &with_id("broadcast-get", &id)).await;
    assert_eq!(v["counts"]["queued"], 3, "{v}");
    assert_eq!(v["counts"]["skipped_duplicate"], 1, "{v}");
    assert_eq!(v["counts"]["skipped_invalid"], 1, "{v}");
}

#[test]
fn routes_are_recognised_only_under_v1_broadcasts() {
    assert_eq!(route("POST", "/v1/broadcasts"), Some(Route::Create));
    assert_eq!(
        route("GET", "/v1/broadcasts/bc_1/recipients"),
        Some(Route::Recipients("bc_1".into()))
    );
    assert_eq!(route("DELETE", "/v1/broadcasts/bc_1"), Some(Route::Other));
    assert_eq!(route("POST", "/v25.0/1/messages"), None);
}

#[test]
fn csv_cells_are_quoted_and_formulas_defused() {
    assert_eq!(quote("a,b"), "\"a,b\"");
    assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(quote("=cmd()"), "'=cmd()");
    assert_eq!(quote("plain"), "plain");
}

#[tokio::test]
async fn without_a_step_queue_the_routes_answer_503_and_nothing_is_written() {
    let w = world().await;
    let req = lambda_http::request::from_str(&fixture("broadcast-create")).unwrap();
    let none: Option<&BroadcastDeps<MemoryBroadcasts, InMemoryStore, MemoryBroadcasts>> = None;
    let res = handle_all(&w.deps, none, req, NOW_MS, [7; 10]).await;
    assert_eq!(res.status().as_u16(), 503);
    assert!(w.bc.steps.take_steps().is_empty());
}

#[tokio::test]
async fn a_broadcast_the_step_queue_will_not_start_is_503_naming_it_paused_and_resume_starts_it() {
    let w = world().await;
    w.bc.steps.set_steps_failing(true);
    let (status, body) = call_json(&w, &fixture("broadcast-create")).await;
    assert_eq!(status, 503, "{body}");
    let details = body["error"]["error_data"]["details"].as_str().unwrap();
    let id = details.split_whitespace().nth(1).unwrap().to_owned();
    assert!(id.starts_with("bc_"), "{details}");
    assert!(
        details.contains("not_started") && details.contains("/resume"),
        "{details}"
    );
    let (status, view) = call_json(&w, &with_id("broadcast-get", &id)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "paused");
    assert_eq!(view["paused_reason"], "not_started", "{view}");
    w.bc.steps.set_steps_failing(false);
    let (status, view) = call_json(&w, &with_id("broadcast-resume", &id)).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "running");
    assert_eq!(w.bc.steps.take_steps().len(), 1);
}
