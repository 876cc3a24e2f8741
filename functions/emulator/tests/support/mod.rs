//! The `echo` example, the tiny Lambda these tests run.

use std::path::PathBuf;
use std::sync::OnceLock;

/// [`wa_emulator::echo_example`], built once per test binary.
pub fn echo_binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| wa_emulator::echo_example().expect("the echo example builds"))
        .clone()
}
