//! The upload path against a loopback stub of the API and of the presigned URL.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use secrecy::SecretString;
use serde_json::Value;

use super::*;

/// What the stub saw: (what, headers of interest, body).
type Log = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// The API and the "bucket" on one loopback server; `put_status` answers the PUT.
async fn stub(put_status: StatusCode) -> (String, Log) {
    let log: Log = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upload_url = format!("{base}/bucket/uploads/106540352242922/ab.csv?X-Amz-Signature=s");
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let app = Router::new()
        .route(
            "/v1/broadcasts/uploads",
            post(move |h: HeaderMap, body: String| async move {
                let auth = h.get("authorization").and_then(|v| v.to_str().ok());
                assert_eq!(auth, Some("Bearer vk_good"));
                l1.lock()
                    .unwrap()
                    .push(("upload".into(), String::new(), body.into_bytes()));
                let answer = serde_json::json!({
                    "upload_url": upload_url, "method": "PUT",
                    "recipients_csv": {"bucket": "bucket", "key": "uploads/106540352242922/ab.csv"},
                    "expires_at": "2026-11-23T11:00:00Z"});
                (StatusCode::CREATED, answer.to_string())
            }),
        )
        .route(
            "/bucket/uploads/106540352242922/ab.csv",
            put(move |h: HeaderMap, body: axum::body::Bytes| async move {
                assert!(h.get("authorization").is_none(), "no API key to the bucket");
                let len = h
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                l2.lock().unwrap().push(("put".into(), len, body.to_vec()));
                put_status
            }),
        )
        .route(
            "/v1/broadcasts",
            post(move |h: HeaderMap, body: String| async move {
                // The key, in the log's middle field: one per create.
                let key = h
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                l3.lock()
                    .unwrap()
                    .push(("create".into(), key, body.into_bytes()));
                (StatusCode::ACCEPTED, r#"{"id":"bc_9"}"#)
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, log)
}

fn opts() -> CreateOptions {
    CreateOptions {
        phone_number_id: "106540352242922".into(),
        template: "order_update".into(),
        language: "es".into(),
        release: None,
        require_opt_in: false,
    }
}

/// A list of `n` rows (every 100th one bad), over the 64 KiB piece size when `n` is large.
fn list(n: usize) -> Vec<u8> {
    let mut csv = b"to,body.1\r\n".to_vec();
    for i in 0..n {
        if i % 100 == 99 {
            csv.extend_from_slice(b"not-a-phone,x\r\n");
        } else {
            csv.extend_from_slice(format!("3460{i:07},\"n, {i}\"\r\n").as_bytes());
        }
    }
    csv
}

#[tokio::test]
async fn a_list_is_scanned_uploaded_with_progress_and_the_broadcast_names_it() {
    let dir = std::env::temp_dir().join(format!("ventana-upload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("list.csv");
    let bytes = list(10_000);
    std::fs::write(&path, &bytes).unwrap();

    let scan = scan(std::fs::File::open(&path).unwrap(), &path).unwrap();
    assert_eq!((scan.recipients, scan.bad_count), (9_900, 100));
    assert_eq!(scan.bad[0].line, 101);

    let (base, log) = stub(StatusCode::OK).await;
    let api = Api::new(&base, SecretString::from("vk_good".to_owned()));
    let upload = request_upload(&api, "106540352242922").await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let sent = put_file(&upload, &path, move |n| s.lock().unwrap().push(n))
        .await
        .unwrap();
    assert_eq!(sent, bytes.len() as u64);
    let progress = seen.lock().unwrap().clone();
    assert!(progress.len() > 2, "several pieces: {progress:?}");
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert_eq!(progress.last(), Some(&(bytes.len() as u64)));

    let id = create_from_list(&api, &opts(), &upload).await.unwrap();
    assert_eq!(id, "bc_9");
    let log = log.lock().unwrap().clone();
    let what: Vec<&str> = log.iter().map(|(w, _, _)| w.as_str()).collect();
    assert_eq!(what, ["upload", "put", "create"]);
    let asked: Value = serde_json::from_slice(&log[0].2).unwrap();
    assert_eq!(asked["phone_number_id"], "106540352242922");
    assert_eq!(log[1].1, bytes.len().to_string(), "Content-Length sent");
    assert_eq!(log[1].2, bytes, "the file arrives unchanged");
    assert_eq!(log[2].1.len(), 32, "an Idempotency-Key with the create");
    let created: Value = serde_json::from_slice(&log[2].2).unwrap();
    assert_eq!(
        created["recipients_csv"],
        serde_json::json!({"bucket": "bucket", "key": "uploads/106540352242922/ab.csv"})
    );
    assert!(created.get("recipients").is_none());
    assert_eq!(created["template"]["name"], "order_update");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_refused_upload_or_a_bad_header_stops_before_the_broadcast() {
    let dir = std::env::temp_dir().join(format!("ventana-upload-r-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("list.csv");
    std::fs::write(&path, list(10)).unwrap();
    let (base, log) = stub(StatusCode::FORBIDDEN).await;
    let api = Api::new(&base, SecretString::from("vk_good".to_owned()));
    let upload = request_upload(&api, "106540352242922").await.unwrap();
    let err = put_file(&upload, &path, |_| {}).await.unwrap_err();
    assert!(
        matches!(err, CliError::UploadRefused { status: 403, .. }),
        "{err:?}"
    );
    assert!(!log.lock().unwrap().iter().any(|(w, _, _)| w == "create"));

    std::fs::write(&path, "name,city\nAna,Madrid\n").unwrap();
    let err = scan(std::fs::File::open(&path).unwrap(), &path).unwrap_err();
    assert!(matches!(err, CliError::Csv { .. }), "{err:?}");
    std::fs::remove_dir_all(&dir).ok();
}
