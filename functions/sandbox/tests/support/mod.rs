//! Shared helpers: a sandbox with test settings, a client, and a tiny webhook receiver.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use wa_sandbox::{Sandbox, SandboxConfig, SandboxHandle, StatusDelays};

pub const TOKEN: &str = "test-token";
pub const SECRET: &str = "test-app-secret";
pub const PN: &str = "106540352242922";
pub const VERSION: &str = "v25.0";

/// Test settings: known token and secret, short status delays.
pub fn config() -> SandboxConfig {
    SandboxConfig {
        access_token: TOKEN.into(),
        app_secret: SECRET.into(),
        status_delays: StatusDelays {
            sent: Some(Duration::from_millis(30)),
            delivered: Some(Duration::from_millis(60)),
            read: Some(Duration::from_millis(90)),
        },
        ..SandboxConfig::default()
    }
}

pub async fn start(config: SandboxConfig) -> SandboxHandle {
    Sandbox::start(config).await.unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn text_to(to: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": "hello"},
    })
}

/// Posts `body` as a send from `PN` with the right token; returns the status and JSON body
/// (`Value::Null` when the body is not JSON).
pub async fn send(sandbox: &SandboxHandle, body: &Value) -> (u16, Value) {
    send_from(sandbox, PN, body).await
}

pub async fn send_from(sandbox: &SandboxHandle, pn: &str, body: &Value) -> (u16, Value) {
    let response = client()
        .post(sandbox.messages_url(VERSION, pn))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// One webhook the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: Option<String>,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn status(&self) -> Value {
        self.json()["entry"][0]["changes"][0]["value"]["statuses"][0].clone()
    }
}

#[derive(Clone)]
struct ReceiverState {
    got: Arc<Mutex<Vec<Received>>>,
    refusals_left: Arc<Mutex<u32>>,
    refused: Arc<Mutex<u32>>,
}

/// A tiny webhook receiver on loopback that records every POST to `/webhook` and answers 200,
/// or 500 for the first `refuse_first` POSTs.
pub struct Receiver {
    pub url: String,
    state: ReceiverState,
}

impl Receiver {
    pub async fn start(refuse_first: u32) -> Receiver {
        let state = ReceiverState {
            got: Arc::default(),
            refusals_left: Arc::new(Mutex::new(refuse_first)),
            refused: Arc::default(),
        };
        let app = Router::new()
            .route("/webhook", post(receive))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, state }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    pub fn refused(&self) -> u32 {
        *self.state.refused.lock().unwrap()
    }

    /// Waits until `n` webhooks were accepted, or panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} webhooks arrived: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    {
        let mut left = state.refusals_left.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            *state.refused.lock().unwrap() += 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    state.got.lock().unwrap().push(Received {
        signature: headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
        at: Instant::now(),
    });
    StatusCode::OK
}
