use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use secrecy::SecretString;
use serde_json::json;

use super::*;
use crate::api::ApiError;

/// What the stub saw: (method path?query, body).
type Log = Arc<Mutex<Vec<(String, String)>>>;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn api(base: &str) -> Api {
    Api::new(base, SecretString::from("vk_good".to_owned()))
}

fn opts() -> CreateOptions {
    CreateOptions {
        phone_number_id: "106540352242922".into(),
        template: "order_update".into(),
        language: "es".into(),
        release: Some((20, 30)),
        require_opt_in: true,
    }
}

const LIST: &str = "to,body.1,body.2\r\n\
+34 600 11 22 33,\"Ana, María\",\"order \"\"A-1\"\"\"\n\
34600445566,Luis,B-2\n\
34600112233,Ana again,A-3\n\
not-a-phone,Eva,C-3\n\
34600778899,Rosa,D-4\n";

#[tokio::test]
async fn create_posts_the_usable_rows_inline_and_reports_bad_rows_by_line() {
    let log: Log = Arc::default();
    let app = Router::new()
        .route(
            "/v1/broadcasts",
            post(
                |State(log): State<Log>, h: HeaderMap, body: String| async move {
                    let auth = h.get("authorization").and_then(|v| v.to_str().ok());
                    assert_eq!(auth, Some("Bearer vk_good"));
                    log.lock()
                        .unwrap()
                        .push(("POST /v1/broadcasts".into(), body));
                    (StatusCode::ACCEPTED, r#"{"id":"bc_1"}"#)
                },
            ),
        )
        .with_state(log.clone());
    let base = serve(app).await;

    let p = prepare(LIST.as_bytes(), Path::new("list.csv"), &opts()).unwrap();
    assert_eq!((p.recipients, p.bad_count), (4, 1));
    assert_eq!(p.bad.len(), 1);
    assert_eq!(p.bad[0].line, 5, "{:?}", p.bad);
    let id = create(&api(&base), &p).await.unwrap();
    assert_eq!(id, "bc_1");

    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    let body: Value = serde_json::from_str(&log[0].1).unwrap();
    assert_eq!(body["phone_number_id"], "106540352242922");
    assert_eq!(
        body["template"],
        json!({"name": "order_update", "language": "es"})
    );
    assert_eq!(body["release"], json!({"percent": 20, "every_secs": 30}));
    assert_eq!(body["require_opt_in"], true);
    let r = body["recipients"].as_array().unwrap();
    let to: Vec<&str> = r.iter().map(|x| x["to"].as_str().unwrap()).collect();
    // The duplicate is sent (the planner records it); the bad row is not.
    assert_eq!(
        to,
        ["34600112233", "34600445566", "34600112233", "34600778899"]
    );
    assert_eq!(
        r[0]["components"],
        json!([{"type": "body", "parameters": [
            {"type": "text", "text": "Ana, María"},
            {"type": "text", "text": "order \"A-1\""}]}])
    );
    // What the API will parse is what was meant.
    let parsed = wa_domain::broadcast::create::parse(log[0].1.as_bytes()).unwrap();
    assert_eq!(parsed.recipients.len(), 4);
    assert!(parsed.recipients.iter().all(|r| r.problem.is_none()));
}

/// What a stub for `POST /v1/broadcasts` saw: each request's `Idempotency-Key`.
type Keys = Arc<Mutex<Vec<Option<String>>>>;

/// A stub that answers the `POST`s with `answers` in turn (status, body), the last one after.
async fn create_stub(answers: Vec<(StatusCode, &'static str)>) -> (String, Keys) {
    let keys: Keys = Arc::default();
    let app = Router::new()
        .route(
            "/v1/broadcasts",
            post(move |State(keys): State<Keys>, h: HeaderMap| {
                let answers = answers.clone();
                async move {
                    let mut k = keys.lock().unwrap();
                    k.push(
                        h.get("idempotency-key")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                    );
                    answers[(k.len() - 1).min(answers.len() - 1)]
                }
            }),
        )
        .with_state(keys.clone());
    (serve(app).await, keys)
}

#[tokio::test]
async fn a_create_that_fails_on_the_way_is_sent_again_with_the_same_idempotency_key() {
    let p = prepare(LIST.as_bytes(), Path::new("list.csv"), &opts()).unwrap();
    let (base, keys) = create_stub(vec![
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":{"message":"busy"}}"#,
        ),
        (StatusCode::ACCEPTED, r#"{"id":"bc_1"}"#),
    ])
    .await;
    assert_eq!(create(&api(&base), &p).await.unwrap(), "bc_1");
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 2);
    let first = keys[0].clone().expect("an Idempotency-Key");
    assert_eq!(first.len(), 32);
    assert_eq!(keys[1].as_deref(), Some(first.as_str()));

    // Another create is another broadcast: another key.
    let (base, again) = create_stub(vec![(StatusCode::ACCEPTED, r#"{"id":"bc_2"}"#)]).await;
    create(&api(&base), &p).await.unwrap();
    assert_ne!(again.lock().unwrap()[0].as_deref(), Some(first.as_str()));
}

#[tokio::test]
async fn a_refused_create_is_not_sent_again_and_a_failing_one_gives_up() {
    let p = prepare(LIST.as_bytes(), Path::new("list.csv"), &opts()).unwrap();
    let (base, keys) = create_stub(vec![(
        StatusCode::BAD_REQUEST,
        r#"{"error":{"message":"template promo is PAUSED"}}"#,
    )])
    .await;
    let err = create(&api(&base), &p).await.unwrap_err();
    assert!(err.to_string().contains("PAUSED"), "{err}");
    assert_eq!(keys.lock().unwrap().len(), 1);

    let (base, keys) = create_stub(vec![(StatusCode::BAD_GATEWAY, "")]).await;
    let err = create(&api(&base), &p).await.unwrap_err();
    assert!(err.to_string().contains("502"), "{err}");
    assert_eq!(
        keys.lock().unwrap().len(),
        crate::api::IDEMPOTENT_ATTEMPTS as usize
    );
}

#[test]
fn a_list_over_the_inline_limit_is_refused_naming_the_limit() {
    let mut list = String::from("to,body.1\n");
    let long = "x".repeat(900);
    for i in 0..1300 {
        list.push_str(&format!("3460000{i:04},{long}\n"));
    }
    let err = prepare(list.as_bytes(), Path::new("big.csv"), &opts()).unwrap_err();
    assert!(matches!(err, CliError::TooLarge { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("1048576-byte (1 MiB) limit"), "{text}");

    let empty = prepare(
        "to,body.1\nnope,x\n".as_bytes(),
        Path::new("e.csv"),
        &opts(),
    )
    .unwrap_err();
    assert!(
        matches!(empty, CliError::NoRecipients { bad: 1 }),
        "{empty:?}"
    );
    let no_header = prepare("".as_bytes(), Path::new("e.csv"), &opts()).unwrap_err();
    assert!(matches!(no_header, CliError::Csv { .. }), "{no_header:?}");
}

fn view_json(state: &str, settled: u64) -> Value {
    json!({"id": "bc_1", "state": state, "counts": {
        "total": 10, "queued": 10 - settled, "sent": 0, "delivered": settled.saturating_sub(3),
        "read": 1, "failed": 2, "skipped_opted_out": 0, "skipped_duplicate": 0,
        "skipped_invalid": 0, "waiting_for_limit": 0},
        "errors": {"131047": 2}})
}

#[tokio::test]
async fn watch_polls_until_completed_and_reports_every_outcome() {
    let log: Log = Arc::default();
    let app = Router::new()
        .route(
            "/v1/broadcasts/{id}",
            get(
                |State(log): State<Log>, UrlPath(id): UrlPath<String>| async move {
                    let mut log = log.lock().unwrap();
                    log.push((format!("GET {id}"), String::new()));
                    let n = log.len() as u64;
                    let state = if n >= 3 { "completed" } else { "running" };
                    axum::Json(view_json(state, if n >= 3 { 10 } else { n * 3 }))
                },
            ),
        )
        .with_state(log.clone());
    let base = serve(app).await;
    let mut seen = Vec::new();
    let v = watch(&api(&base), "bc_1", Duration::from_millis(5), |v| {
        seen.push(v.progress_line())
    })
    .await
    .unwrap();
    assert_eq!(log.lock().unwrap().len(), 3);
    assert!(v.completed());
    assert_eq!(seen.len(), 3);
    assert!(seen[0].starts_with("running: 3/10 settled"), "{seen:?}");
    assert!(seen[2].starts_with("completed: 10/10 settled"), "{seen:?}");
    let r = report(&v);
    assert!(
        r.contains("broadcast bc_1: completed, 10 recipients"),
        "{r}"
    );
    let has = |words: &[&str]| {
        r.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == words)
    };
    assert!(has(&["delivered", "7"]), "{r}");
    assert!(has(&["read", "1"]), "{r}");
    assert!(has(&["failed", "2"]), "{r}");
    assert!(has(&["skipped_duplicate", "0"]), "{r}");
    assert!(has(&["131047", "2"]), "{r}");
}

#[tokio::test]
async fn pause_and_resume_post_to_their_routes() {
    let log: Log = Arc::default();
    let app = Router::new()
        .route(
            "/v1/broadcasts/{id}/{action}",
            post(
                |State(log): State<Log>, UrlPath((id, action)): UrlPath<(String, String)>| async move {
                    log.lock().unwrap().push((format!("POST {id}/{action}"), String::new()));
                    let state = if action == "pause" { "paused" } else { "running" };
                    axum::Json(json!({"id": id, "state": state, "paused_reason": "operator", "counts": {"total": 1}}))
                },
            ),
        )
        .with_state(log.clone());
    let base = serve(app).await;
    let v = set_paused(&api(&base), "bc_1", true).await.unwrap();
    assert_eq!(
        v.progress_line(),
        "paused (operator): 0/1 settled, 0 queued, 0 waiting for the messaging limit, 0 failed"
    );
    let v = set_paused(&api(&base), "bc_1", false).await.unwrap();
    assert_eq!(v.state, "running");
    let seen: Vec<String> = log.lock().unwrap().iter().map(|e| e.0.clone()).collect();
    assert_eq!(seen, ["POST bc_1/pause", "POST bc_1/resume"]);
    assert!(matches!(
        set_paused(&api(&base), "../x", true).await,
        Err(CliError::BadBroadcastId(_))
    ));
}

#[tokio::test]
async fn export_concatenates_every_page_under_one_header() {
    let log: Log = Arc::default();
    let app = Router::new()
        .route(
            "/v1/broadcasts/{id}/recipients",
            get(|State(log): State<Log>, RawQuery(q): RawQuery| async move {
                let q = q.unwrap_or_default();
                log.lock().unwrap().push((q.clone(), String::new()));
                let (body, next) = if !q.contains("cursor=") {
                    (
                        "index,to,outcome\n0,34600112233,delivered\n1,34600445566,failed\n",
                        Some("p 2/3"),
                    )
                } else if q.contains("cursor=p%202%2F3") {
                    (
                        "index,to,outcome\r\n2,34600112233,\"skipped\r\n\r\nduplicate\"\r\n",
                        Some("3"),
                    )
                } else {
                    ("index,to,outcome\n3,34600778899,read", None)
                };
                let mut h = HeaderMap::new();
                h.insert("content-type", "text/csv".parse().unwrap());
                if let Some(n) = next {
                    h.insert(NEXT_CURSOR_HEADER, n.parse().unwrap());
                }
                (h, body).into_response()
            }),
        )
        .with_state(log.clone());
    let base = serve(app).await;
    let dir = std::env::temp_dir().join(format!("ventana-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("ledger.csv");
    let rows = export(&api(&base), "bc_1", &out).await.unwrap();
    assert_eq!(rows, 4);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text,
        "index,to,outcome\n0,34600112233,delivered\n1,34600445566,failed\n\
         2,34600112233,\"skipped\r\n\r\nduplicate\"\r\n3,34600778899,read\n"
    );
    assert_eq!(text.matches("index,to,outcome").count(), 1);
    let queries: Vec<String> = log.lock().unwrap().iter().map(|e| e.0.clone()).collect();
    assert_eq!(queries.len(), 3);
    assert!(
        queries[0].starts_with("format=csv&limit=1000"),
        "{queries:?}"
    );
    assert!(queries[2].ends_with("cursor=3"), "{queries:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_refused_key_is_a_clear_error_with_its_own_exit_code() {
    let app = Router::new().route(
        "/v1/broadcasts/{id}",
        get(|| async {
            (
                StatusCode::UNAUTHORIZED,
                r#"{"error":{"message":"unknown or revoked API key"}}"#,
            )
        }),
    );
    let base = serve(app).await;
    let err = view(&api(&base), "bc_1").await.unwrap_err();
    assert!(
        matches!(
            err,
            CliError::Api(ApiError::Unauthorised { status: 401, .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 3);
    assert_eq!(
        err.to_string(),
        "the API refused the key (HTTP 401): unknown or revoked API key"
    );
}
