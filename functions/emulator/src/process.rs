//! Processes of a Lambda binary, each polling a [`RuntimeApi`] like a Lambda execution
//! environment.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::EmulatorError;
use crate::runtime::{Invocation, RuntimeApi, Shared, SlotId};

/// Variables passed from the parent's environment when [`FunctionConfig::inherit_env`] is off
/// (Lambda's environment is clean too; these only make the process behave on this machine).
const PASSTHROUGH_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "NO_COLOR",
];

/// Where a function process's stdout and stderr go.
#[derive(Clone, Debug, Default)]
pub enum Output {
    /// The parent's stdout and stderr.
    Inherit,
    /// Discarded.
    #[default]
    Null,
    /// Appended to this file (both streams).
    File(PathBuf),
    /// Written line by line to the parent's stderr (both streams), each line prefixed with
    /// `[<function>#<instance>] `.
    Prefixed,
}

/// How to run a function's processes.
#[derive(Clone, Debug)]
pub struct FunctionConfig {
    name: String,
    binary: PathBuf,
    instances: usize,
    memory_mb: u32,
    env: Vec<(String, String)>,
    inherit_env: bool,
    output: Output,
}

impl FunctionConfig {
    /// One instance of `binary`, named `name` (its `AWS_LAMBDA_FUNCTION_NAME`), 128 MB,
    /// a clean environment, output discarded.
    pub fn new(name: impl Into<String>, binary: impl Into<PathBuf>) -> FunctionConfig {
        FunctionConfig {
            name: name.into(),
            binary: binary.into(),
            instances: 1,
            memory_mb: 128,
            env: Vec::new(),
            inherit_env: false,
            output: Output::Null,
        }
    }

    /// How many processes to run (at least 1).
    pub fn instances(mut self, n: usize) -> Self {
        self.instances = n.max(1);
        self
    }

    /// The `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` the processes see.
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// Adds an environment variable (later calls win over earlier ones and over defaults).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds several environment variables.
    pub fn envs<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Whether the processes inherit the parent's whole environment (default: no; only
    /// `PATH`, `HOME`, locale and backtrace variables pass through).
    pub fn inherit_env(mut self, yes: bool) -> Self {
        self.inherit_env = yes;
        self
    }

    /// Where the processes' output goes (default: discarded).
    pub fn output(mut self, output: Output) -> Self {
        self.output = output;
        self
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }
}

/// What is known about one process of a pool.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    /// Its operating-system id (`None` if it had already exited when spawned).
    pub pid: Option<u32>,
    /// When it was spawned.
    pub spawned_at: Instant,
    /// When it first polled `/next` (its cold start ends there).
    pub first_poll: Option<Instant>,
    /// How it ended, if it has.
    pub exit: Option<String>,
}

impl ProcessInfo {
    /// `first_poll - spawned_at`: the time from spawn to ready for the first invocation.
    pub fn cold_start(&self) -> Option<Duration> {
        self.first_poll.map(|t| t.duration_since(self.spawned_at))
    }
}

struct Process {
    slot: SlotId,
    pid: Option<u32>,
    spawned_at: Instant,
    kill: Option<oneshot::Sender<()>>,
    supervisor: Option<JoinHandle<()>>,
}

/// N processes of one Lambda binary behind one [`RuntimeApi`].
///
/// Each process gets its own listener of the API (see [`RuntimeApi::attach`]), so a process
/// that exits fails the invocation it had taken at once, and when all have exited every
/// invocation fails with [`EmulatorError::NoLiveProcess`]. Exited processes are not
/// restarted. Dropping the pool kills the processes (SIGKILL); [`FunctionPool::shutdown`]
/// also waits for them.
pub struct FunctionPool {
    runtime: RuntimeApi,
    shared: Arc<Shared>,
    processes: Vec<Process>,
}

impl std::fmt::Debug for FunctionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionPool")
            .field("runtime", &self.runtime)
            .field("processes", &self.processes.len())
            .finish()
    }
}

impl FunctionPool {
    /// Starts a [`RuntimeApi`] for the function and spawns its processes.
    ///
    /// Returns once they are spawned, not once they are ready: see
    /// [`FunctionPool::wait_ready`].
    pub async fn spawn(config: FunctionConfig) -> Result<FunctionPool, EmulatorError> {
        let runtime = RuntimeApi::start(&config.name).await?;
        FunctionPool::spawn_on(runtime, config).await
    }

    /// Spawns the function's processes against an existing [`RuntimeApi`] (for instance one
    /// that already has other pollers).
    pub async fn spawn_on(
        runtime: RuntimeApi,
        config: FunctionConfig,
    ) -> Result<FunctionPool, EmulatorError> {
        if !config.binary.is_file() {
            return Err(EmulatorError::BinaryNotFound {
                path: config.binary.clone(),
            });
        }
        let mut pool = FunctionPool {
            shared: runtime.shared(),
            runtime,
            processes: Vec::with_capacity(config.instances),
        };
        for instance in 1..=config.instances {
            let process = pool.spawn_one(&config, instance).await?;
            pool.processes.push(process);
        }
        Ok(pool)
    }

    async fn spawn_one(
        &self,
        config: &FunctionConfig,
        instance: usize,
    ) -> Result<Process, EmulatorError> {
        let endpoint = self.runtime.attach().await?;
        let mut cmd = Command::new(&config.binary);
        if !config.inherit_env {
            cmd.env_clear();
            for key in PASSTHROUGH_ENV {
                if let Some(v) = std::env::var_os(key) {
                    cmd.env(key, v);
                }
            }
        }
        let stream = format!("{}/[$LATEST]{:032x}", time_prefix(), rand::random::<u128>());
        cmd.env("AWS_LAMBDA_RUNTIME_API", endpoint.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", config.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", stream)
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("TZ", ":UTC")
            .envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match &config.output {
            Output::Inherit => {
                cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
            Output::Null => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
            Output::File(path) => {
                let open = || {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|source| EmulatorError::LogFile {
                            path: path.clone(),
                            source,
                        })
                };
                cmd.stdout(open()?).stderr(open()?);
            }
            Output::Prefixed => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        let spawned_at = Instant::now();
        let mut child = cmd.spawn().map_err(|source| EmulatorError::Spawn {
            path: config.binary.clone(),
            source,
        })?;
        let pid = child.id();
        if matches!(config.output, Output::Prefixed) {
            let prefix = format!("[{}#{instance}] ", config.name);
            if let Some(out) = child.stdout.take() {
                tokio::spawn(forward_lines(out, prefix.clone()));
            }
            if let Some(err) = child.stderr.take() {
                tokio::spawn(forward_lines(err, prefix));
            }
        }
        tracing::debug!(function = %config.name, instance, ?pid, addr = %endpoint.addr, "spawned function process");
        let (kill, killed) = oneshot::channel();
        let supervisor = tokio::spawn(supervise(
            child,
            killed,
            self.runtime.clone(),
            endpoint.slot,
            format!("{}#{instance}", config.name),
        ));
        Ok(Process {
            slot: endpoint.slot,
            pid,
            spawned_at,
            kill: Some(kill),
            supervisor: Some(supervisor),
        })
    }

    /// The pool's Runtime API.
    pub fn runtime(&self) -> &RuntimeApi {
        &self.runtime
    }

    /// Invokes the function (see [`RuntimeApi::invoke`]).
    pub async fn invoke(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> Result<Invocation, EmulatorError> {
        self.runtime.invoke(event, timeout).await
    }

    /// Waits until every process has polled `/next` once (finished its init), or fails as
    /// soon as one exits first ([`EmulatorError::ExitedDuringInit`]) or when `timeout`
    /// passes ([`EmulatorError::NotReady`]).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), EmulatorError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.shared.subscribe();
        loop {
            let mut not_ready = 0;
            for p in &self.processes {
                let status = self.shared.slot_status(p.slot);
                if status.first_poll.is_some() {
                    continue;
                }
                if let Some(status) = status.exit {
                    return Err(EmulatorError::ExitedDuringInit {
                        function: self.shared.function().to_owned(),
                        status,
                    });
                }
                not_ready += 1;
            }
            if not_ready == 0 {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    return Err(EmulatorError::NotReady {
                        function: self.shared.function().to_owned(),
                        not_ready,
                        total: self.processes.len(),
                        timeout,
                    });
                }
            }
        }
    }

    /// What is known about each process, in spawn order.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        self.processes
            .iter()
            .map(|p| {
                let status = self.shared.slot_status(p.slot);
                ProcessInfo {
                    pid: p.pid,
                    spawned_at: p.spawned_at,
                    first_poll: status.first_poll,
                    exit: status.exit,
                }
            })
            .collect()
    }

    /// Kills every process (SIGKILL) and waits until each has exited.
    pub async fn shutdown(mut self) {
        for p in &mut self.processes {
            if let Some(kill) = p.kill.take() {
                let _ = kill.send(());
            }
        }
        for p in &mut self.processes {
            if let Some(task) = p.supervisor.take() {
                let _ = task.await;
            }
        }
    }
}

impl Drop for FunctionPool {
    fn drop(&mut self) {
        for p in &mut self.processes {
            // Aborting the supervisor drops its `Child`, and `kill_on_drop` kills it.
            if let Some(task) = p.supervisor.take() {
                task.abort();
                self.runtime
                    .detach(p.slot, "killed: its function pool was dropped");
            }
        }
    }
}

/// Waits for the child to exit (or to be told to kill it), then detaches its slot so that
/// its invocation fails instead of hanging.
async fn supervise(
    mut child: Child,
    killed: oneshot::Receiver<()>,
    runtime: RuntimeApi,
    slot: SlotId,
    who: String,
) {
    let (status, expected) = tokio::select! {
        status = child.wait() => (status, false),
        _ = killed => {
            let _ = child.start_kill();
            (child.wait().await, true)
        }
    };
    let status = match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown exit ({e})"),
    };
    if expected {
        tracing::debug!(process = %who, %status, "function process stopped");
    } else {
        tracing::warn!(process = %who, %status, "function process exited");
    }
    runtime.detach(slot, &status);
}

async fn forward_lines(stream: impl AsyncRead + Unpin, prefix: String) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("{prefix}{line}");
    }
}

/// `YYYY/MM/DD`, the date prefix of Lambda log stream names.
fn time_prefix() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}/{:02}/{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}
