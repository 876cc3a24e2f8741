//! `wa-graph`'s template listing (`TemplateSource`) against the sandbox: every page is read,
//! the sandbox's listing reads as `wa_domain::templates::parse_listing` expects, and the
//! domain sync stores what the sandbox lists.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use support::*;
use wa_domain::templates::{
    HeaderShape, Placeholders, SourceError, TemplateCategory, TemplateShape, TemplateSource,
    TemplateStatus, TemplateStore, sync,
};
use wa_domain::testing::InMemoryStore;
use wa_graph::{GraphClient, TEMPLATE_PAGE_SIZE, Timeouts};
use wa_sandbox::{SandboxConfig, Template};

fn graph(url: &str, token: &str) -> GraphClient {
    GraphClient::new(
        url,
        VERSION,
        SecretString::from(token),
        Timeouts {
            connect: Duration::from_millis(500),
            request: Duration::from_secs(2),
        },
    )
    .unwrap()
}

fn waba() -> String {
    SandboxConfig::default().waba_id
}

#[tokio::test]
async fn every_page_of_a_long_listing_is_read_and_synced() {
    let n = 2 * TEMPLATE_PAGE_SIZE + 30;
    let templates: Vec<Template> = (0..n)
        .map(|i| {
            Template::approved(
                format!("t{i:03}"),
                "en_US",
                if i % 2 == 0 { "UTILITY" } else { "MARKETING" },
                json!([{"type": "BODY", "text": "Order {{1}}"}]),
            )
        })
        .collect();
    let sandbox = start(SandboxConfig {
        templates: templates.clone(),
        ..config()
    })
    .await;
    let client = graph(sandbox.url(), TOKEN);

    let first = client.page(&waba(), None).await.unwrap();
    assert_eq!(first.templates.len(), TEMPLATE_PAGE_SIZE);
    let after = first.after.clone().expect("a second page");
    let second = client.page(&waba(), Some(&after)).await.unwrap();
    assert_eq!(second.templates[0].name, "t100");
    assert!(second.after.is_some());

    let store = InMemoryStore::default();
    let report = sync(&client, &store, &waba(), 1_700_000_000).await.unwrap();
    assert_eq!((report.pages, report.listed, report.deleted), (3, n, 0));
    let stored = store.templates(&waba()).await.unwrap();
    assert_eq!(stored.len(), n);
    assert_eq!(store.synced_at(&waba()).await.unwrap(), Some(1_700_000_000));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_default_seed_reads_as_meta_templates_with_their_shapes() {
    let sandbox = start(config()).await;
    let page = graph(sandbox.url(), TOKEN)
        .page(&waba(), None)
        .await
        .unwrap();
    assert_eq!(page.after, None);
    let by_name = |n: &str| page.templates.iter().find(|t| t.name == n).unwrap();
    assert_eq!(page.templates.len(), 3);

    let sale = by_name("summer_sale");
    assert_eq!(sale.category, TemplateCategory::Marketing);
    assert_eq!(sale.status, TemplateStatus::Approved);
    assert!(sale.id.as_deref().is_some_and(|id| id.len() == 16));
    let shape = TemplateShape::of(&sale.components);
    assert_eq!(shape.body.count(), 2);
    assert_eq!(shape.buttons.len(), 2);

    let order = by_name("order_update");
    assert_eq!(order.category, TemplateCategory::Utility);
    let shape = TemplateShape::of(&order.components);
    assert_eq!(shape.body.count(), 3);
    assert_eq!(shape.buttons.len(), 1);
    assert_eq!(
        shape.header,
        Some(HeaderShape::Text(Placeholders::of("Order {{1}}")))
    );
    assert!(shape.buttons[0].dynamic);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn refusals_and_outages_map_to_the_ports_errors() {
    let sandbox = start(config()).await;
    let bad_token = graph(sandbox.url(), "wrong").page(&waba(), None).await;
    assert!(
        matches!(
            bad_token,
            Err(SourceError::Refused {
                status: 401,
                code: Some(190),
                ..
            })
        ),
        "{bad_token:?}"
    );
    let other = graph(sandbox.url(), TOKEN).page("999", None).await;
    assert!(
        matches!(
            other,
            Err(SourceError::Refused {
                status: 400,
                code: Some(100),
                ..
            })
        ),
        "{other:?}"
    );
    let url = sandbox.url().to_owned();
    sandbox.shutdown().await;
    let down = graph(&url, TOKEN).page(&waba(), None).await;
    assert!(matches!(down, Err(SourceError::Unavailable(_))), "{down:?}");
}
