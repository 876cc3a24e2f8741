//! The whole local-stack binary: it starts moto and stand-in functions (wa-emulator's `echo`
//! example under each function's name), prints `ready`, serves the routes, and on SIGTERM
//! stops every process it started and exits 0.
//!
//! Needs `moto_server` in the project's `.venv` (`make bootstrap`); CI runs it with
//! `cargo test -- --include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// wa-emulator's `echo` example, built if missing.
fn echo_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join("echo");
    if !path.is_file() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "wa-emulator", "--example", "echo"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

/// A fresh directory with `echo` copied under every function's name.
fn stand_ins() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("local-stack-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in [
        "webhook-verify",
        "webhook-receive",
        "read-api",
        "inbound-processor",
    ] {
        std::fs::copy(echo_binary(), dir.join(name)).unwrap();
    }
    dir
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
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

#[test]
#[ignore = "needs moto_server in .venv (make bootstrap)"]
fn sigterm_stops_moto_and_every_function_and_exits_zero() {
    let bins = stand_ins();
    let mut stack = Stack(
        Command::new(env!("CARGO_BIN_EXE_local-stack"))
            .env_remove("AWS_ENDPOINT_URL")
            .env("VENTANA_PORT", "0")
            .env("VENTANA_INSTANCES", "2")
            .env("VENTANA_BIN_DIR", &bins)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut stack.0;

    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut pids = Vec::new();
    let mut ready = None;
    while ready.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a `ready` line within 60 s");
        pids.extend(pids_in(&line, "moto_server pid "));
        pids.extend(pids_in(&line, ": pids "));
        if line.contains("ready") {
            ready = Some(line);
        }
    }
    let ready = ready.unwrap();
    let addr = ready.rsplit("http://").next().unwrap().trim().to_owned();
    assert_eq!(pids.len(), 1 + 4 * 2, "moto and 2 processes of 4 functions");
    assert!(pids.iter().all(|p| alive(*p)));

    let verify = get(&addr, "/webhook?hub.mode=subscribe");
    assert!(verify.starts_with("HTTP/1.0 200"), "{verify}");
    assert!(
        verify.contains("\"function\":\"webhook-verify\""),
        "{verify}"
    );
    let missing = get(&addr, "/nope");
    assert!(missing.starts_with("HTTP/1.0 404"), "{missing}");
    assert!(missing.ends_with(r#"{"message":"Not Found"}"#), "{missing}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit}");
    std::thread::sleep(Duration::from_millis(200));
    let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
    let _ = std::fs::remove_dir_all(Path::new(&bins));
}
