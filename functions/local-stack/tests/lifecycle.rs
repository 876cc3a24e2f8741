//! The whole local-stack binary.
//!
//! - With stand-in functions (wa-emulator's `echo` example under each function's name): it
//!   starts moto and the sandbox Graph API, writes its env file, prints `ready`, serves the
//!   routes, and on SIGTERM stops every process it started, removes the env file and exits 0.
//! - With the real function binaries: the outbound path end to end through the running stack
//!   (a customer writes in, a send goes out through the sandbox, whose status webhooks come
//!   back through `/webhook` until the send reads `read`; a session send to a customer who
//!   never wrote is refused with 131047).
//!
//! Needs `moto_server` in the project's `.venv` (`make bootstrap`) and, for the second test,
//! the debug binaries (`cargo build --workspace --bins`; `make test` does both). CI runs them
//! with `cargo test -- --include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const FUNCTIONS: [&str; 7] = [
    "webhook-verify",
    "webhook-receive",
    "read-api",
    "send-api",
    "inbound-processor",
    "deliver-worker",
    "broadcast-planner",
];
const PNID: &str = "106540352242922";
const CUSTOMER: &str = "16505551234";

/// A fresh directory with `echo` copied under every function's name.
fn stand_ins() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("local-stack-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let echo = wa_emulator::echo_example().unwrap();
    for name in FUNCTIONS {
        std::fs::copy(&echo, dir.join(name)).unwrap();
    }
    dir
}

/// The directory of the real function binaries (next to local-stack's), checked.
fn real_binaries() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_local-stack"))
        .parent()
        .unwrap()
        .to_path_buf();
    let missing: Vec<&str> = FUNCTIONS
        .into_iter()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "{missing:?} missing in {}: run `cargo build --workspace --bins` first",
        dir.display()
    );
    dir
}

/// One HTTP/1.0 request; returns (status, body).
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {out}"));
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; its state line says Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.split_whitespace().nth(2) != Some("Z"))
}

/// Sends SIGTERM to the local stack if the test fails before it does, so that a failing
/// test does not leave the stack (and its moto and functions) running.
struct Stack(std::process::Child);

impl Drop for Stack {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let _ = self.0.wait();
        }
    }
}

impl Stack {
    /// Sends SIGTERM and returns whether it exited 0.
    fn terminate(&mut self) -> bool {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.0.wait().unwrap().success()
    }
}

/// Starts local-stack on a free port with its own moto, the functions in `bins` and the env
/// file at `env_file`; returns it with the banner's lines (up to and with `ready`).
fn start(bins: &Path, instances: &str, env_file: &Path) -> (Stack, Vec<String>) {
    let log = std::env::var_os("TEST_LOG").is_some();
    let mut stack = Stack(
        Command::new(env!("CARGO_BIN_EXE_local-stack"))
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("GRAPH_API_BASE_URL")
            .env_remove("VENTANA_SANDBOX_PORT")
            .env_remove("WHATSAPP_APP_SECRET")
            .env_remove("VENTANA_DEV_API_KEY")
            .env_remove("UNCONFIRMED_GRACE_SECS")
            .env("VENTANA_PORT", "0")
            .env("VENTANA_INSTANCES", instances)
            .env("VENTANA_BIN_DIR", bins)
            .env("VENTANA_ENV_FILE", env_file)
            .env("RUST_LOG", if log { "info" } else { "warn" })
            .stdout(Stdio::piped())
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = stack.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a `ready` line within 60 s");
        let ready = line.contains("ready");
        lines.push(line);
        if ready {
            // Keep draining stdout so the stack never blocks on a full pipe.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return (stack, lines);
        }
    }
}

fn pids_in(line: &str, marker: &str) -> Vec<u32> {
    line.split_once(marker)
        .map(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

fn ready_addr(lines: &[String]) -> String {
    let ready = lines.last().unwrap();
    ready.rsplit("http://").next().unwrap().trim().to_owned()
}

fn read_env_file(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn temp_env_file(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("local-stack-{tag}-{}.env", std::process::id()))
}

#[test]
#[ignore = "needs moto_server in .venv (make bootstrap)"]
fn sigterm_stops_moto_and_every_function_and_exits_zero() {
    let bins = stand_ins();
    let env_file = temp_env_file("stand-ins");
    let (mut stack, lines) = start(&bins, "2", &env_file);
    let mut pids = Vec::new();
    for line in &lines {
        pids.extend(pids_in(line, "moto_server pid "));
        pids.extend(pids_in(line, ": pids "));
    }
    let addr = ready_addr(&lines);
    assert_eq!(pids.len(), 1 + 7 * 2, "moto and 2 processes of 7 functions");
    assert!(pids.iter().all(|p| alive(*p)));

    // The env file names everything a tool needs, and no secret.
    let env = read_env_file(&env_file);
    for key in [
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "VENTANA_TABLE_NAME",
        "INBOUND_QUEUE_URL",
        "INBOUND_DLQ_URL",
        "OUTBOUND_QUEUE_URL",
        "OUTBOUND_DLQ_URL",
        "BROADCAST_QUEUE_URL",
        "BROADCAST_DLQ_URL",
        "VENTANA_URL",
        "SANDBOX_URL",
    ] {
        assert!(env.contains_key(key), "{key} missing from {env:?}");
    }
    assert_eq!(env["VENTANA_URL"], format!("http://{addr}"));
    assert!(env["OUTBOUND_DLQ_URL"].ends_with("ventana-outbound-dlq.fifo"));
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert!(!text.contains("dev-app-secret") && !text.contains("dev-api-key"));
    let sandbox = env["SANDBOX_URL"].trim_start_matches("http://").to_owned();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&env["SANDBOX_URL"]) && l.contains("sandbox Graph API")),
        "{lines:#?}"
    );
    let health = get(&sandbox, "/_sandbox/health");
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");

    let verify = get(&addr, "/webhook?hub.mode=subscribe");
    assert!(verify.starts_with("HTTP/1.0 200"), "{verify}");
    assert!(
        verify.contains("\"function\":\"webhook-verify\""),
        "{verify}"
    );
    let send = request(&addr, "POST", "/v25.0/106540352242922/messages", &[], "{}");
    assert_eq!(send.0, 200);
    assert!(send.1.contains("\"function\":\"send-api\""), "{}", send.1);
    let missing = get(&addr, "/nope");
    assert!(missing.starts_with("HTTP/1.0 404"), "{missing}");
    assert!(missing.ends_with(r#"{"message":"Not Found"}"#), "{missing}");

    assert!(stack.terminate(), "exit status 0");
    std::thread::sleep(Duration::from_millis(200));
    let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
    assert!(!env_file.exists(), "the env file is removed on stop");
    assert!(TcpStream::connect(&sandbox).is_err(), "the sandbox stopped");
    let _ = std::fs::remove_dir_all(&bins);
}

#[test]
#[ignore = "needs moto_server in .venv and the debug binaries (make test)"]
fn a_send_goes_out_through_the_sandbox_and_reads_read() {
    let started = Instant::now();
    let env_file = temp_env_file("outbound");
    let (mut stack, lines) = start(&real_binaries(), "1", &env_file);
    let addr = ready_addr(&lines);
    let sandbox = read_env_file(&env_file)["SANDBOX_URL"]
        .trim_start_matches("http://")
        .to_owned();
    let key = [("Authorization", "Bearer dev-api-key")];

    // The customer writes in: a webhook as Meta sends it, signed with the dev app secret.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{PNID}"}},"contacts":[{{"profile":{{"name":"Luc\u00eda"}},"wa_id":"{CUSTOMER}"}}],"messages":[{{"from":"{CUSTOMER}","id":"wamid.lifecycle1","timestamp":"{now}","type":"text","text":{{"body":"Hola"}}}}]}}}}]}}]}}"#
    );
    let signature = wa_domain::signature::sign("dev-app-secret", body.as_bytes());
    let (status, answer) = request(
        &addr,
        "POST",
        "/webhook",
        &[
            ("X-Hub-Signature-256", &signature),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert_eq!(status, 200, "{answer}");
    let conversation = format!("/v1/conversations/{PNID}/{CUSTOMER}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = request(&addr, "GET", &conversation, &key, "");
        if status == 200 && json(&body)["window"]["open"] == Value::Bool(true) {
            break;
        }
        assert!(Instant::now() < deadline, "the window never opened: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // A session text inside the window: accepted, delivered through the sandbox, and its
    // status webhooks come back through /webhook until it reads `read`.
    let send_path = format!("/v25.0/{PNID}/messages");
    let text = format!(
        r#"{{"messaging_product":"whatsapp","to":"{CUSTOMER}","type":"text","text":{{"body":"Gracias"}}}}"#
    );
    let json_headers = [
        ("Authorization", "Bearer dev-api-key"),
        ("Content-Type", "application/json"),
    ];
    let (status, answer) = request(&addr, "POST", &send_path, &json_headers, &text);
    assert_eq!(status, 200, "{answer}");
    let id = json(&answer)["messages"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("vnt."), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let view = loop {
        let (status, body) = request(&addr, "GET", &format!("/v1/messages/{id}"), &key, "");
        assert_eq!(status, 200, "{body}");
        let view = json(&body);
        if view["status"] == "read" {
            break view;
        }
        assert!(Instant::now() < deadline, "not read within 20 s: {body}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let statuses: Vec<&str> = view["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["sent", "delivered", "read"], "{view}");
    assert!(view["wamid"].as_str().unwrap().starts_with("wamid."));
    let (_, sends) = request(&sandbox, "GET", "/_sandbox/sends", &[], "");
    let sends = json(&sends);
    let recorded: Vec<&Value> = sends
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["body"]["biz_opaque_callback_data"] == id.as_str())
        .collect();
    assert_eq!(recorded.len(), 1, "the sandbox got the send once: {sends}");
    assert_eq!(recorded[0]["phone_number_id"], PNID);

    // A session text to a customer who never wrote: refused, nothing sent.
    let closed = r#"{"messaging_product":"whatsapp","to":"16505550000","type":"text","text":{"body":"Hola"}}"#;
    let (status, answer) = request(&addr, "POST", &send_path, &json_headers, closed);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(json(&answer)["error"]["code"], 131047, "{answer}");

    assert!(stack.terminate(), "exit status 0");
    assert!(!env_file.exists());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
#[ignore = "needs moto_server in .venv and the debug binaries (make test)"]
fn a_broadcast_reaches_the_sandbox_once_per_allowed_recipient_and_its_report_adds_up() {
    let env_file = temp_env_file("broadcast");
    let (mut stack, lines) = start(&real_binaries(), "1", &env_file);
    let addr = ready_addr(&lines);
    let sandbox = read_env_file(&env_file)["SANDBOX_URL"]
        .trim_start_matches("http://")
        .to_owned();
    let json_headers = [
        ("Authorization", "Bearer dev-api-key"),
        ("Content-Type", "application/json"),
    ];
    let phone = |i: usize| format!("1650556{i:04}");
    // One customer asked to stop, through the consent API.
    let stop = r#"{"scope":"all","status":"opted_out","source":"web_form"}"#;
    let (status, answer) = request(
        &addr,
        "PUT",
        &format!("/v1/consents/{PNID}/{}", phone(3)),
        &json_headers,
        stop,
    );
    assert_eq!(status, 200, "{answer}");
    // 24 rows: 20 customers, 2 of them twice ("+1 650…" is the same customer), one row
    // with no phone at all, one opted out.
    let row = |to: String| serde_json::json!({"to": to, "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]});
    let mut rows: Vec<Value> = (0..20).map(|i| row(phone(i))).collect();
    rows.push(row(format!("+1 650 556 {:04}", 5)));
    rows.push(row(phone(7)));
    rows.push(serde_json::json!({"to": "12"}));
    rows.push(row(phone(11)));
    let body = serde_json::json!({"phone_number_id": PNID,
        "template": {"name": "order_update", "language": "es"},
        "recipients": rows, "release": {"all_at_once": true}});
    let (status, answer) = request(
        &addr,
        "POST",
        "/v1/broadcasts",
        &json_headers,
        &body.to_string(),
    );
    assert_eq!(status, 202, "{answer}");
    let id = json(&answer)["id"].as_str().unwrap().to_owned();

    // The local stack settles a send 10 s after it was made (BROADCAST_SETTLE_AFTER_SECS).
    let deadline = Instant::now() + Duration::from_secs(60);
    let view = loop {
        let (status, body) = request(
            &addr,
            "GET",
            &format!("/v1/broadcasts/{id}"),
            &json_headers,
            "",
        );
        assert_eq!(status, 200, "{body}");
        let view = json(&body);
        if view["state"] == "completed" {
            break view;
        }
        assert!(
            Instant::now() < deadline,
            "not completed within 60 s: {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let c = &view["counts"];
    let n = |k: &str| c[k].as_u64().unwrap();
    assert_eq!(n("total"), 24, "{view}");
    assert_eq!(
        (
            n("skipped_duplicate"),
            n("skipped_invalid"),
            n("skipped_opted_out")
        ),
        (3, 1, 1),
        "{view}"
    );
    assert_eq!(n("sent") + n("delivered") + n("read"), 19, "{view}");
    assert_eq!(
        ["queued", "failed", "waiting_for_limit"].map(n),
        [0, 0, 0],
        "{view}"
    );

    // The sandbox got one template send per allowed customer, none for the opted-out one.
    let (_, sends) = request(&sandbox, "GET", "/_sandbox/sends", &[], "");
    let sends = json(&sends);
    let mut to: Vec<String> = sends
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["body"]["type"] == "template")
        .map(|s| s["body"]["to"].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    let expected: Vec<String> = (0..20).filter(|i| *i != 3).map(phone).collect();
    assert_eq!(to, expected, "{sends}");

    // The ledger as CSV: a header and one row per recipient.
    let (status, csv) = request(
        &addr,
        "GET",
        &format!("/v1/broadcasts/{id}/recipients?format=csv&limit=100"),
        &json_headers,
        "",
    );
    assert_eq!(status, 200, "{csv}");
    assert_eq!(csv.lines().count(), 25, "{csv}");
    assert!(stack.terminate(), "exit status 0");
}
