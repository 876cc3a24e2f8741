//! The outbound path end to end, whole binaries: the real `webhook-receive`,
//! `inbound-processor`, `send-api`, `read-api` and `deliver-worker` processes, each behind a
//! fake Lambda Runtime API (wa-emulator), against moto (a fresh table, inbound queue and
//! outbound queue + DLQ per test), with a `wa-sandbox` Graph API on loopback in place of Meta.
//!
//! HTTP goes through a small API Gateway on loopback ([`TestGateway`]): the test's client
//! calls the send and read routes there, customers' signed webhooks go to `POST /webhook`, and
//! so do the sandbox's signed status webhooks. The inbound queue feeds inbound-processor and
//! the outbound queue feeds deliver-worker through SQS event sources like AWS's.
//!
//! deliver-worker runs with `GRAPH_API_TIMEOUT_MS=1000`, `UNCONFIRMED_GRACE_SECS=3` and
//! `DELIVER_MAX_ATTEMPTS=3`, so that the timeout, reconciliation and dead-letter cases take
//! seconds.
//!
//! Needs moto (`AWS_ENDPOINT_URL`) and the debug binaries (`cargo build --bins`):
//! `scripts/with-moto.sh cargo test -p wa-tests --test outbound_pipeline -- --include-ignored`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test file: helpers panic with the reason

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wa_domain::auth::hash_key;
use wa_domain::customer::CustomerKey;
use wa_domain::ports::{ApiKeyStore, ConversationReader, KeyScope};
use wa_dynamodb::DynamoStore;
use wa_emulator::sqs::SqsEventSource;
use wa_emulator::{EmulatorError, FunctionConfig, FunctionPool, Output};
use wa_sandbox::{
    FailureMode, FailureRule, RecordedSend, Sandbox, SandboxConfig, SandboxHandle, SendOutcome,
};
use wa_tests::{
    FreshOutbound, FreshQueue, TestGateway, bin_path, fresh_inbound_queue, fresh_outbound_queue,
    fresh_table, moto_endpoint,
};

const PNID: &str = "106540352242922";
const WABA: &str = "102290129340398";
const APP_SECRET: &str = "outbound-test-app-secret";
const GRAPH_TOKEN: &str = "outbound-test-graph-token";
const API_KEY: &str = "outbound-test-api-key";
const GRACE_SECS: u64 = 3;

/// Everything one test runs, on its own table and queues.
struct Stack {
    store: DynamoStore,
    outbound: FreshOutbound,
    sandbox: SandboxHandle,
    gateway: TestGateway,
    http: reqwest::Client,
    cancel: CancellationToken,
    pollers: Vec<JoinHandle<Result<(), EmulatorError>>>,
    _inbound: FreshQueue,
    _pools: Vec<FunctionPool>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.cancel.cancel();
        for p in &self.pollers {
            p.abort();
        }
    }
}

/// A function's pool. With `log_file`, its output is appended there at the binaries' default
/// level (info, as in AWS); otherwise it is discarded unless `TEST_LOG` is set.
async fn pool(name: &str, env: &[(&str, String)], log_file: Option<&Path>) -> FunctionPool {
    let log = std::env::var_os("TEST_LOG").is_some();
    let config =
        FunctionConfig::new(name, bin_path(name)).envs(env.iter().map(|(k, v)| (*k, v.clone())));
    let config = match log_file {
        Some(path) => config.output(Output::File(path.to_owned())),
        None => config
            .env("RUST_LOG", if log { "debug" } else { "off" })
            .output(if log { Output::Prefixed } else { Output::Null }),
    };
    let pool = FunctionPool::spawn(config).await.expect("function starts");
    pool.wait_ready(Duration::from_secs(30))
        .await
        .expect("function finishes its init");
    pool
}

impl Stack {
    async fn start() -> Stack {
        Stack::start_logging(None).await
    }

    /// [`Stack::start`], every function logging at its default level to `log_file`.
    async fn start_logging(log_file: Option<&Path>) -> Stack {
        let (store, _, table) = fresh_table().await;
        let inbound = fresh_inbound_queue().await;
        let outbound = fresh_outbound_queue().await;
        store
            .put_key(
                &hash_key(API_KEY),
                &KeyScope::Numbers(vec![PNID.into()]),
                "outbound pipeline test",
            )
            .await
            .unwrap();
        let mut env: Vec<(&str, String)> = vec![
            ("VENTANA_TABLE_NAME", table),
            ("INBOUND_QUEUE_URL", inbound.url.clone()),
            ("OUTBOUND_QUEUE_URL", outbound.url.clone()),
            ("OUTBOUND_DLQ_URL", outbound.dlq_url.clone()),
            ("WHATSAPP_APP_SECRET", APP_SECRET.into()),
            ("WHATSAPP_VERIFY_TOKEN", "outbound-test-verify-token".into()),
            ("AWS_ENDPOINT_URL", moto_endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ];
        let receive = pool("webhook-receive", &env, log_file).await;
        let processor = pool("inbound-processor", &env, log_file).await;
        let send = pool("send-api", &env, log_file).await;
        let read = pool("read-api", &env, log_file).await;
        let gateway = TestGateway::start(&[
            ("POST /webhook", receive.runtime()),
            ("POST /{version}/{phone_number_id}/messages", send.runtime()),
            ("GET /v1/messages/{id}", read.runtime()),
            (
                "GET /v1/conversations/{phone_number_id}/{customer}",
                read.runtime(),
            ),
        ])
        .await;
        let sandbox = Sandbox::start(SandboxConfig {
            access_token: GRAPH_TOKEN.into(),
            app_secret: APP_SECRET.into(),
            waba_id: WABA.into(),
            webhook_url: Some(format!("{}/webhook", gateway.url())),
            ..SandboxConfig::default()
        })
        .await
        .unwrap();
        env.extend([
            ("GRAPH_API_BASE_URL", sandbox.url().to_owned()),
            ("WHATSAPP_ACCESS_TOKEN", GRAPH_TOKEN.into()),
            ("GRAPH_API_TIMEOUT_MS", "1000".into()),
            ("UNCONFIRMED_GRACE_SECS", GRACE_SECS.to_string()),
            ("DELIVER_MAX_ATTEMPTS", "3".into()),
        ]);
        let deliver = pool("deliver-worker", &env, log_file).await;

        let cancel = CancellationToken::new();
        let pollers = vec![
            SqsEventSource::new(
                inbound.client.clone(),
                &inbound.url,
                processor.runtime().clone(),
            )
            .spawn(cancel.clone()),
            SqsEventSource::new(
                outbound.client.clone(),
                &outbound.url,
                deliver.runtime().clone(),
            )
            .spawn(cancel.clone()),
        ];
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Stack {
            store,
            outbound,
            sandbox,
            gateway,
            http,
            cancel,
            pollers,
            _inbound: inbound,
            _pools: vec![receive, processor, send, read, deliver],
        }
    }

    /// Customers write to the business (one signed webhook with a text from each, sent now),
    /// and their windows are open once this returns.
    async fn customers_write(&self, customers: &[(&str, Option<&str>)]) {
        let now = wa_domain::clock::unix_now();
        let contacts: Vec<Value> = customers
            .iter()
            .map(|(wa_id, user_id)| {
                let mut c = json!({"profile": {"name": "Test Customer"}, "wa_id": wa_id});
                if let Some(u) = user_id {
                    c["user_id"] = json!(u);
                }
                c
            })
            .collect();
        let messages: Vec<Value> = customers
            .iter()
            .map(|(wa_id, user_id)| {
                let mut m = json!({
                    "from": wa_id,
                    "id": format!("wamid.IN.{wa_id}.{now}"),
                    "timestamp": now.to_string(),
                    "type": "text",
                    "text": {"body": "Hello, is my order on its way?"}
                });
                if let Some(u) = user_id {
                    m["from_user_id"] = json!(u);
                }
                m
            })
            .collect();
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": WABA, "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001234", "phone_number_id": PNID},
                "contacts": contacts,
                "messages": messages
            }}]}]
        })
        .to_string();
        let res = self
            .http
            .post(format!("{}/webhook", self.gateway.url()))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                wa_domain::signature::sign(APP_SECRET, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{:?}", res.text().await);
        for (wa_id, _) in customers {
            eventually(&format!("{wa_id}'s window opens"), 30, || async {
                let key = self
                    .store
                    .lookup_customer(PNID, &CustomerKey::Phone((*wa_id).to_owned()))
                    .await
                    .ok()?;
                self.store.window(PNID, &key).await.ok()?.map(|_| ())
            })
            .await;
        }
    }

    /// POSTs a raw send body to the send route; (status, JSON answer).
    async fn send_raw(&self, body: String) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/v25.0/{PNID}/messages", self.gateway.url()))
            .bearer_auth(API_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn send(&self, body: &Value) -> (u16, Value) {
        self.send_raw(body.to_string()).await
    }

    /// Sends and expects 200 with a `vnt.` id; returns the id.
    async fn send_ok(&self, body: &Value) -> String {
        let (status, answer) = self.send(body).await;
        assert_eq!(status, 200, "{answer}");
        let id = answer["messages"][0]["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("vnt."), "{answer}");
        id
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.gateway.url()))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// `GET /v1/messages/{id}` until `done` holds (at most `secs` seconds).
    async fn message_until(&self, id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let found = eventually_or(secs, || async {
            let (status, view) = self.get(&format!("/v1/messages/{id}")).await;
            assert_eq!(status, 200, "{view}");
            Some((done(&view), view))
        })
        .await;
        match found {
            Some(view) => view,
            None => {
                let (_, view) = self.get(&format!("/v1/messages/{id}")).await;
                panic!("{id} did not reach the expected state in {secs} s: {view}")
            }
        }
    }

    /// What the sandbox received for a send (matched by its callback data).
    fn sends_for(&self, id: &str) -> Vec<RecordedSend> {
        self.sandbox
            .sends()
            .into_iter()
            .filter(|s| s.callback_data() == Some(id))
            .collect()
    }

    /// Waits for a dead-lettered copy whose body satisfies `which`; (body, reason).
    async fn dead_letter(&self, secs: u64, which: impl Fn(&str) -> bool) -> (String, String) {
        let seen = std::sync::Mutex::new(Vec::new());
        let found = eventually_or(secs, || async {
            let out = self
                .outbound
                .client
                .receive_message()
                .queue_url(&self.outbound.dlq_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            for m in out.messages() {
                let body = m.body().unwrap_or_default().to_owned();
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get(wa_sqs::REASON_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push(body.clone());
                if which(&body) {
                    return Some((true, (body, reason)));
                }
            }
            Some((false, (String::new(), String::new())))
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "nothing matching in the DLQ after {secs} s; seen: {:?}",
                seen.lock().unwrap()
            )
        })
    }

    /// Messages in the outbound queue, visible or in flight.
    async fn outbound_depth(&self) -> u64 {
        let out = self
            .outbound
            .client
            .get_queue_attributes()
            .queue_url(&self.outbound.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes().cloned().unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|k| {
            attrs
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
    }
}

/// Polls `f` every 200 ms until it gives `Some((true, v))`; `None` after `secs` seconds.
async fn eventually_or<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<(bool, T)>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some((true, v)) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `f` every 200 ms until it gives `Some`; panics naming `what` after `secs` seconds.
async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_or(secs, || {
        let next = f();
        async move { next.await.map(|v| (true, v)) }
    })
    .await
    .unwrap_or_else(|| panic!("timed out after {secs} s waiting until {what}"))
}

fn text(to: &str, body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
           "type": "text", "text": {"preview_url": false, "body": body}})
}

fn hello_world(to: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": to, "type": "template",
           "template": {"name": "hello_world", "language": {"code": "en_US"}}})
}

fn statuses(view: &Value) -> Vec<&str> {
    view["statuses"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["status"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (cargo build --bins)"]
async fn a_customer_writes_and_a_reply_goes_out_once_and_is_read() {
    let stack = Stack::start().await;
    let customer = "16505551234";
    stack
        .customers_write(&[(customer, Some("US.13491208655302741918"))])
        .await;
    // History is ordered by timestamp in whole seconds (Meta's resolution): reply in a later
    // second than the customer wrote, so that "newest first" is decided by time alone.
    let next_second = 1_000 - wa_domain::clock::unix_now_ms().rem_euclid(1_000) + 50;
    tokio::time::sleep(Duration::from_millis(next_second.unsigned_abs())).await;

    let id = stack
        .send_ok(&text("+16505551234", "Yes, it ships today."))
        .await;
    let view = stack
        .message_until(&id, 20, |v| v["status"] == "read")
        .await;

    let sends = stack.sandbox.sends();
    assert_eq!(
        sends.len(),
        1,
        "one request reached the Graph API: {sends:?}"
    );
    assert_eq!(sends[0].callback_data(), Some(id.as_str()));
    assert_eq!(sends[0].to(), Some("+16505551234"));
    assert_eq!(sends[0].body["text"]["body"], "Yes, it ships today.");
    let wamid = sends[0].wamid().expect("accepted with a wamid").to_owned();
    assert_eq!(view["wamid"], wamid.as_str(), "{view}");
    assert_eq!(statuses(&view), ["sent", "delivered", "read"], "{view}");
    for s in view["statuses"].as_array().unwrap() {
        assert!(
            s["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{view}"
        );
    }
    assert_eq!(view["error"], Value::Null);
    assert_eq!(view["attempts"], 1);

    let (status, convo) = stack
        .get(&format!("/v1/conversations/{PNID}/{customer}"))
        .await;
    assert_eq!(status, 200, "{convo}");
    assert_eq!(convo["window"]["open"], true);
    let messages = convo["messages"].as_array().unwrap();
    let out: Vec<&Value> = messages.iter().filter(|m| m["id"] == id.as_str()).collect();
    assert_eq!(out.len(), 1, "the reply is in the history once: {convo}");
    assert_eq!(out[0]["direction"], "outbound");
    assert_eq!(out[0]["wamid"], wamid.as_str());
    assert_eq!(out[0]["type"], "text");
    assert!(
        messages.iter().any(|m| m["direction"] == "inbound"),
        "the customer's message too: {convo}"
    );
    assert_eq!(messages[0]["id"], id.as_str(), "newest first: {convo}");
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (cargo build --bins)"]
async fn a_send_that_timed_out_after_meta_took_it_is_confirmed_by_webhook_not_resent() {
    let stack = Stack::start().await;
    let customer = "16505550002";
    stack.customers_write(&[(customer, None)]).await;
    stack.sandbox.set_failure(
        FailureRule::new(FailureMode::TimeoutAfterReceive)
            .for_recipient(customer)
            .times(1),
    );

    let id = stack.send_ok(&text(customer, "Your code is 1234")).await;
    let answered = tokio::time::Instant::now();
    eventually("the sandbox receives the send", 20, || async {
        (!stack.sends_for(&id).is_empty()).then_some(())
    })
    .await;
    let view = stack
        .message_until(&id, 20, |v| v["status"] == "read")
        .await;
    assert!(view["wamid"].as_str().is_some(), "{view}");
    // Past the grace period and then some: the worker must have looked again and not resent.
    tokio::time::sleep_until(answered + Duration::from_secs(GRACE_SECS + 5)).await;
    let sends = stack.sends_for(&id);
    assert_eq!(sends.len(), 1, "never sent twice: {sends:?}");
    assert!(
        matches!(sends[0].outcome, SendOutcome::TimedOut { .. }),
        "{:?}",
        sends[0].outcome
    );
    let view = stack.get(&format!("/v1/messages/{id}")).await.1;
    assert_eq!(view["status"], "read", "{view}");
    assert_eq!(view["wamid"], sends[0].wamid().unwrap(), "{view}");
    assert_eq!(view["attempts"], 1, "{view}");
    assert_eq!(stack.outbound_depth().await, 0, "nothing left queued");
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (cargo build --bins)"]
async fn an_unconfirmed_send_is_resent_once_then_dead_lettered() {
    let stack = Stack::start().await;
    let customer = "16505550003";
    stack.customers_write(&[(customer, None)]).await;
    stack.sandbox.set_webhook_url(None).unwrap();
    stack.sandbox.set_failure(
        FailureRule::new(FailureMode::TimeoutAfterReceive)
            .for_recipient(customer)
            .times(2),
    );

    let id = stack.send_ok(&text(customer, "Your code is 5678")).await;
    let (body, reason) = stack.dead_letter(40, |b| b.contains(&id)).await;
    assert!(reason.contains("unconfirmed"), "reason: {reason}");
    assert!(body.contains("\"send_id\""), "the job itself: {body}");

    let sends = stack.sends_for(&id);
    assert_eq!(sends.len(), 2, "the first try and one resend: {sends:?}");
    assert!(
        sends
            .iter()
            .all(|s| matches!(s.outcome, SendOutcome::TimedOut { .. }))
    );
    let gap = sends[1].received_at_ms - sends[0].received_at_ms;
    assert!(
        gap >= GRACE_SECS * 1000,
        "the resend waited the grace period: {gap} ms"
    );
    let view = stack.get(&format!("/v1/messages/{id}")).await.1;
    // Dead-lettered without any status: shown as failed, saying it may have gone out.
    assert_eq!(view["status"], "failed", "{view}");
    assert_eq!(view["error"]["code"], 0, "{view}");
    assert!(
        view["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unconfirmed") && m.contains("may have been delivered")),
        "{view}"
    );
    assert_eq!(view["attempts"], 2, "{view}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.sends_for(&id).len(), 2, "nothing after the DLQ");
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (cargo build --bins)"]
async fn a_poison_message_goes_to_the_dlq_with_its_reason() {
    let stack = Stack::start().await;
    stack
        .outbound
        .client
        .send_message()
        .queue_url(&stack.outbound.url)
        .message_body("this is not a job")
        .message_group_id("poison")
        .message_deduplication_id("poison-1")
        .send()
        .await
        .unwrap();
    let (body, reason) = stack.dead_letter(20, |b| b == "this is not a job").await;
    assert_eq!(body, "this is not a job");
    assert!(
        reason.starts_with("not an outbound job"),
        "reason: {reason}"
    );
    assert!(stack.sandbox.sends().is_empty());
    assert_eq!(stack.sandbox.counters().requests, 0);
    eventually("the poison message leaves the queue", 10, || async {
        (stack.outbound_depth().await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (cargo build --bins)"]
async fn meta_answers_are_classified_end_to_end() {
    let stack = Stack::start().await;
    let (closed, pair, opted, late) = ("16505550011", "16505550012", "16505550013", "16505550014");
    stack
        .customers_write(&[(closed, None), (pair, None), (opted, None), (late, None)])
        .await;
    let sandbox = &stack.sandbox;
    sandbox.set_failure(FailureRule::new(FailureMode::WindowClosed).for_recipient(closed));
    sandbox.set_failure(
        FailureRule::new(FailureMode::PairRate)
            .for_recipient(pair)
            .times(1),
    );
    sandbox.set_failure(FailureRule::new(FailureMode::OptedOut).for_recipient(opted));
    sandbox.set_failure(
        FailureRule::new(FailureMode::AsyncFailure { code: 131_049 }).for_recipient(late),
    );

    let closed_id = stack.send_ok(&text(closed, "window closed at Meta")).await;
    let pair_id = stack.send_ok(&text(pair, "pair rate once")).await;
    let opted_id = stack.send_ok(&text(opted, "opted out")).await;
    let late_id = stack.send_ok(&text(late, "fails later")).await;

    let failed_with =
        |code: i64| move |v: &Value| v["status"] == "failed" && v["error"]["code"] == code;
    let (v_closed, v_pair, v_opted, v_late) = tokio::join!(
        stack.message_until(&closed_id, 25, failed_with(131_047)),
        stack.message_until(&pair_id, 25, |v| v["status"] == "read"),
        stack.message_until(&opted_id, 25, failed_with(131_050)),
        stack.message_until(&late_id, 25, failed_with(131_049)),
    );

    // 131047 from Meta: failed for good, one request.
    assert_eq!(stack.sends_for(&closed_id).len(), 1, "{v_closed}");
    assert_eq!(v_closed["attempts"], 1);

    // 131056: held 4^0 s, then delivered: two requests.
    let sends = stack.sends_for(&pair_id);
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert_eq!(
        sends[0].outcome,
        SendOutcome::Rejected {
            http_status: 400,
            code: Some(131_056)
        }
    );
    assert!(matches!(sends[1].outcome, SendOutcome::Accepted { .. }));
    let held = sends[1].received_at_ms - sends[0].received_at_ms;
    assert!(held >= 1_000, "held at least 4^0 s: {held} ms");
    assert_eq!(v_pair["wamid"], sends[1].wamid().unwrap());
    assert_eq!(v_pair["attempts"], 2);

    // 131050: failed, and the opt-out is remembered: a later template is refused up front.
    assert_eq!(stack.sends_for(&opted_id).len(), 1, "{v_opted}");
    let (status, answer) = stack.send(&hello_world(opted)).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], 131_050, "{answer}");

    // 131049 reported by a status webhook after a 200.
    let sends = stack.sends_for(&late_id);
    assert_eq!(sends.len(), 1);
    assert!(matches!(
        sends[0].outcome,
        SendOutcome::AcceptedThenFailed { code: 131_049, .. }
    ));
    assert_eq!(v_late["wamid"], sends[0].wamid().unwrap(), "{v_late}");
    assert_eq!(statuses(&v_late), ["failed"], "{v_late}");

    let total = stack.sandbox.sends().len();
    assert_eq!(total, 5, "nothing else went out");
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (cargo build --bins)"]
async fn a_closed_window_is_refused_up_front_unless_a_fallback_template_is_given() {
    let stack = Stack::start().await;
    let stranger = "16505550021";

    let (status, answer) = stack.send(&text(stranger, "hi, we never met")).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], 131_047, "{answer}");
    assert_eq!(stack.outbound_depth().await, 0, "nothing queued");

    let mut body = text(stranger, "Your order shipped.");
    body["fallback_template"] = json!({"name": "hello_world", "language": {"code": "en_US"}});
    let id = stack.send_ok(&body).await;
    let view = stack
        .message_until(&id, 20, |v| v["status"] == "read")
        .await;
    assert_eq!(view["type"], "template", "{view}");

    let sends = stack.sandbox.sends();
    assert_eq!(sends.len(), 1, "only the template went out: {sends:?}");
    assert_eq!(sends[0].callback_data(), Some(id.as_str()));
    assert_eq!(sends[0].body["type"], "template");
    assert_eq!(sends[0].body["template"]["name"], "hello_world");
    assert_eq!(sends[0].to(), Some(stranger));
    assert!(sends[0].body.get("text").is_none(), "{:?}", sends[0].body);
    assert!(sends[0].body.get("fallback_template").is_none());
}

/// Meta's OpenAPI send examples (the file `functions/domain/tests/send_examples.rs` reads).
const EXAMPLES: &str = include_str!("fixtures/meta-sends/examples.json");

/// The examples Meta itself would refuse (placeholder links and template names, a missing
/// header type or message type, a boolean parameter), with the code Ventana refuses them
/// with: the `SPEC_BUGS` of `functions/domain/tests/send_examples.rs`, where each is explained.
const REFUSED: &[(&str, i64)] = &[
    ("Send Audio Message by URL", 131_009),
    ("Send Reply to Audio Message by URL", 131_009),
    ("Send Document Message by URL", 131_009),
    ("Send Reply to Document Message by URL", 131_009),
    ("Send Image Message by URL", 131_009),
    ("Send Reply to Image Message by URL", 131_009),
    ("Send Sticker Message by URL", 131_009),
    ("Send Reply to Sticker Message by URL", 131_009),
    ("Send Video Message by URL", 131_009),
    ("Send Reply to Video Message by URL", 131_009),
    ("Send Flow Template Message", 131_009),
    ("Send Message Template Interactive", 131_009),
    ("Send Message Template Media", 131_009),
    ("Send Message Template Text", 131_009),
    ("Send Sample Shipping Confirmation Template", 131_009),
    ("Send Sample Text Message", 131_009),
    ("Send Multi-Product Message", 131_009),
    ("Send Reply to List Message", 131_008),
    ("Send Sample Issue Resolution Template", 131_009),
];

const READ_RECEIPT: &str = "Send typing indicator and read receipt";

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (cargo build --bins)"]
async fn every_meta_send_example_goes_through_the_real_send_api_unchanged() {
    let stack = Stack::start().await;
    let examples: Map<String, Value> = serde_json::from_str(EXAMPLES).unwrap();
    assert_eq!(examples.len(), 50);

    // Each example gets its own customer (the Postman variable in `to` filled in, as a client
    // does), so that pair rate never holds one back; two examples name +16505551234 outright.
    let mut bodies = Vec::new();
    let mut customers = vec!["16505551234".to_owned()];
    for (i, (name, body)) in examples.iter().enumerate() {
        let phone = format!("1555020{i:04}");
        let sent = body
            .to_string()
            .replace("{{Recipient-Phone-Number}}", &format!("+{phone}"))
            .replace("{{Recipient-WA-Phone-Number}}", &format!("+{phone}"));
        customers.push(phone);
        bodies.push((name.clone(), sent));
    }
    let who: Vec<(&str, Option<&str>)> = customers.iter().map(|c| (c.as_str(), None)).collect();
    stack.customers_write(&who).await;

    let mut accepted = Vec::new();
    let mut wrong = Vec::new();
    let mut refused = Vec::new();
    for (name, sent) in &bodies {
        let (status, answer) = stack.send_raw(sent.clone()).await;
        let expected_refusal = REFUSED.iter().find(|(n, _)| n == name).map(|(_, c)| *c);
        match (status, expected_refusal) {
            (200, None) if name == READ_RECEIPT && answer == json!({"success": true}) => {}
            (200, None) => match answer["messages"][0]["id"].as_str() {
                Some(id) if id.starts_with("vnt.") => accepted.push((name, sent, id.to_owned())),
                _ => wrong.push(format!("{name}: 200 without an id: {answer}")),
            },
            (400, Some(code)) if answer["error"]["code"] == code => refused.push(format!(
                "{name}: {code} {}",
                answer["error"]["error_data"]["details"]
            )),
            _ => wrong.push(format!("{name}: {status} {answer}")),
        }
    }
    println!(
        "refused, as Meta would refuse them:\n  {}",
        refused.join("\n  ")
    );
    assert!(
        wrong.is_empty(),
        "unexpected answers:\n{}",
        wrong.join("\n")
    );
    assert_eq!(accepted.len(), 50 - REFUSED.len() - 1);
    assert_eq!(refused.len(), REFUSED.len());

    // Each accepted one reaches the Graph API once, exactly as posted plus Ventana's id as
    // callback data.
    eventually("every accepted example reaches the sandbox", 40, || async {
        accepted
            .iter()
            .all(|(_, _, id)| !stack.sends_for(id).is_empty())
            .then_some(())
    })
    .await;
    for (name, sent, id) in &accepted {
        let sends = stack.sends_for(id);
        assert_eq!(sends.len(), 1, "{name}: {sends:?}");
        let mut expected: Value = serde_json::from_str(sent).unwrap();
        expected["biz_opaque_callback_data"] = json!(id);
        assert_eq!(sends[0].body, expected, "{name}: forwarded unchanged");
        assert!(
            matches!(sends[0].outcome, SendOutcome::Accepted { .. }),
            "{name}: {:?}",
            sends[0].outcome
        );
    }
    eventually("the read receipt reaches the sandbox", 20, || async {
        stack
            .sandbox
            .sends()
            .iter()
            .any(|s| s.outcome == SendOutcome::ReadReceipt)
            .then_some(())
    })
    .await;
}

/// Every run of `min` or more consecutive digits of `phone` that appears in `log`.
fn phone_fragments_in(log: &str, phone: &str, min: usize) -> Vec<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let mut found = Vec::new();
    for start in 0..=digits.len().saturating_sub(min) {
        let frag = &digits[start..start + min];
        if log.contains(frag) {
            found.push(frag.to_owned());
        }
    }
    found
}

/// Issue 6 (logs): the whole outbound and inbound paths at the binaries' default level, with
/// refusals, a Graph failure, a quarantined webhook and a forged one; then the captured logs
/// of every function are searched for the access token, the app secret, the API key, the text
/// of every message and any 7 consecutive digits of a customer's phone number.
#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (cargo build --bins)"]
async fn logs_of_a_full_run_hold_no_secret_no_body_and_no_unmasked_phone() {
    let dir = std::env::temp_dir().join(format!("ventana-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log_file = dir.join("functions.log");
    let _ = std::fs::remove_file(&log_file);
    let stack = Stack::start_logging(Some(&log_file)).await;
    let (reader, failing, silent) = ("16505557001", "447700900123", "5511987650002");
    stack
        .customers_write(&[(reader, Some("US.1000000000000000001")), (failing, None)])
        .await;
    stack
        .sandbox
        .set_failure(FailureRule::new(FailureMode::WindowClosed).for_recipient(failing));
    let bodies = [
        "Secret reply number one: your parcel is at the depot",
        "Second confidential text for the failing customer",
        "Third text to a customer whose window never opened",
    ];
    let read_id = stack.send_ok(&text(&format!("+{reader}"), bodies[0])).await;
    let failed_id = stack.send_ok(&text(failing, bodies[1])).await;
    let template_id = stack.send_ok(&hello_world(silent)).await;
    // Refused up front: the window of `silent` never opened.
    assert_eq!(stack.send(&text(silent, bodies[2])).await.0, 400);
    // A wrong API key, a key for another number, a body that is not JSON.
    let res = stack
        .http
        .post(format!("{}/v25.0/{PNID}/messages", stack.gateway.url()))
        .bearer_auth("not-the-api-key")
        .body(text(reader, bodies[0]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = stack
        .http
        .post(format!("{}/v25.0/999999/messages", stack.gateway.url()))
        .bearer_auth(API_KEY)
        .body(text(reader, bodies[0]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(
        stack.send_raw(format!("{{\"to\":\"{reader}\"")).await.0,
        400
    );
    // A forged webhook and a signed one that is not JSON (quarantined).
    let forged = text(reader, bodies[0]).to_string();
    for (body, sig) in [
        (forged.clone(), "sha256=00".to_owned()),
        (
            format!("not json from {reader}"),
            wa_domain::signature::sign(APP_SECRET, format!("not json from {reader}").as_bytes()),
        ),
    ] {
        stack
            .http
            .post(format!("{}/webhook", stack.gateway.url()))
            .header("x-hub-signature-256", sig)
            .body(body)
            .send()
            .await
            .unwrap();
    }
    // A poison job whose parse error quotes a phone number: dead-lettered with that reason,
    // which is logged (masked).
    let poison = format!("{{\"schema_version\":1,\"send_id\":\"+{reader}\",\"group\":\"g\"}}");
    stack
        .outbound
        .client
        .send_message()
        .queue_url(&stack.outbound.url)
        .message_body(&poison)
        .message_group_id("poison")
        .message_deduplication_id("poison-logs")
        .send()
        .await
        .unwrap();
    let (_, reason) = stack.dead_letter(20, |b| b == poison).await;
    assert!(reason.starts_with("not an outbound job"), "{reason}");
    stack
        .message_until(&read_id, 25, |v| v["status"] == "read")
        .await;
    stack
        .message_until(&failed_id, 25, |v| v["status"] == "failed")
        .await;
    stack
        .message_until(&template_id, 25, |v| v["status"] == "read")
        .await;
    let (status, _) = stack
        .get(&format!("/v1/conversations/{PNID}/{reader}"))
        .await;
    assert_eq!(status, 200);
    drop(stack);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        log.contains("send answered")
            && log.contains("webhook queued")
            && log.contains("send dead-lettered"),
        "the logs were captured at info: {log}"
    );
    let mut leaks = Vec::new();
    for (what, needle) in [
        ("access token", GRAPH_TOKEN),
        ("app secret", APP_SECRET),
        ("API key", API_KEY),
        ("inbound text", "Hello, is my order on its way?"),
        ("outbound text", bodies[0]),
        ("outbound text", bodies[1]),
        ("outbound text", bodies[2]),
    ] {
        if log.contains(needle) {
            leaks.push(format!("{what}: {needle}"));
        }
    }
    for phone in [reader, failing, silent] {
        for frag in phone_fragments_in(&log, phone, 7) {
            leaks.push(format!("phone {phone}: {frag}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        leaks.is_empty(),
        "leaked into the logs: {leaks:?}\n--- log ---\n{log}"
    );
}
