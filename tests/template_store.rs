//! `wa-dynamodb`'s `TemplateStore` against moto: templates newest-wins, listing order, the
//! sync marker, the number → account mapping (written once per process), and a whole sync
//! through `wa_domain::templates::sync`. Each test makes its own table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use wa_domain::templates::{
    DELETED, SourceError, TemplateCategory, TemplateDef, TemplatePage, TemplateSource,
    TemplateStatus, TemplateStore, parse_listing, sync,
};
use wa_tests::fresh_table;

fn def(name: &str, language: &str, status: TemplateStatus, at: i64) -> TemplateDef {
    TemplateDef {
        waba_id: "WABA1".into(),
        name: name.into(),
        language: language.into(),
        id: Some(format!("id-{name}")),
        status,
        category: TemplateCategory::Utility,
        components: json!([{"type": "BODY", "text": "Hola {{1}}"}]),
        quality: Some("GREEN".into()),
        updated_at: at,
    }
}

#[tokio::test]
async fn templates_round_trip_newest_wins_in_name_then_language_order() {
    let (store, _, _) = fresh_table().await;
    assert_eq!(store.template("WABA1", "a", "en").await.unwrap(), None);
    let a = def("a", "en", TemplateStatus::Approved, 100);
    store.put_template(&a).await.unwrap();
    assert_eq!(
        store.template("WABA1", "a", "en").await.unwrap(),
        Some(a.clone())
    );

    // Older news is ignored, newer (or as new) replaces.
    store
        .put_template(&def("a", "en", TemplateStatus::Paused, 99))
        .await
        .unwrap();
    assert_eq!(
        store
            .template("WABA1", "a", "en")
            .await
            .unwrap()
            .unwrap()
            .status,
        TemplateStatus::Approved
    );
    store
        .put_template(&def("a", "en", TemplateStatus::Paused, 101))
        .await
        .unwrap();
    assert_eq!(
        store
            .template("WABA1", "a", "en")
            .await
            .unwrap()
            .unwrap()
            .status,
        TemplateStatus::Paused
    );

    for (name, lang) in [("a_b", "en"), ("a", "es"), ("b", "en_US")] {
        store
            .put_template(&def(name, lang, TemplateStatus::Approved, 1))
            .await
            .unwrap();
    }
    let mut other = def("zz", "en", TemplateStatus::Approved, 1);
    other.waba_id = "WABA2".into();
    store.put_template(&other).await.unwrap();
    let listed: Vec<(String, String)> = store
        .templates("WABA1")
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.language))
        .collect();
    let want: Vec<(String, String)> = [("a", "en"), ("a", "es"), ("a_b", "en"), ("b", "en_US")]
        .iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect();
    assert_eq!(listed, want);
    // A webhook-only template (components null) round-trips too.
    let mut bare = def("c", "en", TemplateStatus::Approved, 5);
    bare.components = serde_json::Value::Null;
    store.put_template(&bare).await.unwrap();
    assert_eq!(
        store.template("WABA1", "c", "en").await.unwrap(),
        Some(bare)
    );
}

#[tokio::test]
async fn sync_marker_and_number_mapping() {
    let (store, _, _) = fresh_table().await;
    assert_eq!(store.synced_at("WABA1").await.unwrap(), None);
    store.mark_synced("WABA1", 200).await.unwrap();
    store.mark_synced("WABA1", 150).await.unwrap();
    assert_eq!(store.synced_at("WABA1").await.unwrap(), Some(200));

    assert_eq!(store.waba_of("106540352242922").await.unwrap(), None);
    let before = store.metrics().snapshot();
    for _ in 0..5 {
        store
            .remember_number("106540352242922", "WABA1")
            .await
            .unwrap();
    }
    let cost = store.metrics().snapshot().since(before);
    assert_eq!(cost.writes, 1, "remembered once per process");
    assert_eq!(
        store.waba_of("106540352242922").await.unwrap().as_deref(),
        Some("WABA1")
    );
    // Another process (a fresh store on the same table) writes nothing for a known pair...
    let again = wa_dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&wa_tests::moto_config().await),
        store.table(),
    );
    again
        .remember_number("106540352242922", "WABA1")
        .await
        .unwrap();
    // ...and a number that moved to another account is remapped.
    again
        .remember_number("106540352242922", "WABA2")
        .await
        .unwrap();
    assert_eq!(
        store.waba_of("106540352242922").await.unwrap().as_deref(),
        Some("WABA2")
    );
}

/// Two pages, as the Graph API gives them.
struct TwoPages;

impl TemplateSource for TwoPages {
    async fn page(&self, waba_id: &str, after: Option<&str>) -> Result<TemplatePage, SourceError> {
        let body = match after {
            None => json!({"data": [
                {"name": "order_update", "language": "es", "status": "APPROVED", "category": "UTILITY", "id": "1",
                 "components": [{"type": "BODY", "text": "Hola {{1}}"}]}],
                "paging": {"cursors": {"after": "MQ"}, "next": "https://graph/next"}}),
            Some("MQ") => json!({"data": [
                {"name": "summer_sale", "language": "en_US", "status": "PAUSED", "category": "MARKETING", "id": "2",
                 "components": [], "quality_score": {"score": "RED"}}],
                "paging": {"cursors": {"after": "Mg"}}}),
            Some(_) => panic!("unexpected cursor"),
        };
        parse_listing(waba_id, body.to_string().as_bytes())
            .map_err(|e| SourceError::Malformed(e.into()))
    }
}

#[tokio::test]
async fn a_sync_stores_the_listing_and_marks_the_rest_deleted() {
    let (store, _, _) = fresh_table().await;
    store
        .put_template(&def("gone", "en", TemplateStatus::Approved, 10))
        .await
        .unwrap();
    let report = sync(&TwoPages, &store, "WABA1", 1_000).await.unwrap();
    assert_eq!((report.pages, report.listed, report.deleted), (2, 2, 1));
    let sale = store
        .template("WABA1", "summer_sale", "en_US")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sale.status, TemplateStatus::Paused);
    assert_eq!(sale.quality.as_deref(), Some("RED"));
    assert_eq!(sale.updated_at, 1_000);
    assert_eq!(
        store
            .template("WABA1", "gone", "en")
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        DELETED
    );
    assert_eq!(store.synced_at("WABA1").await.unwrap(), Some(1_000));
}
