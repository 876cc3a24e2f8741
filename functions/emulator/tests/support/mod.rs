//! Finds (or builds) the `echo` example, the tiny Lambda these tests run.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// `target/<profile>/examples/echo`, built with `cargo build --example echo` if missing.
pub fn echo_binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // This test runs as target/<profile>/deps/<test>-<hash>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let path = profile_dir.join("examples").join("echo");
        if !path.is_file() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "wa-emulator", "--example", "echo"])
                .status()
                .unwrap();
            assert!(status.success(), "cargo build --example echo failed");
        }
        assert!(path.is_file(), "{} is missing", path.display());
        path
    })
    .clone()
}
