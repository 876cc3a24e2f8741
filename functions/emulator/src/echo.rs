//! The `echo` example: a tiny Lambda binary for tests of whatever runs Lambda binaries (this
//! crate's pools, the local stack's process handling).

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Builds the `echo` example (`cargo build -p wa-emulator --example echo`, a no-op once built)
/// and returns its path as cargo reports it: under the target dir, which is not always next to
/// the test that asks (`build.build-dir` puts test binaries elsewhere). For tests: it runs the
/// cargo this crate was built with.
pub fn echo_example() -> std::io::Result<PathBuf> {
    let out = Command::new(env!("CARGO"))
        .args(["build", "-p", "wa-emulator", "--example", "echo"])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "cargo build --example echo: {}",
            out.status
        )));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "echo")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| std::io::Error::other("cargo reported no `echo` executable"))
}
