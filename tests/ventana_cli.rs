//! The `ventana` operator CLI, as an operator runs it: the real binary against moto.
//!
//! Needs moto (`AWS_ENDPOINT_URL`) and the debug binaries (`cargo build --workspace --bins`);
//! `make test` provides both.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test file: helpers panic with the reason

use std::io::Write;
use std::process::{Command, Output, Stdio};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use wa_domain::auth::hash_key;
use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::outbound::{SendFailure, SendId, SendKind, SendRecord, SendState};
use wa_domain::ports::{ApiKeyStore, KeyScope, SendJob, SendStore};
use wa_domain::status::StatusHistory;
use wa_sqs::{decode_job, encode_job};
use wa_tests::{
    bin_path, fresh_inbound_queue, fresh_outbound_queue, fresh_table, moto_endpoint, unique_name,
};

const PNID: &str = "106540352242922";
const T0: i64 = 1_795_420_800;

/// `ventana <args>` with moto's AWS settings and `vars`, optionally fed `stdin`.
fn ventana(args: &[&str], vars: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(bin_path("ventana"));
    cmd.args(args)
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("ventana starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A session send to a customer, in `state`, made at `T0` plus `n` ms (so ids differ).
fn send(n: u8, state: SendState, attempts: u32) -> SendRecord {
    let created_at_ms = T0 * 1000 + i64::from(n);
    let phone = format!("165055512{n:02}");
    SendRecord {
        id: SendId::new(created_at_ms, [n; 10]),
        phone_number_id: PNID.into(),
        customer: Some(CustomerKey::Phone(phone.clone())),
        who: CustomerRef::new(None, Some(&phone)),
        message_type: "text".into(),
        kind: SendKind::Session,
        body: json!({"messaging_product": "whatsapp", "to": phone, "type": "text", "text": {"body": "hola"}}),
        fallback: None,
        client_callback_data: None,
        state,
        attempts,
        wamid: None,
        error: Some(SendFailure::new(131000, "Something went wrong")),
        statuses: StatusHistory::default(),
        pricing: None,
        created_at_ms,
        broadcast_id: None,
        broadcast_index: None,
        idempotency: None,
        answer: None,
        expires_at: T0 + 90 * 86_400,
        version: 0,
    }
}

/// Visible + in-flight messages of a queue.
async fn depth(client: &aws_sdk_sqs::Client, url: &str) -> usize {
    let attrs = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|a| attrs.get(a).map_or(0, |v| v.parse::<usize>().unwrap()))
    .sum()
}

/// The bodies of every visible message of a queue (received, left to reappear).
async fn bodies(client: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let got = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            return out;
        }
        out.extend(got.into_iter().filter_map(|m| m.body));
    }
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (make test)"]
async fn a_created_key_authorizes_its_numbers_only_and_revoke_forgets_it() {
    let (store, _, table) = fresh_table().await;
    // Through an env file whose table wins over a stray one in the environment.
    let env_file = std::env::temp_dir().join(format!("{}.env", unique_name("ventana-cli-")));
    std::fs::write(
        &env_file,
        format!("# test\nVENTANA_TABLE_NAME={table}\nAWS_REGION=us-east-1\n"),
    )
    .unwrap();
    let out = ventana(
        &[
            "--env-file",
            env_file.to_str().unwrap(),
            "api-key",
            "create",
            "--number",
            PNID,
            "--number",
            "106540352242923",
            "--label",
            "crm",
        ],
        &[("VENTANA_TABLE_NAME", "not-this-table")],
        None,
    );
    std::fs::remove_file(&env_file).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out).trim().to_owned();
    assert!(key.starts_with("vk_") && key.len() == 46, "{key}");
    assert!(
        stderr(&out).contains("keep the key now"),
        "{}",
        stderr(&out)
    );
    let hash = hash_key(&key);
    assert!(!stdout(&out).contains(&hash) && !stderr(&out).contains(&hash));
    assert_eq!(
        store.find_key(&hash).await.unwrap(),
        Some(KeyScope::Numbers(vec![
            PNID.into(),
            "106540352242923".into()
        ]))
    );
    assert!(!store.find_key(&hash).await.unwrap().unwrap().allows("999"));

    let any = ventana(
        &["api-key", "create", "--any-number"],
        &[("VENTANA_TABLE_NAME", &table)],
        None,
    );
    assert!(any.status.success(), "{}", stderr(&any));
    let any_key = stdout(&any).trim().to_owned();
    assert_ne!(any_key, key);
    assert_eq!(
        store.find_key(&hash_key(&any_key)).await.unwrap(),
        Some(KeyScope::AnyNumber)
    );

    // Revoke by argument, and by standard input.
    let revoked = ventana(
        &["api-key", "revoke", &key],
        &[("VENTANA_TABLE_NAME", &table)],
        None,
    );
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert_eq!(store.find_key(&hash).await.unwrap(), None);
    let revoked = ventana(
        &["api-key", "revoke", "-"],
        &[("VENTANA_TABLE_NAME", &table)],
        Some(&format!("{any_key}\n")),
    );
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert_eq!(store.find_key(&hash_key(&any_key)).await.unwrap(), None);

    // An unknown key, a bad number, no scope: non-zero exits that print no key material.
    let unknown = ventana(
        &["api-key", "revoke", "vk_nope"],
        &[("VENTANA_TABLE_NAME", &table)],
        None,
    );
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no such API key"),
        "{}",
        stderr(&unknown)
    );
    assert!(!stderr(&unknown).contains(&hash_key("vk_nope")));
    let bad = ventana(
        &["api-key", "create", "--number", "+1555"],
        &[("VENTANA_TABLE_NAME", &table)],
        None,
    );
    assert!(!bad.status.success());
    assert!(stdout(&bad).is_empty());
    let none = ventana(
        &["api-key", "create"],
        &[("VENTANA_TABLE_NAME", &table)],
        None,
    );
    assert_eq!(none.status.code(), Some(2), "a usage error");
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (make test)"]
async fn outbound_redrive_resets_dead_lettered_sends_and_drops_settled_ones() {
    let (store, _, table) = fresh_table().await;
    let q = fresh_outbound_queue().await;

    let dead = send(1, SendState::DeadLettered, 5);
    let settled = send(
        2,
        SendState::Accepted {
            at_ms: T0 * 1000 + 50,
            by_webhook: true,
        },
        2,
    );
    for r in [&dead, &settled] {
        store.create_send(r, T0).await.unwrap();
        let job = SendJob::for_send(r);
        q.control
            .dead_letter(
                &encode_job(&job).unwrap(),
                &job.group,
                &format!("gave up on {} after 5 attempts: 131000", r.id),
            )
            .await
            .unwrap();
    }
    assert_eq!(depth(&q.client, &q.dlq_url).await, 2);

    let out = ventana(
        &["dlq", "redrive", "outbound"],
        &[
            ("VENTANA_TABLE_NAME", &table),
            ("OUTBOUND_QUEUE_URL", &q.url),
            ("OUTBOUND_DLQ_URL", &q.dlq_url),
        ],
        None,
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("outbound DLQ: 1 moved, 1 already settled, 0 failed"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}  moved  [reason: gave up on {}",
            dead.id, dead.id
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}  already settled (accepted)", settled.id)),
        "{text}"
    );

    // The dead-lettered send is pending again with its attempts reset; the settled one is
    // untouched.
    let reset = store.get_send(&dead.id).await.unwrap().unwrap();
    assert_eq!(reset.state, SendState::Pending { not_before_ms: 0 });
    assert_eq!(reset.attempts, 0);
    assert_eq!(reset.version, 2);
    let kept = store.get_send(&settled.id).await.unwrap().unwrap();
    assert_eq!(kept.state, settled.state);
    assert_eq!(kept.version, 1);

    // Only the reset send's job is back on the queue; the DLQ is empty.
    let requeued: Vec<_> = bodies(&q.client, &q.url)
        .await
        .iter()
        .map(|b| decode_job(b).unwrap())
        .collect();
    assert_eq!(requeued, vec![SendJob::for_send(&dead)]);
    assert_eq!(depth(&q.client, &q.dlq_url).await, 0);
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (make test)"]
async fn an_unreadable_dlq_message_stays_and_the_redrive_fails() {
    let (_, _, table) = fresh_table().await;
    let q = fresh_outbound_queue().await;
    q.control
        .dead_letter("{\"not\":\"a job\"}", "g", "poison")
        .await
        .unwrap();
    let vars = [
        ("VENTANA_TABLE_NAME", table.as_str()),
        ("OUTBOUND_QUEUE_URL", q.url.as_str()),
        ("OUTBOUND_DLQ_URL", q.dlq_url.as_str()),
    ];
    let out = ventana(&["dlq", "redrive", "outbound"], &vars, None);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("failed: not a send job"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("[reason: poison]"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("0 moved, 0 already settled, 1 failed"));
    assert!(stderr(&out).contains("stay in the DLQ"), "{}", stderr(&out));
    assert_eq!(depth(&q.client, &q.dlq_url).await, 1, "still dead-lettered");
    assert_eq!(depth(&q.client, &q.url).await, 0);

    // Without the queue variables it says which one is missing.
    let missing = ventana(
        &["dlq", "redrive", "outbound"],
        &[
            ("VENTANA_TABLE_NAME", &table),
            ("OUTBOUND_QUEUE_URL", &q.url),
        ],
        None,
    );
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("OUTBOUND_DLQ_URL is not set"),
        "{}",
        stderr(&missing)
    );
}

#[tokio::test]
#[ignore = "needs moto on $AWS_ENDPOINT_URL and the debug binaries (make test)"]
async fn inbound_redrive_moves_events_back_unread() {
    let q = fresh_inbound_queue().await;
    for n in 0..3 {
        q.client
            .send_message()
            .queue_url(&q.dlq_url)
            .message_body(format!("{{\"event\":{n}}}"))
            .message_group_id("106540352242922:16505551234")
            .message_deduplication_id(format!("e{n}"))
            .send()
            .await
            .unwrap();
    }
    let out = ventana(
        &["dlq", "redrive", "inbound", "--max", "2"],
        &[
            ("INBOUND_QUEUE_URL", &q.url),
            ("INBOUND_DLQ_URL", &q.dlq_url),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("inbound DLQ: 2 moved"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        bodies(&q.client, &q.url).await,
        vec!["{\"event\":0}", "{\"event\":1}"]
    );
    assert_eq!(depth(&q.client, &q.dlq_url).await, 1);
}
