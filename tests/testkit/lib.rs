//! Ventana's test kit.

pub mod aws;
pub mod counting_proxy;
pub mod fake_sqs;
pub mod gateway;
pub mod shared_store;

pub use aws::{
    FreshOutbound, FreshQueue, config_for, fresh_inbound_queue, fresh_outbound_queue, fresh_table,
    moto_config, moto_endpoint, raw_partition, unique_name, unreachable_config,
};
pub use fake_sqs::{FakeMessage, FakeSqs};
pub use gateway::TestGateway;
pub use shared_store::SharedStore;

/// The path of a workspace binary in the debug target dir (`cargo build --workspace --bins`
/// builds them; `make test` does so before running the tests).
pub fn bin_path(name: &str) -> std::path::PathBuf {
    bin_path_in("debug", name)
}

/// The path of a workspace binary built with `profile` (`debug` or `release`).
pub fn bin_path_in(profile: &str, name: &str) -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join(profile).join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins{}` first",
        path.display(),
        if profile == "release" {
            " --release"
        } else {
            ""
        }
    );
    path
}

/// The text of `events/<case>.json`.
pub fn fixture(case: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(format!("{case}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
