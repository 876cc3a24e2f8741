use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use secrecy::SecretString;
use serde_json::json;

use super::*;

type Log = Arc<Mutex<Vec<String>>>;

async fn stub(log: Log) -> String {
    let l1 = log.clone();
    let app = Router::new()
        .route(
            "/v1/templates",
            get(move |headers: HeaderMap, RawQuery(q): RawQuery| async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                l1.lock()
                    .unwrap()
                    .push(format!("GET {} {auth:?}", q.unwrap_or_default()));
                axum::Json(json!({"waba_id": "102290129340398", "synced_at": "2026-11-23T10:00:00Z",
                    "templates": [{"name": "order_update", "language": "en_US", "status": "APPROVED",
                                   "category": "UTILITY", "id": "1", "quality": "GREEN",
                                   "placeholders": {}}]}))
            }),
        )
        .route(
            "/v1/templates/sync",
            post(move |body: String| async move {
                log.lock().unwrap().push(format!("POST {body}"));
                if body.contains("999") {
                    return (
                        StatusCode::NOT_FOUND,
                        axum::Json(json!({"error": {"code": 100, "message": "Unknown WhatsApp Business Account",
                                                    "type": "OAuthException", "fbtrace_id": "t"}})),
                    )
                        .into_response();
                }
                axum::Json(json!({"waba_id": "102290129340398", "pages": 2, "listed": 3, "deleted": 1,
                                  "skipped": 0, "synced_at": "2026-11-23T10:00:00Z"}))
                .into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn list_and_sync_call_the_template_routes_with_the_key() {
    let log: Log = Arc::default();
    let base = stub(log.clone()).await;
    let api = Api::new(&base, SecretString::from("vk_good".to_owned()));

    let listing = list(&api, "102290129340398").await.unwrap();
    assert_eq!(listing.synced_at.as_deref(), Some("2026-11-23T10:00:00Z"));
    assert_eq!(listing.templates[0].name, "order_update");
    assert_eq!(listing.templates[0].quality.as_deref(), Some("GREEN"));

    let report = sync(&api, "102290129340398").await.unwrap();
    assert_eq!((report.pages, report.listed, report.deleted), (2, 3, 1));

    let refused = sync(&api, "999").await;
    assert!(refused.is_err(), "{refused:?}");

    let seen = log.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        "GET waba_id=102290129340398 Some(\"Bearer vk_good\")"
    );
    assert_eq!(seen[1], r#"POST {"waba_id":"102290129340398"}"#);
}
