//! `GET /{version}/{waba_id}/message_templates`: cursor pagination over the seeded templates.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use serde_json::{Value, json};
use support::*;
use wa_sandbox::{SandboxConfig, Template};

fn seeded(n: usize) -> Vec<Template> {
    (0..n)
        .map(|i| {
            Template::approved(
                format!("order_update_{i:02}"),
                if i % 3 == 0 { "es" } else { "en_US" },
                if i % 2 == 0 { "UTILITY" } else { "MARKETING" },
                json!([{"type": "BODY", "text": format!("Order {{{{1}}}} #{i}")}]),
            )
        })
        .collect()
}

async fn get(url: &str) -> (u16, Value) {
    let response = client().get(url).bearer_auth(TOKEN).send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn pagination_walks_every_page_following_next() {
    let templates = seeded(12);
    let sandbox = start(SandboxConfig {
        templates: templates.clone(),
        ..config()
    })
    .await;
    let waba = SandboxConfig::default().waba_id;
    let mut url = format!(
        "{}/{VERSION}/{waba}/message_templates?limit=5",
        sandbox.url()
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, page) = get(&url).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 5);
        for t in data {
            for field in ["name", "language", "status", "category", "components", "id"] {
                assert!(t.get(field).is_some(), "{field} missing in {t}");
            }
            seen.push(t["name"].as_str().unwrap().to_owned());
        }
        assert!(page["paging"]["cursors"]["before"].is_string());
        assert!(page["paging"]["cursors"]["after"].is_string());
        match page["paging"]["next"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = templates.iter().map(|t| t.name.clone()).collect();
    assert_eq!(seen, want, "every template once, in order");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn after_cursor_filters_and_bad_requests() {
    let sandbox = start(SandboxConfig {
        templates: seeded(6),
        ..config()
    })
    .await;
    let waba = SandboxConfig::default().waba_id;
    let base = format!("{}/{VERSION}/{waba}/message_templates", sandbox.url());

    let (_, first) = get(&format!("{base}?limit=2&category=utility")).await;
    let names: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["order_update_00", "order_update_02"]);
    let after = first["paging"]["cursors"]["after"].as_str().unwrap();
    let (_, second) = get(&format!("{base}?limit=2&category=utility&after={after}")).await;
    assert_eq!(second["data"][0]["name"], "order_update_04");
    assert!(second["paging"].get("next").is_none());

    let (_, named) = get(&format!("{base}?name=order_update_03&fields=name,status")).await;
    assert_eq!(
        named["data"],
        json!([{"name": "order_update_03", "status": "APPROVED", "id": seeded(6)[3].id}])
    );

    let (status, bad_cursor) = get(&format!("{base}?after=not-a-cursor")).await;
    assert_eq!(
        (status, bad_cursor["error"]["code"].clone()),
        (400, json!(131059))
    );
    let (status, other_waba) =
        get(&format!("{}/{VERSION}/1/message_templates", sandbox.url())).await;
    assert_eq!(
        (status, other_waba["error"]["code"].clone()),
        (400, json!(100))
    );
    let unauthorised = client().get(&base).send().await.unwrap();
    assert_eq!(unauthorised.status().as_u16(), 401);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_default_seed_is_metas_hello_world() {
    let sandbox = start(config()).await;
    let waba = SandboxConfig::default().waba_id;
    let (_, page) = get(&format!(
        "{}/{VERSION}/{waba}/message_templates",
        sandbox.url()
    ))
    .await;
    assert_eq!(page["data"][0]["name"], "hello_world");
    assert_eq!(page["data"][0]["language"], "en_US");
    assert_eq!(page["data"][0]["status"], "APPROVED");
    assert!(page["paging"].get("next").is_none());
    sandbox.shutdown().await;
}
