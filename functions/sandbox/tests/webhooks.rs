//! Status webhooks posted back to a tiny receiver on loopback: order, shape, signature,
//! callback data, asynchronous failures, retries and shuffling.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use support::*;
use wa_domain::event::EventKind;
use wa_domain::model::StatusReport;
use wa_domain::signature::AppSecrets;
use wa_domain::webhook::split;
use wa_sandbox::{FailureMode, FailureRule, SandboxConfig, StatusDelays, WebhookRetry};

fn verifier() -> AppSecrets {
    AppSecrets::parse(&SecretString::from(SECRET)).unwrap()
}

#[tokio::test]
async fn statuses_arrive_in_order_signed_in_meta_shape_with_the_callback_echoed() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(SandboxConfig {
        webhook_url: Some(receiver.url.clone()),
        ..config()
    })
    .await;
    // Non-ASCII and a slash: Meta escapes both, and the signature covers the escaped bytes.
    let mut body = text_to("+16505551234");
    body["biz_opaque_callback_data"] = json!("vnt.Lucía/1");
    let (status, answer) = send(&sandbox, &body).await;
    assert_eq!(status, 200);
    let wamid = answer["messages"][0]["id"].as_str().unwrap().to_owned();

    let got = receiver.wait_for(3, Duration::from_secs(5)).await;
    let verifier = verifier();
    let mut statuses = Vec::new();
    for webhook in &got {
        verifier
            .verify(webhook.signature.as_deref(), &webhook.body)
            .expect("signed with the app secret over the exact bytes");
        let raw = std::str::from_utf8(&webhook.body).unwrap();
        assert!(raw.contains(r"vnt.Luc\u00eda\/1"), "{raw}");
        let envelope = webhook.json();
        assert_eq!(envelope["object"], "whatsapp_business_account");
        let entry = &envelope["entry"][0];
        assert_eq!(entry["id"], SandboxConfig::default().waba_id);
        let change = &entry["changes"][0];
        assert_eq!(change["field"], "messages");
        assert_eq!(change["value"]["messaging_product"], "whatsapp");
        assert_eq!(
            change["value"]["metadata"],
            json!({"display_phone_number": "15550001234", "phone_number_id": PN})
        );
        let s = webhook.status();
        assert_eq!(s["id"], wamid.as_str());
        assert_eq!(s["recipient_id"], "16505551234");
        assert_eq!(s["biz_opaque_callback_data"], "vnt.Lucía/1");
        let ts: u64 = s["timestamp"].as_str().unwrap().parse().unwrap();
        assert!(ts > 1_700_000_000);
        statuses.push(s["status"].as_str().unwrap().to_owned());

        // webhook-receive's own reading of it: one status event for this number and wamid.
        let events = split(&webhook.body).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Status);
        assert_eq!(events[0].phone_number_id.as_deref(), Some(PN));
        let report = StatusReport::parse(events[0].item.get()).unwrap();
        assert_eq!(report.id, wamid);
        assert_eq!(
            report.biz_opaque_callback_data.as_deref(),
            Some("vnt.Lucía/1")
        );
    }
    assert_eq!(statuses, ["sent", "delivered", "read"]);

    let sent = got[0].status();
    assert_eq!(sent["conversation"]["origin"]["type"], "service");
    assert!(sent["conversation"]["expiration_timestamp"].is_string());
    assert_eq!(
        sent["pricing"],
        json!({"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"})
    );
    assert!(got[1].status().get("conversation").is_none());
    assert!(got[2].status().get("pricing").is_none());

    // A tampered body no longer verifies: the check above can fail.
    let mut tampered = got[0].body.to_vec();
    tampered[0] = b' ';
    assert!(
        verifier
            .verify(got[0].signature.as_deref(), &tampered)
            .is_err()
    );

    wait_delivered(&sandbox, 3).await;
    let c = sandbox.counters();
    assert_eq!((c.webhooks_scheduled, c.webhooks_delivered), (3, 3));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn statuses_wait_for_their_delays() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(SandboxConfig {
        webhook_url: Some(receiver.url.clone()),
        status_delays: StatusDelays {
            sent: Some(Duration::from_millis(100)),
            delivered: Some(Duration::from_millis(300)),
            read: None,
        },
        ..config()
    })
    .await;
    let answered = std::time::Instant::now();
    send(&sandbox, &text_to("16505551234")).await;
    let got = receiver.wait_for(2, Duration::from_secs(5)).await;
    assert!(got[0].at.duration_since(answered) >= Duration::from_millis(90));
    assert!(got[1].at.duration_since(answered) >= Duration::from_millis(290));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 2, "read is left out");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn bsuid_and_template_sends_report_their_recipient_and_pricing() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(SandboxConfig {
        webhook_url: Some(receiver.url.clone()),
        status_delays: StatusDelays {
            delivered: None,
            read: None,
            ..config().status_delays
        },
        ..config()
    })
    .await;
    let body = json!({"messaging_product": "whatsapp", "recipient": "US.1349", "type": "template",
                      "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    assert_eq!(send(&sandbox, &body).await.0, 200);
    let sent = receiver.wait_for(1, Duration::from_secs(5)).await[0].status();
    assert_eq!(sent["recipient_user_id"], "US.1349");
    assert!(sent.get("recipient_id").is_none());
    assert!(sent.get("biz_opaque_callback_data").is_none());
    assert_eq!(
        sent["pricing"],
        json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"})
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn async_failure_answers_a_wamid_then_posts_a_failed_status_with_the_code() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(SandboxConfig {
        webhook_url: Some(receiver.url.clone()),
        ..config()
    })
    .await;
    sandbox.set_failure(
        FailureRule::new(FailureMode::AsyncFailure { code: 131049 }).for_recipient("16505551234"),
    );
    let mut body = text_to("16505551234");
    body["biz_opaque_callback_data"] = json!("vnt.F");
    let (status, answer) = send(&sandbox, &body).await;
    assert_eq!(status, 200, "{answer}");
    let wamid = answer["messages"][0]["id"].as_str().unwrap().to_owned();

    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received().len(), 1, "only the failed status");
    verifier()
        .verify(got[0].signature.as_deref(), &got[0].body)
        .unwrap();
    let failed = got[0].status();
    assert_eq!(failed["id"], wamid.as_str());
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["biz_opaque_callback_data"], "vnt.F");
    assert!(failed.get("pricing").is_none());
    let error = &failed["errors"][0];
    assert_eq!(error["code"], 131049);
    assert!(error["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(error["message"].as_str().is_some());
    assert!(error["error_data"]["details"].as_str().is_some());
    let events = split(&got[0].body).unwrap();
    let report = StatusReport::parse(events[0].item.get()).unwrap();
    assert_eq!(report.status.as_str(), "failed");
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].code, 131049);
    assert_eq!(
        sandbox.sends()[0].outcome,
        wa_sandbox::SendOutcome::AcceptedThenFailed {
            wamid,
            code: 131049
        }
    );
    sandbox.shutdown().await;
}

/// Waits (at most 5 s) until the sandbox counts `n` webhooks delivered: it counts one once it
/// has read the receiver's answer, which can be just after the receiver has the webhook.
async fn wait_delivered(sandbox: &wa_sandbox::SandboxHandle, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sandbox.counters().webhooks_delivered < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn refused_webhooks_are_retried_until_accepted() {
    let receiver = Receiver::start(2).await;
    let sandbox = start(SandboxConfig {
        webhook_url: Some(receiver.url.clone()),
        status_delays: StatusDelays {
            sent: Some(Duration::ZERO),
            delivered: None,
            read: None,
        },
        webhook_retry: WebhookRetry {
            first_backoff: Duration::from_millis(20),
            ..WebhookRetry::default()
        },
        ..config()
    })
    .await;
    send(&sandbox, &text_to("16505551234")).await;
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].status()["status"], "sent");
    assert_eq!(receiver.refused(), 2);
    wait_delivered(&sandbox, 1).await;
    let c = sandbox.counters();
    assert_eq!((c.webhook_attempts, c.webhooks_delivered), (3, 1));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried_then_given_up_without_delaying_the_answer() {
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sandbox = start(SandboxConfig {
        webhook_url: Some(format!("http://127.0.0.1:{port}/webhook")),
        status_delays: StatusDelays {
            sent: Some(Duration::ZERO),
            delivered: None,
            read: None,
        },
        webhook_retry: WebhookRetry {
            retries: 2,
            first_backoff: Duration::from_millis(10),
            ..WebhookRetry::default()
        },
        ..config()
    })
    .await;
    let started = std::time::Instant::now();
    assert_eq!(send(&sandbox, &text_to("1")).await.0, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sandbox.counters().webhooks_abandoned < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            sandbox.counters()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sandbox.counters().webhook_attempts, 3);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn timeout_after_receive_still_posts_the_statuses() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(SandboxConfig {
        webhook_url: Some(receiver.url.clone()),
        ..config()
    })
    .await;
    sandbox.set_failure(FailureRule::new(FailureMode::TimeoutAfterReceive));
    let mut body = text_to("16505551234");
    body["biz_opaque_callback_data"] = json!("vnt.T");
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let answer = client
        .post(sandbox.messages_url(VERSION, PN))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await;
    assert!(answer.is_err());
    let got = receiver.wait_for(3, Duration::from_secs(5)).await;
    let wamid = sandbox.sends()[0].wamid().unwrap().to_owned();
    for webhook in &got {
        assert_eq!(webhook.status()["id"], wamid.as_str());
        assert_eq!(webhook.status()["biz_opaque_callback_data"], "vnt.T");
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn shuffled_statuses_all_arrive_in_some_other_order() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(SandboxConfig {
        webhook_url: Some(receiver.url.clone()),
        shuffle_statuses: true,
        status_delays: StatusDelays {
            sent: Some(Duration::from_millis(20)),
            delivered: Some(Duration::from_millis(60)),
            read: Some(Duration::from_millis(100)),
        },
        ..config()
    })
    .await;
    let mut wamids = Vec::new();
    for i in 0..12 {
        let (_, answer) = send(&sandbox, &text_to(&format!("1650555{i:04}"))).await;
        wamids.push(answer["messages"][0]["id"].as_str().unwrap().to_owned());
    }
    let got = receiver.wait_for(36, Duration::from_secs(10)).await;
    let mut out_of_order = 0;
    for wamid in &wamids {
        let order: Vec<String> = got
            .iter()
            .map(|w| w.status())
            .filter(|s| s["id"] == wamid.as_str())
            .map(|s| s["status"].as_str().unwrap().to_owned())
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, ["delivered", "read", "sent"], "{wamid}");
        if order != ["sent", "delivered", "read"] {
            out_of_order += 1;
        }
    }
    // Each send stays in order with probability 1/6: all 12 in order would be ~5e-10.
    assert!(out_of_order > 0);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn webhooks_can_be_pointed_elsewhere_or_disabled_at_run_time() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(config()).await;
    send(&sandbox, &text_to("1")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.received().is_empty(), "disabled by default");
    assert_eq!(sandbox.counters().webhooks_scheduled, 0);

    sandbox.set_webhook_url(Some(&receiver.url)).unwrap();
    send(&sandbox, &text_to("1")).await;
    receiver.wait_for(3, Duration::from_secs(5)).await;
    assert!(sandbox.set_webhook_url(Some("ftp://x")).is_err());
    sandbox.set_webhook_url(None).unwrap();
    send(&sandbox, &text_to("1")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received().len(), 3);
    sandbox.shutdown().await;
}

/// A send the client stopped waiting for (its timeout, or a worker killed mid-call) while the
/// sandbox held the answer for its latency still went out: its statuses follow, as Meta's
/// would. (They did not: the answer's future was dropped with the connection before the
/// webhooks were scheduled, so a deliver-worker's unconfirmed send never saw a status and
/// was sent again; the chaos suite's unexplained double send.)
#[tokio::test]
async fn a_send_whose_client_gave_up_during_the_latency_still_gets_its_statuses() {
    let receiver = Receiver::start(0).await;
    let sandbox = start(SandboxConfig {
        webhook_url: Some(receiver.url.clone()),
        latency: Duration::from_millis(400),
        ..config()
    })
    .await;
    let gave_up = client()
        .post(sandbox.messages_url(VERSION, PN))
        .bearer_auth(TOKEN)
        .json(&text_to("+16505551234"))
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    let recorded = sandbox.sends();
    assert_eq!(recorded.len(), 1);
    let wamid = recorded[0].wamid().unwrap().to_owned();

    let got = receiver.wait_for(3, Duration::from_secs(5)).await;
    let statuses: Vec<String> = got
        .iter()
        .map(|w| {
            assert_eq!(w.status()["id"], wamid.as_str());
            w.status()["status"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(statuses, ["sent", "delivered", "read"]);
    sandbox.shutdown().await;
}
