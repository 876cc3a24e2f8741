//! Ventana's own Graph client (`wa-graph`) against the sandbox: every answer the sandbox
//! gives reads as the outcome the same answer from Meta would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use support::*;
use wa_domain::outbound::{GraphOutcome, TransportFailure};
use wa_graph::{GraphClient, Timeouts};
use wa_sandbox::{FailureMode, FailureRule};

fn graph(url: &str, token: &str) -> GraphClient {
    GraphClient::new(
        url,
        VERSION,
        SecretString::from(token),
        Timeouts {
            connect: Duration::from_millis(500),
            request: Duration::from_secs(1),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn every_answer_reads_as_the_matching_graph_outcome() {
    let sandbox = start(config()).await;
    let client = graph(sandbox.url(), TOKEN);
    let body = json!({"messaging_product": "whatsapp", "to": "+16505551234", "type": "text",
                      "text": {"body": "hi"}, "biz_opaque_callback_data": "vnt.X"});

    match client.send_message(PN, &body).await {
        GraphOutcome::Accepted { wamid, .. } => {
            assert_eq!(sandbox.sends()[0].wamid(), Some(wamid.as_str()));
        }
        other => panic!("expected Accepted, got {other:?}"),
    }

    for (mode, http, code) in [
        (FailureMode::Throughput, 400, 130429),
        (FailureMode::WindowClosed, 400, 131047),
        (FailureMode::PairRate, 400, 131056),
        (FailureMode::OptedOut, 400, 131050),
        (FailureMode::Undeliverable, 400, 131026),
        (FailureMode::ServerError, 500, 131000),
        (FailureMode::Unavailable, 503, 0),
    ] {
        sandbox.set_failure(FailureRule::new(mode).times(1));
        match client.send_message(PN, &body).await {
            GraphOutcome::Rejected {
                http_status,
                code: got,
                fbtrace_id,
                ..
            } => {
                assert_eq!((http_status, got), (http, code), "{mode:?}");
                assert!(fbtrace_id.is_some(), "{mode:?}: trace from body or header");
            }
            other => panic!("{mode:?}: expected Rejected, got {other:?}"),
        }
    }

    sandbox.set_failure(FailureRule::new(FailureMode::TimeoutAfterReceive).times(1));
    assert_eq!(
        client.send_message(PN, &body).await,
        GraphOutcome::Transport(TransportFailure::TimedOutAfterSend)
    );
    sandbox.set_failure(FailureRule::new(FailureMode::ResetAfterReceive).times(1));
    assert_eq!(
        client.send_message(PN, &body).await,
        GraphOutcome::Transport(TransportFailure::Other)
    );

    let wrong_token = graph(sandbox.url(), "wrong");
    assert!(matches!(
        wrong_token.send_message(PN, &body).await,
        GraphOutcome::Rejected {
            http_status: 401,
            code: 190,
            ..
        }
    ));
    sandbox.shutdown().await;
}
