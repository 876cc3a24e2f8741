//! `GraphClient::send_message` against a Graph API stub on 127.0.0.1: each answer Meta can
//! give is classified as `wa_domain::outbound::classify` says it must be.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::post;
use secrecy::SecretString;
use serde_json::{Value, json};
use wa_domain::outbound::{Disposition, GraphOutcome, TransportFailure, classify};
use wa_graph::{GraphClient, Timeouts};

const TOKEN: &str = "EAAG-test-token";
const PNID: &str = "106540352242922";

/// What the stub saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// How the stub answers every request.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
    /// Sleep after reading the request body, before answering.
    delay: Duration,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status: StatusCode::from_u16(status).unwrap(),
        headers: vec![("content-type", "application/json")],
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

fn meta_error(code: i64, message: &str) -> Value {
    json!({"error": {"message": message, "type": "OAuthException", "code": code,
                     "error_data": {"messaging_product": "whatsapp", "details": message},
                     "fbtrace_id": "AbCdEfG"}})
}

struct Stub {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn stub(answer: Answer) -> Stub {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new().route(
        "/{*path}",
        post(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let answer = answer.clone();
            let record = record.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                record.lock().unwrap().push(Seen {
                    path: uri.path().to_owned(),
                    authorization: header("authorization"),
                    content_type: header("content-type"),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                tokio::time::sleep(answer.delay).await;
                let mut headers = HeaderMap::new();
                for (k, v) in &answer.headers {
                    headers.insert(*k, v.parse().unwrap());
                }
                (answer.status, headers, answer.body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Stub { addr, seen }
}

fn client(addr: SocketAddr, timeouts: Timeouts) -> GraphClient {
    GraphClient::new(
        &format!("http://{addr}"),
        "v25.0",
        SecretString::from(TOKEN),
        timeouts,
    )
    .unwrap()
}

fn text_body() -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+16505551234",
           "type": "text", "text": {"body": "Hello"}, "biz_opaque_callback_data": "ventana-1"})
}

async fn send(answer: Answer) -> (GraphOutcome, Vec<Seen>) {
    let stub = stub(answer).await;
    let outcome = client(stub.addr, Timeouts::default())
        .send_message(PNID, &text_body())
        .await;
    let seen = stub.seen.lock().unwrap().clone();
    (outcome, seen)
}

#[tokio::test]
async fn success_gives_the_wamid_and_meta_sees_the_expected_request() {
    let wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA";
    let (outcome, seen) = send(answer(
        200,
        json!({"messaging_product": "whatsapp",
               "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
               "messages": [{"id": wamid}]}),
    ))
    .await;
    assert_eq!(
        classify(&outcome),
        Disposition::Delivered {
            wamid: wamid.into()
        }
    );
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.path, format!("/v25.0/{PNID}/messages"));
    assert_eq!(
        seen.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    assert_eq!(seen.body, text_body());
}

#[tokio::test]
async fn throughput_limit_130429_is_retried_and_slows_the_number() {
    let (outcome, _) = send(answer(400, meta_error(130_429, "(#130429) Rate limit hit"))).await;
    let GraphOutcome::Rejected {
        http_status,
        code,
        fbtrace_id,
        ..
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!((*http_status, *code), (400, 130_429));
    assert_eq!(fbtrace_id.as_deref(), Some("AbCdEfG"));
    assert!(matches!(
        classify(&outcome),
        Disposition::Retry {
            slow_number: true,
            ..
        }
    ));
}

#[tokio::test]
async fn pair_rate_limit_131056_delays_the_recipient() {
    let (outcome, _) = send(answer(
        400,
        meta_error(131_056, "(#131056) Pair rate limit"),
    ))
    .await;
    assert_eq!(classify(&outcome), Disposition::PairRateLimited);
}

#[tokio::test]
async fn re_engagement_131047_is_window_closed() {
    let (outcome, _) = send(answer(400, meta_error(131_047, "Re-engagement message"))).await;
    assert_eq!(classify(&outcome), Disposition::WindowClosed);
}

#[tokio::test]
async fn opt_out_131050_is_recorded_as_opted_out() {
    let (outcome, _) = send(answer(400, meta_error(131_050, "User opted out"))).await;
    assert_eq!(classify(&outcome), Disposition::OptedOut);
}

#[tokio::test]
async fn permanent_codes_are_not_retried() {
    for code in [131_026, 100, 132_001] {
        let (outcome, _) = send(answer(400, meta_error(code, "nope"))).await;
        assert_eq!(
            classify(&outcome),
            Disposition::Permanent { code },
            "{code}"
        );
    }
}

#[tokio::test]
async fn an_expired_token_190_says_stop_sending() {
    let (outcome, _) = send(answer(
        401,
        meta_error(190, "Error validating access token: Session has expired"),
    ))
    .await;
    assert_eq!(classify(&outcome), Disposition::StopSending { code: 190 });
}

#[tokio::test]
async fn server_error_without_a_cloud_api_body_is_retried() {
    let (outcome, _) = send(Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        headers: vec![("content-type", "text/html"), ("x-fb-trace-id", "HdrTrace")],
        body: "<html>oops</html>".into(),
        delay: Duration::ZERO,
    })
    .await;
    let GraphOutcome::Rejected {
        http_status,
        code,
        fbtrace_id,
        ..
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!((*http_status, *code), (500, 0));
    assert_eq!(fbtrace_id.as_deref(), Some("HdrTrace"));
    assert!(matches!(
        classify(&outcome),
        Disposition::Retry {
            slow_number: true,
            ..
        }
    ));
}

#[tokio::test]
async fn refused_connection_never_left_so_it_is_retried() {
    // Bind a port on loopback, then free it: nothing listens there any more.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let outcome = client(addr, Timeouts::default())
        .send_message(PNID, &text_body())
        .await;
    assert_eq!(
        outcome,
        GraphOutcome::Transport(TransportFailure::ConnectFailed)
    );
    assert!(matches!(
        classify(&outcome),
        Disposition::Retry {
            slow_number: true,
            ..
        }
    ));
}

#[tokio::test]
async fn timeout_after_the_request_was_read_is_unconfirmed() {
    let mut slow = answer(200, json!({"messages": [{"id": "wamid.late"}]}));
    slow.delay = Duration::from_secs(5);
    let stub = stub(slow).await;
    let timeouts = Timeouts {
        connect: Duration::from_millis(200),
        request: Duration::from_millis(500),
    };
    let outcome = client(stub.addr, timeouts)
        .send_message(PNID, &text_body())
        .await;
    assert_eq!(
        outcome,
        GraphOutcome::Transport(TransportFailure::TimedOutAfterSend)
    );
    assert_eq!(classify(&outcome), Disposition::Unconfirmed);
    // Meta (the stub) did get the message: resending blindly would duplicate it.
    assert_eq!(stub.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_base_url_path_prefix_is_kept() {
    let stub = stub(answer(200, json!({"messages": [{"id": "wamid.1"}]}))).await;
    let client = GraphClient::new(
        &format!("http://{}/graph", stub.addr),
        "v26.0",
        SecretString::from(TOKEN),
        Timeouts::default(),
    )
    .unwrap();
    let outcome = client.send_message(PNID, &text_body()).await;
    assert!(
        matches!(outcome, GraphOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        stub.seen.lock().unwrap()[0].path,
        format!("/graph/v26.0/{PNID}/messages")
    );
}

#[tokio::test]
async fn an_invalid_phone_number_id_is_refused_without_a_request() {
    let stub = stub(answer(200, json!({"messages": [{"id": "wamid.1"}]}))).await;
    let outcome = client(stub.addr, Timeouts::default())
        .send_message("../../me", &text_body())
        .await;
    assert_eq!(classify(&outcome), Disposition::Permanent { code: 100 });
    assert!(stub.seen.lock().unwrap().is_empty());
}
