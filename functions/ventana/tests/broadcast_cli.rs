//! The `ventana broadcast` binary against a loopback stub of the API: what it prints and
//! its exit codes.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test file: helpers panic with the reason

use std::process::Command;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};

/// Serves `app` on a thread of its own (the test blocks on the child process).
fn serve(app: Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await
        })
    });
    format!("http://{addr}")
}

fn authorised(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer vk_good")
}

fn stub() -> String {
    serve(
        Router::new()
            .route(
                "/v1/broadcasts",
                post(|h: HeaderMap, body: String| async move {
                    if !authorised(&h) {
                        return (StatusCode::UNAUTHORIZED, r#"{"error":{"message":"unknown or revoked API key"}}"#.to_owned());
                    }
                    let n = body.matches(r#""to":"#).count();
                    (StatusCode::ACCEPTED, format!(r#"{{"id":"bc_{n}"}}"#))
                }),
            )
            .route(
                "/v1/broadcasts/{id}",
                get(|| async {
                    r#"{"id":"bc_2","state":"completed","counts":{"total":2,"delivered":1,"failed":1},"errors":{"131026":1}}"#
                }),
            ),
    )
}

fn ventana(base: &str, key: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ventana"))
        .args(args)
        .env_clear()
        .env("VENTANA_URL", base)
        .env("VENTANA_API_KEY", key)
        .output()
        .unwrap()
}

fn list() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("ventana-bc-{}.csv", std::process::id()));
    std::fs::write(
        &path,
        "to,body.1\n34600112233,Ana\n34600,short\n34600445566,Luis\n",
    )
    .unwrap();
    path
}

#[test]
fn create_prints_the_id_then_the_final_report_and_names_bad_rows() {
    let base = stub();
    let csv = list();
    let args = [
        "broadcast",
        "create",
        "--number",
        "106540352242922",
        "--template",
        "order_update",
        "--language",
        "es",
        "--csv",
        csv.to_str().unwrap(),
    ];
    let out = ventana(&base, "vk_good", &args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains(":3: "), "{stderr}");
    assert!(
        stderr.contains("2 recipients to send, 1 bad rows skipped"),
        "{stderr}"
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("bc_2"));
    assert!(
        stdout.contains("broadcast bc_2: completed, 2 recipients"),
        "{stdout}"
    );
    assert!(stdout.contains("131026"), "{stdout}");

    let refused = ventana(&base, "vk_revoked", &args);
    assert_eq!(refused.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("ventana: the API refused the key (HTTP 401): unknown or revoked API key"),
        "{stderr}"
    );
    assert!(refused.stdout.is_empty());
    std::fs::remove_file(csv).unwrap();
}
