//! The local stack's configuration, from the environment (names in architecture §4).

use std::path::{Path, PathBuf};

/// Default `VENTANA_PORT`.
pub const DEFAULT_PORT: u16 = 3000;
/// Default `WHATSAPP_APP_SECRET`.
pub const DEFAULT_APP_SECRET: &str = "dev-app-secret";
/// Default `WHATSAPP_VERIFY_TOKEN`.
pub const DEFAULT_VERIFY_TOKEN: &str = "dev-verify-token";
/// Default `VENTANA_DEV_API_KEY`.
pub const DEFAULT_API_KEY: &str = "dev-api-key";
/// Default `WHATSAPP_ACCESS_TOKEN` (only the sandbox Graph API accepts it).
pub const DEFAULT_ACCESS_TOKEN: &str = "dev-access-token";
/// Default `VENTANA_INSTANCES`.
pub const DEFAULT_INSTANCES: usize = 2;
/// Where the stack writes its `KEY=VALUE` file for tools (`ventana --env-file`), under the
/// workspace; `VENTANA_ENV_FILE` overrides it.
pub const ENV_FILE: &str = "target/local-stack.env";

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable has a value that cannot be used.
    #[error("{var}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is expected.
        reason: &'static str,
    },
    /// The local-stack executable's own path is unknown (needed for `VENTANA_BIN_DIR`).
    #[error("cannot locate the local-stack executable; set VENTANA_BIN_DIR")]
    NoExecutable(#[source] std::io::Error),
}

/// Everything the local stack needs to know. Its `Debug` leaves the secrets out.
#[derive(Clone)]
pub struct Config {
    /// `VENTANA_PORT`: the HTTP port on 127.0.0.1.
    pub port: u16,
    /// `WHATSAPP_APP_SECRET` (comma-separated for rotation).
    pub app_secret: String,
    /// `WHATSAPP_VERIFY_TOKEN`.
    pub verify_token: String,
    /// `VENTANA_DEV_API_KEY`: seeded with access to every phone number id.
    pub api_key: String,
    /// `WHATSAPP_ACCESS_TOKEN`.
    pub access_token: String,
    /// `AWS_ENDPOINT_URL`: an existing moto (or other) endpoint; `None` starts moto here.
    pub aws_endpoint: Option<String>,
    /// Candidate `moto_server` executables, in order of preference.
    pub moto_candidates: Vec<PathBuf>,
    /// `VENTANA_BIN_DIR`: where the function binaries are.
    pub bin_dir: PathBuf,
    /// `VENTANA_INSTANCES`: processes per function.
    pub instances: usize,
    /// `RUST_LOG` for the functions (default `info`).
    pub rust_log: String,
    /// Variables passed to the functions unchanged when set (see `PASSTHROUGH`), plus the
    /// local stack's own defaults for those of `LOCAL_DEFAULTS` that are not set.
    pub passthrough: Vec<(String, String)>,
    /// The sandbox Graph API's port on 127.0.0.1 (`VENTANA_SANDBOX_PORT`, 0 = any free
    /// one); `None` when `GRAPH_API_BASE_URL` is set: then no sandbox is started.
    pub sandbox_port: Option<u16>,
    /// `VENTANA_ENV_FILE`: where the `KEY=VALUE` file for tools is written.
    pub env_file: PathBuf,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("port", &self.port)
            .field("aws_endpoint", &self.aws_endpoint)
            .field("bin_dir", &self.bin_dir)
            .field("instances", &self.instances)
            .field("rust_log", &self.rust_log)
            .field("sandbox_port", &self.sandbox_port)
            .field("env_file", &self.env_file)
            .finish_non_exhaustive()
    }
}

/// Variables handed to every function as they are, when set.
const PASSTHROUGH: &[&str] = &[
    "HISTORY_RETENTION_DAYS",
    "GRAPH_API_BASE_URL",
    "GRAPH_API_VERSION",
    "GRAPH_API_TIMEOUT_MS",
    "PACING_DEFAULT_MPS",
    "PACING_NUMBER_MPS",
    "DELIVER_MAX_ATTEMPTS",
    "UNCONFIRMED_GRACE_SECS",
    "SEND_WINDOW_MARGIN_SECS",
    "MESSAGING_LIMIT_DEFAULT_TIER",
    "BROADCAST_SETTLE_AFTER_SECS",
    "BROADCAST_RECHECK_SECS",
    "BROADCAST_STEP_BUDGET_SECS",
    "BROADCAST_QUEUE_AHEAD_SECS",
];

/// The local stack's own defaults for function variables, where they differ from AWS's:
/// an unconfirmed send (a Graph API timeout) is reconciled after 20 s instead of 120 s, so
/// a timeout demo against the sandbox resolves while you watch; a broadcast's accepted sends
/// are settled after 10 s instead of an hour, looked at every 2 s, so that it completes while
/// you watch; the messaging limit assumed until a webhook tells is 10,000 customers a day
/// instead of a new portfolio's 250, so a trial broadcast of a few thousand goes out at once
/// (`MESSAGING_LIMIT_DEFAULT_TIER=TIER_250 make dev` shows the limit holding the rest).
/// Set the variable to override.
const LOCAL_DEFAULTS: &[(&str, &str)] = &[
    ("UNCONFIRMED_GRACE_SECS", "20"),
    ("BROADCAST_SETTLE_AFTER_SECS", "10"),
    ("BROADCAST_RECHECK_SECS", "2"),
    ("MESSAGING_LIMIT_DEFAULT_TIER", "TIER_10K"),
];

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        let exe_dir = || {
            let exe = std::env::current_exe().map_err(ConfigError::NoExecutable)?;
            exe.parent().map(Path::to_path_buf).ok_or_else(|| {
                ConfigError::NoExecutable(std::io::Error::other("the executable has no parent"))
            })
        };
        Config::from_lookup(|k| std::env::var(k).ok(), exe_dir)
    }

    /// Reads the variables through `var`; `exe_dir` is called only when `VENTANA_BIN_DIR` is
    /// unset.
    pub fn from_lookup(
        var: impl Fn(&str) -> Option<String>,
        exe_dir: impl FnOnce() -> Result<PathBuf, ConfigError>,
    ) -> Result<Config, ConfigError> {
        let set = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let port = match set("VENTANA_PORT") {
            None => DEFAULT_PORT,
            Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                var: "VENTANA_PORT",
                value: v,
                reason: "expected a port number (1-65535; 0 picks a free one)",
            })?,
        };
        let instances = match set("VENTANA_INSTANCES") {
            None => DEFAULT_INSTANCES,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=16).contains(&n) => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        var: "VENTANA_INSTANCES",
                        value: v,
                        reason: "expected a number of processes per function from 1 to 16",
                    });
                }
            },
        };
        let sandbox_port = match (set("GRAPH_API_BASE_URL"), set("VENTANA_SANDBOX_PORT")) {
            (Some(_), _) => None,
            (None, None) => Some(0),
            (None, Some(v)) => Some(v.trim().parse().map_err(|_| ConfigError::Invalid {
                var: "VENTANA_SANDBOX_PORT",
                value: v,
                reason: "expected a port number (1-65535; 0 picks a free one)",
            })?),
        };
        let bin_dir = match set("VENTANA_BIN_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => exe_dir()?,
        };
        let mut moto_candidates = Vec::new();
        if let Some(p) = set("VENTANA_MOTO_SERVER") {
            moto_candidates.push(PathBuf::from(p));
        }
        // The project's launcher (moto without its per-message queue scans) when the
        // project's virtualenv exists, else any moto_server.
        let venv = set("VENTANA_VENV").map_or_else(|| repo_root().join(".venv"), PathBuf::from);
        if venv.join("bin/moto_server").is_file() {
            moto_candidates.push(repo_root().join("scripts/moto-server"));
        }
        moto_candidates.push(venv.join("bin/moto_server"));
        let repo_venv = repo_root().join(".venv/bin/moto_server");
        if !moto_candidates.contains(&repo_venv) {
            moto_candidates.push(repo_venv);
        }
        if let Some(path) = var("PATH") {
            moto_candidates.extend(std::env::split_paths(&path).map(|d| d.join("moto_server")));
        }
        Ok(Config {
            port,
            app_secret: set("WHATSAPP_APP_SECRET").unwrap_or_else(|| DEFAULT_APP_SECRET.into()),
            verify_token: set("WHATSAPP_VERIFY_TOKEN")
                .unwrap_or_else(|| DEFAULT_VERIFY_TOKEN.into()),
            api_key: set("VENTANA_DEV_API_KEY").unwrap_or_else(|| DEFAULT_API_KEY.into()),
            access_token: set("WHATSAPP_ACCESS_TOKEN")
                .unwrap_or_else(|| DEFAULT_ACCESS_TOKEN.into()),
            aws_endpoint: set("AWS_ENDPOINT_URL"),
            moto_candidates,
            bin_dir,
            instances,
            rust_log: set("RUST_LOG").unwrap_or_else(|| "info".into()),
            passthrough: PASSTHROUGH
                .iter()
                .filter_map(|k| set(k).map(|v| ((*k).to_owned(), v)))
                .chain(
                    LOCAL_DEFAULTS
                        .iter()
                        .filter(|(k, _)| set(k).is_none())
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
                )
                .collect(),
            sandbox_port,
            env_file: set("VENTANA_ENV_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join(ENV_FILE)),
        })
    }
}

/// The workspace this binary was built from (for `<repo>/.venv`).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(
            |k| vars.get(k).cloned(),
            || Ok(PathBuf::from("/repo/target/debug")),
        )
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.app_secret, "dev-app-secret");
        assert_eq!(c.verify_token, "dev-verify-token");
        assert_eq!(c.api_key, "dev-api-key");
        assert_eq!(c.instances, 2);
        assert_eq!(c.bin_dir, PathBuf::from("/repo/target/debug"));
        assert_eq!(c.aws_endpoint, None);
        assert_eq!(c.rust_log, "info");
        assert_eq!(
            c.passthrough,
            [
                ("UNCONFIRMED_GRACE_SECS".to_owned(), "20".to_owned()),
                ("BROADCAST_SETTLE_AFTER_SECS".to_owned(), "10".to_owned()),
                ("BROADCAST_RECHECK_SECS".to_owned(), "2".to_owned()),
                (
                    "MESSAGING_LIMIT_DEFAULT_TIER".to_owned(),
                    "TIER_10K".to_owned()
                ),
            ]
        );
        assert_eq!(c.sandbox_port, Some(0));
        assert!(c.env_file.ends_with("target/local-stack.env"));
        // The project's launcher first when the virtualenv exists, then moto_server itself.
        let launcher = c
            .moto_candidates
            .iter()
            .position(|p| p.ends_with("scripts/moto-server"));
        let plain = c
            .moto_candidates
            .iter()
            .position(|p| p.ends_with(".venv/bin/moto_server"));
        assert!(plain.is_some(), "{:?}", c.moto_candidates);
        assert!(
            launcher.is_none_or(|l| l == 0 && plain > Some(l)),
            "{:?}",
            c.moto_candidates
        );
    }

    #[test]
    fn variables_override_the_defaults() {
        let c = config(&[
            ("VENTANA_PORT", "4000"),
            ("WHATSAPP_APP_SECRET", "s1,s2"),
            ("WHATSAPP_VERIFY_TOKEN", "tok"),
            ("VENTANA_DEV_API_KEY", "key"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("VENTANA_BIN_DIR", "/bins"),
            ("VENTANA_INSTANCES", "1"),
            ("VENTANA_MOTO_SERVER", "/opt/moto_server"),
            ("HISTORY_RETENTION_DAYS", "30"),
            ("UNCONFIRMED_GRACE_SECS", "5"),
            ("VENTANA_SANDBOX_PORT", "4001"),
            ("VENTANA_ENV_FILE", "/tmp/stack.env"),
        ])
        .unwrap();
        assert_eq!(c.port, 4000);
        assert_eq!(c.app_secret, "s1,s2");
        assert_eq!(c.verify_token, "tok");
        assert_eq!(c.api_key, "key");
        assert_eq!(c.aws_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.bin_dir, PathBuf::from("/bins"));
        assert_eq!(c.instances, 1);
        assert_eq!(c.moto_candidates[0], PathBuf::from("/opt/moto_server"));
        assert_eq!(
            c.passthrough,
            [
                ("HISTORY_RETENTION_DAYS".to_owned(), "30".to_owned()),
                ("UNCONFIRMED_GRACE_SECS".to_owned(), "5".to_owned()),
                ("BROADCAST_SETTLE_AFTER_SECS".to_owned(), "10".to_owned()),
                ("BROADCAST_RECHECK_SECS".to_owned(), "2".to_owned()),
                (
                    "MESSAGING_LIMIT_DEFAULT_TIER".to_owned(),
                    "TIER_10K".to_owned()
                ),
            ]
        );
        assert_eq!(c.sandbox_port, Some(4001));
        assert_eq!(c.env_file, PathBuf::from("/tmp/stack.env"));
    }

    #[test]
    fn a_graph_api_base_url_means_no_sandbox() {
        let c = config(&[
            ("GRAPH_API_BASE_URL", "http://127.0.0.1:9999"),
            ("VENTANA_SANDBOX_PORT", "4001"),
        ])
        .unwrap();
        assert_eq!(c.sandbox_port, None);
        assert!(c.passthrough.contains(&(
            "GRAPH_API_BASE_URL".to_owned(),
            "http://127.0.0.1:9999".to_owned()
        )));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("VENTANA_PORT", "http"),
            ("VENTANA_PORT", "70000"),
            ("VENTANA_INSTANCES", "0"),
            ("VENTANA_INSTANCES", "many"),
            ("VENTANA_SANDBOX_PORT", "sandbox"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }
}
