//! Cold start and footprint of every Lambda binary (issue 5, item 2), run by
//! `scripts/coldstart.sh` (part of `make bench`), which writes the table in docs/benchmarks.md.
//!
//! For each function, with the release binary (`VENTANA_COLDSTART_PROFILE`, default `release`)
//! behind the fake Lambda Runtime API (wa-emulator) and the AWS SDK pointed at moto:
//!
//! - **init**: process spawn → its first `GET /runtime/invocation/next`
//!   ([`wa_emulator::ProcessInfo::cold_start`]), the median of `STARTS` fresh processes;
//! - **first response**: process spawn → the response to a representative event from
//!   `events/<name>/` that was queued before the process started (so the first `/next` takes
//!   it): init plus the first invocation with its first AWS connections, same median;
//! - **peak RSS**: `VmHWM` of one process after handling 10,000 events (an SQS-batch event counts
//!   its records), invoked one after the other (webhook-receive's go to a fake SQS: see below).
//!
//! Prints one `coldstart <name>: …` line per function for the script. Needs moto
//! (`scripts/with-moto.sh`) and the binaries of the profile, which the script sets; without
//! `VENTANA_COLDSTART_PROFILE` the test returns at once (`make test` runs ignored tests too).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test file: helpers panic with the reason

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wa_domain::auth::hash_key;
use wa_domain::ports::{ApiKeyStore, KeyScope};
use wa_emulator::{FunctionConfig, FunctionPool, Invocation, Output};
use wa_sandbox::{Sandbox, SandboxConfig};
use wa_tests::{
    FakeSqs, bin_path_in, fresh_inbound_queue, fresh_outbound_queue, fresh_table, moto_config,
    moto_endpoint, unique_name,
};

const STARTS: usize = 5;
const EVENTS: usize = 10_000;
const INVOKE: Duration = Duration::from_secs(30);
/// The API key `events/` is signed with (events/README.md), scoped to the events' number.
const API_KEY: &str = "test-api-key";
const PNID: &str = "106540352242922";

/// The functions and their representative event (`events/<name>/<case>.json`).
const FUNCTIONS: &[(&str, &str)] = &[
    ("webhook-verify", "subscribe-ok"),
    ("webhook-receive", "text-message"),
    ("inbound-processor", "batch"),
    ("read-api", "conversation"),
    ("send-api", "template"),
    ("deliver-worker", "batch"),
    ("broadcast-planner", "step"),
];

/// `events/<name>/<case>.json`, or (for a function whose events this file does not know yet)
/// the first of its events by name that is not a deliberate failure; with the case used.
fn event(name: &str, case: &str) -> Option<(String, Value)> {
    let dir = std::path::PathBuf::from(format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR")));
    let case = if dir.join(format!("{case}.json")).exists() {
        case.to_owned()
    } else {
        let mut cases: Vec<String> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|f| f.strip_suffix(".json").map(str::to_owned))
            .filter(|c| {
                !["poison", "bad", "no-key", "missing", "wrong"]
                    .iter()
                    .any(|w| c.contains(w))
            })
            .collect();
        cases.sort();
        cases.into_iter().next()?
    };
    let text = std::fs::read_to_string(dir.join(format!("{case}.json"))).ok()?;
    Some((case, serde_json::from_str(&text).expect("events are JSON")))
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("field in /proc/<pid>/status")
}

/// What an invocation answered, in a word: the HTTP status, or the count of failed batch items.
fn outcome(answer: &Invocation) -> String {
    match answer {
        Invocation::Response(v) => {
            if let Some(code) = v.get("statusCode") {
                format!("HTTP {code}")
            } else if let Some(failed) = v.get("batchItemFailures").and_then(Value::as_array) {
                format!("{} batch item failures", failed.len())
            } else {
                "ok".into()
            }
        }
        Invocation::Error(e) => format!("function error {e}"),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// A background task that purges a queue every second: moto rescans a FIFO queue for each
/// message it accepts, so 10,000 messages left in it would make this bench measure moto.
fn purge_loop(client: aws_sdk_sqs::Client, url: String, cancel: CancellationToken) {
    tokio::spawn(async move {
        while !cancel.is_cancelled() {
            let _ = client.purge_queue().queue_url(&url).send().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/coldstart.sh (needs moto and the release binaries)"]
async fn every_lambda_binary_cold_start_and_footprint() {
    // `make test` runs ignored tests too: this benchmark runs only when its script asks.
    let Ok(profile) = std::env::var("VENTANA_COLDSTART_PROFILE") else {
        eprintln!(
            "skipped: a benchmark run by scripts/coldstart.sh (VENTANA_COLDSTART_PROFILE unset)"
        );
        return;
    };
    let events_target: usize = std::env::var("VENTANA_COLDSTART_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EVENTS);
    let (store, _, table) = fresh_table().await;
    let inbound = fresh_inbound_queue().await;
    let outbound = fresh_outbound_queue().await;
    let sqs = aws_sdk_sqs::Client::new(&moto_config().await);
    let (steps_url, _) =
        wa_sqs::create_step_queues(&sqs, &format!("{}-", unique_name("cs-")), "steps")
            .await
            .unwrap();
    store
        .put_key(
            &hash_key(API_KEY),
            &KeyScope::Numbers(vec![PNID.into()]),
            "coldstart bench",
        )
        .await
        .unwrap();
    let sandbox = Sandbox::start(SandboxConfig {
        access_token: "coldstart-token".into(),
        app_secret: "test-app-secret".into(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let fake_sqs = FakeSqs::start(Duration::ZERO).await;
    let cancel = CancellationToken::new();
    purge_loop(inbound.client.clone(), inbound.url.clone(), cancel.clone());
    purge_loop(sqs.clone(), steps_url.clone(), cancel.clone());
    purge_loop(
        outbound.client.clone(),
        outbound.url.clone(),
        cancel.clone(),
    );
    let env: Vec<(&str, String)> = vec![
        ("VENTANA_TABLE_NAME", table),
        ("INBOUND_QUEUE_URL", inbound.url.clone()),
        ("OUTBOUND_QUEUE_URL", outbound.url.clone()),
        ("OUTBOUND_DLQ_URL", outbound.dlq_url.clone()),
        ("BROADCAST_QUEUE_URL", steps_url.clone()),
        ("INBOUND_DLQ_URL", inbound.dlq_url.clone()),
        ("WHATSAPP_APP_SECRET", "test-app-secret".into()),
        ("WHATSAPP_VERIFY_TOKEN", "test-verify-token".into()),
        ("GRAPH_API_BASE_URL", sandbox.url().to_owned()),
        ("WHATSAPP_ACCESS_TOKEN", "coldstart-token".into()),
        ("AWS_ENDPOINT_URL", moto_endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("RUST_LOG", "warn".into()),
    ];
    let config = |name: &str| {
        FunctionConfig::new(name, bin_path_in(&profile, name))
            .envs(env.iter().map(|(k, v)| (*k, v.clone())))
            .output(Output::Null)
    };

    for (name, case) in FUNCTIONS {
        let bin = bin_path_in(&profile, name);
        let Some((case, ev)) = event(name, case) else {
            println!("coldstart {name}: skipped (no events/{name}/)");
            continue;
        };
        if !bin.exists() {
            println!("coldstart {name}: skipped (no binary {})", bin.display());
            continue;
        }
        let per_event = ev
            .get("Records")
            .and_then(Value::as_array)
            .map_or(1, Vec::len);

        let mut inits = Vec::new();
        let mut firsts = Vec::new();
        let mut first_outcome = String::new();
        for _ in 0..STARTS {
            let pool = FunctionPool::spawn(config(name)).await.expect("spawns");
            let spawned = pool.processes()[0].spawned_at;
            // Queued before the process polls: its first /next takes it.
            let answer = pool.invoke(&ev, INVOKE).await.expect("first invocation");
            let answered = Instant::now();
            first_outcome = outcome(&answer);
            let info = &pool.processes()[0];
            inits.push(info.cold_start().expect("it polled").as_secs_f64() * 1e3);
            firsts.push(answered.duration_since(spawned).as_secs_f64() * 1e3);
            pool.shutdown().await;
        }

        // webhook-receive's 10,000 events go to a fake SQS (SendMessageBatch only): moto would
        // take minutes to accept that many FIFO messages (tests/footprint.rs does the same).
        let loop_config = if *name == "webhook-receive" {
            config(name)
                .env("AWS_ENDPOINT_URL_SQS", &fake_sqs.endpoint)
                .env(
                    "INBOUND_QUEUE_URL",
                    format!("{}/123456789012/coldstart.fifo", fake_sqs.endpoint),
                )
        } else {
            config(name)
        };
        let pool = FunctionPool::spawn(loop_config).await.expect("spawns");
        pool.wait_ready(INVOKE).await.expect("ready");
        let pid = pool.processes()[0].pid.expect("running");
        let rss_init = vm_kib(pid, "VmHWM:");
        let invocations = events_target.div_ceil(per_event);
        let started = Instant::now();
        let mut last = String::new();
        for _ in 0..invocations {
            let answer = pool.invoke(&ev, INVOKE).await.expect("invocation");
            if matches!(answer, Invocation::Error(_)) {
                panic!("{name}: {}", outcome(&answer));
            }
            last = outcome(&answer);
        }
        let took = started.elapsed();
        let peak = vm_kib(pid, "VmHWM:");
        pool.shutdown().await;
        println!(
            "coldstart {name}: case={case} init_ms={:.2} first_response_ms={:.2} starts={STARTS} \
             first_outcome=\"{first_outcome}\" rss_init_kib={rss_init} peak_rss_kib={peak} \
             events={} invocations={invocations} last_outcome=\"{last}\" loop_s={:.1}",
            median(inits),
            median(firsts),
            invocations * per_event,
            took.as_secs_f64()
        );
    }
    cancel.cancel();
}
