//! `POST /{version}/{phone_number_id}/messages`: answers, recording, authorisation, failure
//! injection, latency and the control API, all over loopback HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use wa_sandbox::{FailureMode, FailureRule, SandboxConfig, SendOutcome};

#[tokio::test]
async fn success_answer_has_meta_shape_and_the_send_is_recorded() {
    let sandbox = start(config()).await;
    let mut body = text_to("+1 (650) 555-1234");
    body["biz_opaque_callback_data"] = json!("vnt.ABC");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;

    let (status, answer) = send(&sandbox, &body).await;

    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["messaging_product"], "whatsapp");
    assert_eq!(
        answer["contacts"],
        json!([{"input": "+1 (650) 555-1234", "wa_id": "16505551234"}])
    );
    let wamid = answer["messages"][0]["id"].as_str().unwrap();
    assert!(wamid.starts_with("wamid."), "{wamid}");
    assert!(answer["messages"][0].get("message_status").is_none());

    let sends = sandbox.sends();
    assert_eq!(sends.len(), 1);
    let s = &sends[0];
    assert_eq!(s.phone_number_id, PN);
    assert_eq!(s.version, VERSION);
    assert_eq!(s.body, body);
    assert_eq!(s.callback_data(), Some("vnt.ABC"));
    assert_eq!(s.wamid(), Some(wamid));
    assert_eq!(
        s.outcome,
        SendOutcome::Accepted {
            wamid: wamid.to_owned()
        }
    );
    assert!(s.received_at_ms >= before);
    assert_eq!(sandbox.counters().accepted, 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn every_send_gets_its_own_wamid() {
    let sandbox = start(config()).await;
    let mut wamids = std::collections::HashSet::new();
    for _ in 0..20 {
        let (_, answer) = send(&sandbox, &text_to("+16505551234")).await;
        wamids.insert(answer["messages"][0]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(wamids.len(), 20);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn bsuid_and_template_sends_are_answered_like_meta() {
    let sandbox = start(config()).await;
    let bsuid = json!({"messaging_product": "whatsapp", "recipient": "US.13491208655302741918",
                       "type": "text", "text": {"body": "hi"}});
    let (status, answer) = send(&sandbox, &bsuid).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["contacts"][0],
        json!({"input": "US.13491208655302741918", "user_id": "US.13491208655302741918"})
    );

    let template = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
                          "template": {"name": "hello_world", "language": {"code": "en_US"}}});
    let (status, answer) = send(&sandbox, &template).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["messages"][0]["message_status"], "accepted");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn read_receipt_is_answered_success_true() {
    let sandbox = start(config()).await;
    let body = json!({"messaging_product": "whatsapp", "status": "read",
                      "message_id": "wamid.IN", "typing_indicator": {"type": "text"}});
    // A rule for every send must not touch read receipts.
    sandbox.set_failure(FailureRule::new(FailureMode::ServerError));
    let (status, answer) = send(&sandbox, &body).await;
    assert_eq!((status, answer), (200, json!({"success": true})));
    assert_eq!(sandbox.sends()[0].outcome, SendOutcome::ReadReceipt);
    assert_eq!(sandbox.counters().read_receipts, 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn missing_or_wrong_token_gets_401_with_code_190() {
    let sandbox = start(config()).await;
    let url = sandbox.messages_url(VERSION, PN);
    let body = text_to("16505551234");
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic test-token"),
        Some("test-token"),
    ] {
        let mut request = client().post(&url).json(&body);
        if let Some(a) = auth {
            request = request.header("authorization", a);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
        let answer: Value = response.json().await.unwrap();
        let error = &answer["error"];
        assert_eq!(error["code"], 190, "{answer}");
        assert_eq!(error["type"], "OAuthException");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(error["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()));
    }
    let sends = sandbox.sends();
    assert_eq!(sends.len(), 4);
    assert!(sends.iter().all(|s| s.outcome
        == SendOutcome::Rejected {
            http_status: 401,
            code: Some(190)
        }));
    assert_eq!(sandbox.counters().accepted, 0);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_get_400_with_code_100() {
    let sandbox = start(config()).await;
    for body in [
        json!(["not", "an", "object"]),
        json!({"to": "16505551234", "type": "text"}),
        json!({"messaging_product": "sms", "to": "16505551234"}),
        json!({"messaging_product": "whatsapp", "type": "text"}),
        json!({"messaging_product": "whatsapp", "to": "abc"}),
        json!({"messaging_product": "whatsapp", "status": "read"}),
    ] {
        let (status, answer) = send(&sandbox, &body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], 100, "{body} → {answer}");
    }
    let response = client()
        .post(sandbox.messages_url(VERSION, PN))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(sandbox.sends().last().unwrap().body, json!("{not json"));
    assert_eq!(sandbox.counters().rejected, 7);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn each_failure_mode_answers_its_status_and_code() {
    let sandbox = start(config()).await;
    for (mode, http, code) in [
        (FailureMode::Throughput, 400, 130429),
        (FailureMode::WindowClosed, 400, 131047),
        (FailureMode::PairRate, 400, 131056),
        (FailureMode::OptedOut, 400, 131050),
        (FailureMode::Undeliverable, 400, 131026),
        (FailureMode::ServerError, 500, 131000),
    ] {
        sandbox.clear_failures();
        sandbox.set_failure(FailureRule::new(mode));
        let (status, answer) = send(&sandbox, &text_to("16505551234")).await;
        assert_eq!(status, http, "{mode:?}: {answer}");
        let error = &answer["error"];
        assert_eq!(error["code"], code, "{mode:?}: {answer}");
        assert_eq!(error["type"], "OAuthException");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains(&code.to_string())
        );
        assert!(error["error_data"]["details"].as_str().is_some());
        assert!(error["fbtrace_id"].as_str().is_some());
        assert_eq!(
            sandbox.sends().last().unwrap().outcome,
            SendOutcome::Rejected {
                http_status: http,
                code: Some(code)
            }
        );
    }

    sandbox.clear_failures();
    sandbox.set_failure(FailureRule::new(FailureMode::Unavailable));
    let response = client()
        .post(sandbox.messages_url(VERSION, PN))
        .bearer_auth(TOKEN)
        .json(&text_to("16505551234"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(
        response.json::<Value>().await.is_err(),
        "503 has no JSON body"
    );

    sandbox.clear_failures();
    let (status, _) = send(&sandbox, &text_to("16505551234")).await;
    assert_eq!(status, 200, "cleared rules no longer apply");
    assert_eq!(sandbox.counters().rejected, 7);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn next_n_rules_expire_and_rules_match_only_their_target() {
    let sandbox = start(config()).await;
    sandbox.set_failure(
        FailureRule::new(FailureMode::PairRate)
            .for_recipient("+1 650 555 1234")
            .times(2),
    );
    sandbox.set_failure(FailureRule::new(FailureMode::WindowClosed).for_recipient("US.77"));
    sandbox.set_failure(FailureRule::new(FailureMode::Throughput).for_phone_number_id("999"));

    let other = send(&sandbox, &text_to("16505550000")).await.0;
    assert_eq!(other, 200, "another recipient is unaffected");
    for _ in 0..2 {
        let (status, answer) = send(&sandbox, &text_to("16505551234")).await;
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (400, json!(131056))
        );
    }
    assert_eq!(
        send(&sandbox, &text_to("16505551234")).await.0,
        200,
        "the rule expired after 2 sends"
    );
    assert_eq!(sandbox.failures().len(), 2);

    let bsuid = json!({"messaging_product": "whatsapp", "recipient": "US.77", "type": "text",
                       "text": {"body": "x"}});
    assert_eq!(send(&sandbox, &bsuid).await.1["error"]["code"], 131047);
    let (status, answer) = send_from(&sandbox, "999", &text_to("16505551234")).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!(130429))
    );
    assert_eq!(send_from(&sandbox, "998", &text_to("1")).await.0, 200);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn timeout_after_receive_records_the_send_and_the_client_times_out() {
    let sandbox = start(config()).await;
    sandbox.set_failure(FailureRule::new(FailureMode::TimeoutAfterReceive).times(1));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = client
        .post(sandbox.messages_url(VERSION, PN))
        .bearer_auth(TOKEN)
        .json(&text_to("16505551234"))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));

    let sends = sandbox.sends();
    assert_eq!(sends.len(), 1);
    assert!(
        matches!(&sends[0].outcome, SendOutcome::TimedOut { wamid } if wamid.starts_with("wamid.")),
        "{:?}",
        sends[0].outcome
    );
    assert_eq!(sandbox.counters().unanswered, 1);
    // The rule was for one send only.
    assert_eq!(send(&sandbox, &text_to("16505551234")).await.0, 200);

    // A held answer does not hold up shutdown.
    sandbox.set_failure(FailureRule::new(FailureMode::TimeoutAfterReceive));
    let url = sandbox.messages_url(VERSION, PN);
    let held = tokio::spawn(async move {
        support::client()
            .post(url)
            .bearer_auth(TOKEN)
            .json(&text_to("1"))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    sandbox.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(5));
    let _ = held.await;
}

#[tokio::test]
async fn reset_after_receive_records_the_send_and_gives_no_answer() {
    let sandbox = start(config()).await;
    sandbox.set_failure(FailureRule::new(FailureMode::ResetAfterReceive));
    let answer = async {
        let response = client()
            .post(sandbox.messages_url(VERSION, PN))
            .bearer_auth(TOKEN)
            .json(&text_to("16505551234"))
            .send()
            .await?;
        response.bytes().await
    }
    .await;
    assert!(answer.is_err(), "expected a broken answer, got {answer:?}");
    assert!(matches!(
        sandbox.sends()[0].outcome,
        SendOutcome::Reset { .. }
    ));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn latency_setting_delays_every_answer() {
    let sandbox = start(SandboxConfig {
        latency: Duration::from_millis(150),
        ..config()
    })
    .await;
    let started = Instant::now();
    assert_eq!(send(&sandbox, &text_to("1")).await.0, 200);
    let configured = started.elapsed();
    assert!(configured >= Duration::from_millis(150), "{configured:?}");

    sandbox.set_latency(Duration::from_millis(300));
    assert_eq!(sandbox.latency(), Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(send(&sandbox, &text_to("1")).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    sandbox.set_latency(Duration::ZERO);
    let started = Instant::now();
    assert_eq!(send(&sandbox, &text_to("1")).await.0, 200);
    assert!(started.elapsed() < Duration::from_millis(250));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn control_api_serves_health_sends_failures_latency_and_counters() {
    let sandbox = start(config()).await;
    let http = client();
    let control = |path: &str| format!("{}/_sandbox/{path}", sandbox.url());

    let health: Value = http
        .get(control("health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));

    let rule = json!({"mode": "throughput", "recipient": "+16505551234", "times": 1});
    let added = http
        .post(control("failures"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 201);
    let listed: Value = http
        .get(control("failures"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([rule]));
    let bad = http
        .post(control("failures"))
        .body(r#"{"mode":"explode"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let reason: Value = bad.json().await.unwrap();
    assert!(
        reason["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown mode")
    );

    assert_eq!(send(&sandbox, &text_to("16505551234")).await.0, 400);
    assert_eq!(send(&sandbox, &text_to("16505551234")).await.0, 200);

    let sends: Value = http
        .get(control("sends"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sends = sends.as_array().unwrap();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0]["seq"], 1);
    assert_eq!(sends[0]["phone_number_id"], PN);
    assert_eq!(sends[0]["body"]["to"], "16505551234");
    assert_eq!(
        sends[0]["outcome"],
        json!({"kind": "rejected", "http_status": 400, "code": 130429})
    );
    assert_eq!(sends[1]["outcome"]["kind"], "accepted");
    assert!(
        sends[1]["outcome"]["wamid"]
            .as_str()
            .unwrap()
            .starts_with("wamid.")
    );

    http.post(control("failures"))
        .json(&json!({"mode": "server_error"}))
        .send()
        .await
        .unwrap();
    let cleared = http.delete(control("failures")).send().await.unwrap();
    assert_eq!(cleared.status().as_u16(), 204);
    assert!(sandbox.failures().is_empty());

    let latency = http
        .post(control("latency"))
        .json(&json!({"latency_ms": 40}))
        .send()
        .await
        .unwrap();
    assert_eq!(latency.status().as_u16(), 200);
    assert_eq!(sandbox.latency(), Duration::from_millis(40));

    let counters: Value = http
        .get(control("counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["requests"], 2);
    assert_eq!(counters["accepted"], 1);
    assert_eq!(counters["rejected"], 1);

    assert_eq!(
        http.delete(control("sends"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert!(sandbox.sends().is_empty());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn recorded_sends_are_capped_oldest_first() {
    let sandbox = start(SandboxConfig {
        max_recorded: 3,
        ..config()
    })
    .await;
    for _ in 0..5 {
        send(&sandbox, &text_to("1")).await;
    }
    let seqs: Vec<u64> = sandbox.sends().iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(sandbox.counters().requests, 5);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_get_a_graph_error() {
    let sandbox = start(config()).await;
    let response = client()
        .get(format!("{}/v25.0/{PN}", sandbox.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], 100);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_bad_configuration_is_refused_at_start() {
    let bad_url = wa_sandbox::Sandbox::start(SandboxConfig {
        webhook_url: Some("not a url".into()),
        ..config()
    })
    .await;
    assert!(matches!(
        bad_url,
        Err(wa_sandbox::SandboxError::InvalidWebhookUrl { .. })
    ));
    let empty_secret = wa_sandbox::Sandbox::start(SandboxConfig {
        app_secret: "".into(),
        ..config()
    })
    .await;
    assert!(matches!(
        empty_secret,
        Err(wa_sandbox::SandboxError::EmptyAppSecret)
    ));
}
