//! Ingest throughput: what webhook-receive does with a body before queueing it.
//!
//! For each payload two routines are measured on the same bytes, in the same run:
//!
//! - `ventana`: [`AppSecrets::verify`] of the `X-Hub-Signature-256` header (computed beforehand
//!   with the same secret) followed by [`webhook::split`], dropping the events at the end;
//! - `floor`: HMAC-SHA256 over the bytes plus ONE `serde_json` pass that builds nothing
//!   ([`IgnoredAny`]): what any correct verify-and-parse has to pay at least.
//!
//! Both report `Throughput::Elements(events)`, so criterion prints events/s; the figure that
//! means something on a shared machine is the ratio of the two (`scripts/bench.sh` writes it to
//! docs/benchmarks.md). Load from other work moves a lone time by tens of percent within
//! seconds, so each `ventana` sample is also paired with the same number of `floor` iterations
//! run next to it, and the median of those per-sample ratios is printed as
//! `paired <payload>: ratio R over N samples`. `VENTANA_BENCH_QUICK=1` takes fewer, shorter
//! samples (for a CI guard).
//!
//! The payloads follow Meta's shapes (tests/fixtures/pywa-updates/message.json and
//! message_status.json): a ~600-byte text message with its contact (BSUID included); 100 text
//! messages from 100 customers in one change; 1,000 statuses in one change; and as many text
//! messages as fit under the 3 MB a webhook may weigh (`MAX_WEBHOOK_BYTES`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::SecretString;
use serde::de::IgnoredAny;
use sha2::Sha256;
use wa_domain::signature::AppSecrets;
use wa_domain::webhook::{self, MAX_WEBHOOK_BYTES};

const SECRET: &str = "bench-app-secret-0123456789abcdef";
const WABA_ID: &str = "102290129340398";
const PHONE_NUMBER_ID: &str = "106540352242922";
const DISPLAY_PHONE: &str = "15550783881";

/// One webhook body and what it should split into.
struct Payload {
    /// Criterion group name (also the directory under target/criterion).
    name: &'static str,
    body: Vec<u8>,
    events: usize,
    header: String,
}

/// A customer's phone number, distinct per `i`.
fn phone(i: usize) -> String {
    format!("1650555{:04}", i % 10_000)
}

/// A business-scoped user id, distinct per `i`.
fn bsuid(i: usize) -> String {
    format!("US.1349120865530274{:04}", i % 10_000)
}

/// A wamid the way Meta prints them (base64 of a protobuf), distinct per `i`.
fn wamid(i: usize) -> String {
    format!("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdDRkJFQjg5NzU2{i:08X}MzQ0MQA=")
}

fn contact(i: usize) -> String {
    format!(
        r#"{{"profile":{{"name":"Luc\u00eda G\u00f3mez {i}"}},"wa_id":"{}","user_id":"{}","parent_user_id":"US.ENT.11815799212886844830"}}"#,
        phone(i),
        bsuid(i)
    )
}

fn text_message(i: usize) -> String {
    format!(
        r#"{{"from":"{}","id":"{}","timestamp":"{}","text":{{"body":"Hi! Could you tell me where my order #{:05} is? It was due yesterday \ud83d\ude4f"}},"type":"text"}}"#,
        phone(i),
        wamid(i),
        1_749_416_383 + i,
        i
    )
}

fn status(i: usize) -> String {
    let state = ["sent", "delivered", "read"][i % 3];
    format!(
        r#"{{"id":"{}","status":"{state}","timestamp":"{}","recipient_id":"{}","recipient_user_id":"{}","conversation":{{"id":"7270432eae37498234f4444b35ffc5{:02}","expiration_timestamp":"1750116473","origin":{{"type":"utility"}}}},"pricing":{{"billable":true,"pricing_model":"PMP","category":"utility","type":"regular"}}}}"#,
        wamid(i / 3),
        1_750_030_073 + i,
        phone(i / 3),
        bsuid(i / 3),
        i % 100
    )
}

/// The envelope Meta wraps one `messages` change in (one entry, one change).
fn envelope(value_arrays: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"{WABA_ID}","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"{DISPLAY_PHONE}","phone_number_id":"{PHONE_NUMBER_ID}"}},{value_arrays}}},"field":"messages"}}]}}]}}"#
    )
}

/// `n` text messages, each from its own customer, with their contacts.
fn messages_body(n: usize) -> String {
    let contacts: Vec<String> = (0..n).map(contact).collect();
    let messages: Vec<String> = (0..n).map(text_message).collect();
    envelope(&format!(
        r#""contacts":[{}],"messages":[{}]"#,
        contacts.join(","),
        messages.join(",")
    ))
}

fn statuses_body(n: usize) -> String {
    let statuses: Vec<String> = (0..n).map(status).collect();
    envelope(&format!(r#""statuses":[{}]"#, statuses.join(",")))
}

/// The largest `n` whose `messages_body(n)` stays under `MAX_WEBHOOK_BYTES`.
fn max_messages_under_limit() -> usize {
    let envelope_len = messages_body(0).len();
    let per_message = contact(0).len() + text_message(0).len() + 2; // two commas
    let mut n = (MAX_WEBHOOK_BYTES - envelope_len) / per_message;
    while messages_body(n + 1).len() <= MAX_WEBHOOK_BYTES {
        n += 1;
    }
    while messages_body(n).len() > MAX_WEBHOOK_BYTES {
        n -= 1;
    }
    n
}

fn payload(secrets: &AppSecrets, name: &'static str, body: String, events: usize) -> Payload {
    let body = body.into_bytes();
    let header = secrets.sign(&body);
    // The routine under test must do the real work: a good signature and the expected events.
    assert_eq!(secrets.verify(Some(&header), &body), Ok(()), "{name}");
    match webhook::split(&body) {
        Ok(split) => assert_eq!(split.len(), events, "{name}: events"),
        Err(e) => panic!("{name}: {e}"),
    }
    assert!(body.len() <= MAX_WEBHOOK_BYTES, "{name}: too large");
    Payload {
        name,
        body,
        events,
        header,
    }
}

fn payloads(secrets: &AppSecrets) -> Vec<Payload> {
    let max = max_messages_under_limit();
    vec![
        payload(secrets, "ingest_1_message", messages_body(1), 1),
        payload(secrets, "ingest_100_messages", messages_body(100), 100),
        payload(secrets, "ingest_1000_statuses", statuses_body(1000), 1000),
        payload(secrets, "ingest_3mb_messages", messages_body(max), max),
    ]
}

/// With `VENTANA_BENCH_PAYLOADS=DIR`, writes each payload to `DIR/<name>.json` with its signature
/// header in `DIR/<name>.sig` and the secret in `DIR/secret`, so that a peer implementation
/// (`scripts/bench_pywa.py`) is measured on the very same bytes.
fn dump_for_peers(payloads: &[Payload]) {
    let Some(dir) = std::env::var_os("VENTANA_BENCH_PAYLOADS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("secret"), SECRET))
        .and_then(|()| {
            payloads.iter().try_for_each(|p| {
                std::fs::write(dir.join(format!("{}.json", p.name)), &p.body)?;
                std::fs::write(dir.join(format!("{}.sig", p.name)), &p.header)
            })
        });
    if let Err(e) = written {
        panic!("writing the payloads to {}: {e}", dir.display());
    }
}

fn quick() -> bool {
    std::env::var("VENTANA_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Sets the group up for `p`; returns the number of samples criterion will take.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, p: &Payload) -> usize {
    let (samples, warm_up, measure) = if quick() {
        (10, Duration::from_millis(200), Duration::from_millis(600))
    } else {
        (40, Duration::from_millis(800), Duration::from_secs(3))
    };
    group
        .sample_size(samples)
        .warm_up_time(warm_up)
        .measurement_time(measure)
        .throughput(Throughput::Elements(p.events as u64));
    if p.body.len() > 64 * 1024 {
        // Milliseconds per iteration: linear sampling would need hundreds of iterations.
        group.sampling_mode(SamplingMode::Flat);
    }
    samples
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn ingest(c: &mut Criterion) {
    let secrets = match AppSecrets::parse(&SecretString::from(SECRET.to_owned())) {
        Ok(s) => s,
        Err(e) => panic!("secret: {e}"),
    };
    let keyed = match Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("hmac key: {e}"),
    };
    let payloads = payloads(&secrets);
    dump_for_peers(&payloads);
    for p in payloads {
        eprintln!("{}: {} bytes, {} events", p.name, p.body.len(), p.events);
        let expected_tag = {
            let mut mac = keyed.clone();
            mac.update(&p.body);
            mac.finalize().into_bytes()
        };
        let ventana = || {
            let body = black_box(p.body.as_slice());
            let ok = secrets.verify(Some(black_box(p.header.as_str())), body);
            let events = webhook::split(body);
            let _ = black_box((ok, events));
        };
        let floor = || {
            let body = black_box(p.body.as_slice());
            let mut mac = keyed.clone();
            mac.update(body);
            let ok = mac.finalize().into_bytes() == expected_tag;
            let parsed = serde_json::from_slice::<IgnoredAny>(body).is_ok();
            black_box(ok && parsed);
        };
        let time = |routine: &dyn Fn(), iters: u64| {
            let start = Instant::now();
            for _ in 0..iters {
                routine();
            }
            start.elapsed()
        };

        let mut group = c.benchmark_group(p.name);
        let samples = configure(&mut group, &p);
        // Each ventana sample is paired with as many floor iterations run right after (or
        // before: the order alternates), so that their ratio is taken under the same load.
        // Criterion only sees ventana's time; the pairs are printed below for bench.sh.
        let mut pairs: Vec<f64> = Vec::new();
        group.bench_function("ventana", |b| {
            b.iter_custom(|iters| {
                let (v, f) = if pairs.len().is_multiple_of(2) {
                    let v = time(&ventana, iters);
                    (v, time(&floor, iters))
                } else {
                    let f = time(&floor, iters);
                    (time(&ventana, iters), f)
                };
                pairs.push(f.as_secs_f64() / v.as_secs_f64());
                v
            })
        });
        group.bench_function("floor", |b| b.iter(floor));
        group.finish();
        // The last `samples` calls are the measurement (the earlier ones warmed up).
        let measured = pairs.split_off(pairs.len().saturating_sub(samples));
        println!(
            "paired {}: ratio {:.4} over {} samples",
            p.name,
            median(measured.clone()),
            measured.len()
        );
    }
}

criterion::criterion_group!(benches, ingest);
criterion::criterion_main!(benches);
