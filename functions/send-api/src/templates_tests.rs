//! Template API tests on the `events/send-api/templates-*.json` fixtures, with the in-memory
//! store and a fake listing.

use std::sync::Mutex;

use lambda_http::{Body, RequestExt};
use serde_json::{Value, json};
use wa_domain::auth::hash_key;
use wa_domain::ports::{ApiKeyStore, KeyScope};
use wa_domain::templates::{
    SourceError, TemplatePage, TemplateSource, TemplateStore, parse_listing,
};
use wa_domain::testing::InMemoryStore;

use super::{Route, handle, route};

const WABA: &str = "102290129340398";
const PNID: &str = "106540352242922";
const NOW: i64 = 1_795_428_000;

fn fixture(case: &str) -> lambda_http::Request {
    let path = format!(
        "{}/../../events/send-api/{case}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    lambda_http::request::from_str(&raw).unwrap()
}

/// Two pages: `summer_sale` then `order_update`; or a refusal.
struct FakeGraph {
    refuse: bool,
    asked: Mutex<Vec<Option<String>>>,
}

impl FakeGraph {
    fn new(refuse: bool) -> Self {
        FakeGraph {
            refuse,
            asked: Mutex::new(Vec::new()),
        }
    }
}

impl TemplateSource for FakeGraph {
    async fn page(&self, waba_id: &str, after: Option<&str>) -> Result<TemplatePage, SourceError> {
        self.asked.lock().unwrap().push(after.map(str::to_owned));
        if self.refuse {
            return Err(SourceError::Refused {
                status: 400,
                code: Some(100),
                message: "internal-graph-text".into(),
            });
        }
        let page = match after {
            None => {
                json!({"data": [{"name": "summer_sale", "language": "en_US", "status": "APPROVED",
                "category": "MARKETING", "id": "11",
                "components": [{"type": "BODY", "text": "Hi {{1}}, {{2}} off"},
                               {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop"}]}]}],
                "paging": {"cursors": {"after": "P1"}, "next": "https://x/next"}})
            }
            Some(_) => {
                json!({"data": [{"name": "order_update", "language": "en_US", "status": "APPROVED",
                "category": "UTILITY", "id": "12", "quality_score": {"score": "GREEN"},
                "components": [{"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
                               {"type": "BODY", "text": "Hi {{1}}"},
                               {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track",
                                                                "url": "https://e.x/{{1}}"}]}]}]})
            }
        };
        Ok(parse_listing(waba_id, page.to_string().as_bytes()).unwrap())
    }
}

async fn store(scope: KeyScope) -> InMemoryStore {
    let store = InMemoryStore::default();
    store
        .put_key(&hash_key("test-api-key"), &scope, "t")
        .await
        .unwrap();
    store.remember_number(PNID, WABA).await.unwrap();
    store
}

async fn call(store: &InMemoryStore, graph: &FakeGraph, case: &str) -> (u16, Value) {
    let req = fixture(case);
    let r = route(req.raw_http_path()).unwrap();
    let res = handle(store, Some(graph), &req, r, NOW, "trace").await;
    let status = res.status().as_u16();
    let body = match res.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("{other:?}"),
    };
    (status, body)
}

#[test]
fn only_the_two_paths_are_template_routes() {
    assert_eq!(route("/v1/templates"), Some(Route::List));
    assert_eq!(route("/v1/templates/sync"), Some(Route::Sync));
    assert_eq!(route("/v1/templates/x"), None);
    assert_eq!(route("/v1/templatesx"), None);
}

#[tokio::test]
async fn sync_reads_every_page_and_the_list_shows_the_registry() {
    let store = store(KeyScope::Numbers(vec![PNID.into()])).await;
    let graph = FakeGraph::new(false);

    let (status, before) = call(&store, &graph, "templates-list").await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["synced_at"], Value::Null);
    assert_eq!(before["templates"], json!([]));

    let (status, report) = call(&store, &graph, "templates-sync").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["waba_id"], WABA);
    assert_eq!(
        (report["pages"].clone(), report["listed"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(*graph.asked.lock().unwrap(), [None, Some("P1".to_owned())]);

    let (status, list) = call(&store, &graph, "templates-list").await;
    assert_eq!(status, 200);
    assert_eq!(list["synced_at"], "2026-11-23T10:00:00Z");
    let t = &list["templates"];
    assert_eq!(t.as_array().unwrap().len(), 2);
    let order = &t[0];
    assert_eq!(order["name"], "order_update");
    assert_eq!(order["category"], "UTILITY");
    assert_eq!(order["quality"], "GREEN");
    assert_eq!(order["placeholders"]["header"]["params"], json!(["1"]));
    assert_eq!(
        order["placeholders"]["buttons"][0],
        json!({"type": "URL", "dynamic": true})
    );
    assert_eq!(t[1]["name"], "summer_sale");
    assert_eq!(t[1]["placeholders"]["body"], json!(["1", "2"]));
}

#[tokio::test]
async fn keys_reach_only_the_accounts_of_their_numbers() {
    let scoped = store(KeyScope::Numbers(vec![PNID.into()])).await;
    let graph = FakeGraph::new(false);
    let (status, body) = call(&scoped, &graph, "templates-sync-other-waba").await;
    assert_eq!((status, body["error"]["code"].clone()), (403, json!(10)));
    assert!(graph.asked.lock().unwrap().is_empty());
    let (status, body) = call(&scoped, &graph, "templates-list-no-key").await;
    assert_eq!((status, body["error"]["code"].clone()), (401, json!(190)));

    // A number whose account is not known yet gives no account.
    let unknown = store(KeyScope::Numbers(vec!["555".into()])).await;
    let (status, _) = call(&unknown, &graph, "templates-list").await;
    assert_eq!(status, 403);

    let any = store(KeyScope::AnyNumber).await;
    let (status, _) = call(&any, &graph, "templates-sync-other-waba").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_bodies_and_graph_refusals_are_answered_without_marking_anything() {
    let store = store(KeyScope::AnyNumber).await;
    let (status, body) = call(&store, &FakeGraph::new(false), "templates-sync-bad").await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!(100)));

    let (status, body) = call(&store, &FakeGraph::new(true), "templates-sync").await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.to_string().contains("internal-graph-text"), "{body}");
    assert_eq!(store.synced_at(WABA).await.unwrap(), None);

    let req = fixture("templates-sync");
    let res = handle::<_, FakeGraph>(&store, None, &req, Route::Sync, NOW, "t").await;
    assert_eq!(res.status().as_u16(), 503);
    let res = handle(
        &store,
        Some(&FakeGraph::new(false)),
        &req,
        Route::List,
        NOW,
        "t",
    )
    .await;
    assert_eq!(res.status().as_u16(), 405);
}
