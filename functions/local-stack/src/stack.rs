//! Starting, running and stopping the whole local stack.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wa_emulator::apigw::RouteTable;
use wa_emulator::sqs::SqsEventSource;
use wa_emulator::{EmulatorError, FunctionConfig, FunctionPool, Output};
use wa_sandbox::{Sandbox, SandboxConfig, SandboxError, SandboxHandle};

use crate::config::Config;
use crate::gateway::Gateway;
use crate::moto::{Moto, MotoError};
use crate::resources::{self, Clients, Queue, ResourceError};
use crate::routes::{self, ROUTES};

/// How long the functions may take to start (first `/next` poll).
const FUNCTION_STARTUP: Duration = Duration::from_secs(60);
/// How long in-flight HTTP requests may finish after a stop signal.
const DRAIN: Duration = Duration::from_secs(5);
/// The functions' invocation timeout for queue batches.
const QUEUE_INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the local stack stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// Function binaries are missing.
    #[error(
        "missing function binaries in {}: {}; build them with `cargo build --workspace --bins` (or `cargo build {}`), or set VENTANA_BIN_DIR",
        dir.display(),
        .missing.join(", "),
        .missing.iter().map(|m| format!("-p {m}")).collect::<Vec<_>>().join(" ")
    )]
    MissingBinaries {
        /// Where they were looked for.
        dir: PathBuf,
        /// Their names.
        missing: Vec<&'static str>,
    },
    /// moto could not be started.
    #[error(transparent)]
    Moto(#[from] MotoError),
    /// The table, queues or key could not be created.
    #[error("cannot create the local AWS resources at {endpoint}")]
    Resources {
        /// The endpoint.
        endpoint: String,
        /// What failed.
        #[source]
        source: ResourceError,
    },
    /// A function could not be started.
    #[error("cannot start {function}")]
    Function {
        /// The function.
        function: &'static str,
        /// What failed.
        #[source]
        source: EmulatorError,
    },
    /// The HTTP port is taken (no source: its text would be "Address already in use", and the
    /// word "ready" on our output is reserved for the ready line).
    #[error("127.0.0.1:{port} is in use by another process; stop it or set VENTANA_PORT")]
    PortInUse {
        /// The port.
        port: u16,
    },
    /// The HTTP listener could not be opened.
    #[error("cannot listen on 127.0.0.1:{port}")]
    Listen {
        /// The port.
        port: u16,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// A queue poller stopped with an error.
    #[error("the queue poller failed")]
    Poller(#[source] EmulatorError),
    /// moto exited while the stack was running.
    #[error("moto exited unexpectedly ({0})")]
    MotoExited(String),
    /// The sandbox's port is taken (no source, as for [`StackError::PortInUse`]).
    #[error(
        "127.0.0.1:{port} (the sandbox Graph API) is in use by another process; stop it or set VENTANA_SANDBOX_PORT"
    )]
    SandboxPortInUse {
        /// The port.
        port: u16,
    },
    /// The sandbox Graph API could not be started.
    #[error("cannot start the sandbox Graph API")]
    Sandbox(#[source] SandboxError),
    /// The `KEY=VALUE` file for tools could not be written.
    #[error("cannot write {}", path.display())]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the stack until `stop` fires (then returns `Ok`) or something fails. Everything it
/// started is stopped before it returns, whichever way.
pub async fn run(config: Config, stop: CancellationToken) -> Result<(), StackError> {
    let functions = routes::functions();
    let missing: Vec<&'static str> = functions
        .iter()
        .copied()
        .filter(|f| !config.bin_dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(StackError::MissingBinaries {
            dir: config.bin_dir.clone(),
            missing,
        });
    }

    // The port first: a taken port should fail before anything is started.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => StackError::PortInUse { port: config.port },
            _ => StackError::Listen {
                port: config.port,
                source,
            },
        })?;

    let mut moto = match &config.aws_endpoint {
        Some(_) => None,
        None => {
            let server = Moto::find(&config.moto_candidates)?;
            tracing::info!(server = %server.display(), "starting moto");
            match until(&stop, Moto::start(&server)).await {
                Some(moto) => Some(moto?),
                None => return Ok(()),
            }
        }
    };
    let endpoint = match (&config.aws_endpoint, &moto) {
        (Some(e), _) => e.clone(),
        (None, Some(m)) => m.endpoint().to_owned(),
        (None, None) => String::new(),
    };
    let result = run_on(&config, listener, &endpoint, moto.as_mut(), &stop).await;
    if let Some(moto) = moto {
        moto.stop().await;
        tracing::info!("moto stopped");
    }
    result
}

/// Everything after moto: resources, functions, HTTP, pollers.
async fn run_on(
    config: &Config,
    listener: TcpListener,
    endpoint: &str,
    moto: Option<&mut Moto>,
    stop: &CancellationToken,
) -> Result<(), StackError> {
    let clients = Clients::new(endpoint).await;
    let queues = match until(stop, resources::create(&clients, &config.api_key)).await {
        Some(q) => q.map_err(|source| StackError::Resources {
            endpoint: endpoint.to_owned(),
            source,
        })?,
        None => return Ok(()),
    };

    let addr = listener.local_addr().map_err(|source| StackError::Listen {
        port: config.port,
        source,
    })?;
    let sandbox = match config.sandbox_port {
        None => None,
        Some(port) => Some(start_sandbox(config, port, addr).await?),
    };
    let result = run_with(
        config,
        listener,
        addr,
        endpoint,
        moto,
        stop,
        &clients,
        &queues,
        sandbox.as_ref(),
    )
    .await;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
        tracing::info!("sandbox Graph API stopped");
    }
    result
}

/// Starts the sandbox Graph API on 127.0.0.1:`port`, posting its signed status webhooks to
/// the stack's own `/webhook` with the first app secret (the one Meta would sign with).
async fn start_sandbox(
    config: &Config,
    port: u16,
    addr: SocketAddr,
) -> Result<SandboxHandle, StackError> {
    let app_secret = config
        .app_secret
        .split(',')
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let sandbox = Sandbox::start(SandboxConfig {
        port,
        access_token: config.access_token.clone().into(),
        app_secret: app_secret.to_owned().into(),
        webhook_url: Some(format!("http://{addr}/webhook")),
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| match e {
        SandboxError::Bind { port, source } if source.kind() == std::io::ErrorKind::AddrInUse => {
            StackError::SandboxPortInUse { port }
        }
        other => StackError::Sandbox(other),
    })?;
    Ok(sandbox)
}

/// Functions, HTTP and pollers, once the resources (and the sandbox) exist.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn run_with(
    config: &Config,
    listener: TcpListener,
    addr: SocketAddr,
    endpoint: &str,
    moto: Option<&mut Moto>,
    stop: &CancellationToken,
    clients: &Clients,
    queues: &[Queue],
    sandbox: Option<&SandboxHandle>,
) -> Result<(), StackError> {
    let graph_url = sandbox.map(|s| s.url().to_owned());
    let env = function_env(config, endpoint, queues, graph_url.as_deref());
    let mut pools: Vec<(&'static str, FunctionPool)> = Vec::new();
    for name in routes::functions() {
        let function = FunctionConfig::new(name, config.bin_dir.join(name))
            .instances(config.instances)
            .envs(env.iter().cloned())
            .output(Output::Prefixed);
        let pool = FunctionPool::spawn(function)
            .await
            .map_err(|source| StackError::Function {
                function: name,
                source,
            })?;
        pools.push((name, pool));
    }

    let started = async {
        for (name, pool) in &pools {
            pool.wait_ready(FUNCTION_STARTUP)
                .await
                .map_err(|source| StackError::Function {
                    function: name,
                    source,
                })?;
        }
        Ok::<(), StackError>(())
    };
    match until(stop, started).await {
        Some(r) => r?,
        None => return shut_down(pools, None, JoinSet::new()).await,
    }

    let mut table = RouteTable::new();
    for (key, function) in ROUTES {
        if let Some((_, pool)) = pools.iter().find(|(n, _)| n == function) {
            // The route keys are checked by a unit test; a bad one would only lose its route.
            if let Err(error) = table.add(key, pool.runtime().clone()) {
                tracing::error!(%error, "route skipped");
            }
        }
    }
    let app = Gateway::new(table).router();
    let server_stop = stop.child_token();
    let server = {
        let server_stop = server_stop.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(server_stop.cancelled_owned())
            .await
        })
    };

    let pollers_stop = stop.child_token();
    let mut pollers = JoinSet::new();
    for queue in queues {
        if let Some((_, pool)) = pools.iter().find(|(n, _)| *n == queue.consumer) {
            let source =
                SqsEventSource::new(clients.sqs.clone(), &queue.url, pool.runtime().clone())
                    .invoke_timeout(QUEUE_INVOKE_TIMEOUT);
            pollers.spawn(source.run(pollers_stop.clone()));
        }
    }

    let tools_env = tools_env(addr, endpoint, queues, graph_url.as_deref());
    if let Err(e) = write_env_file(&config.env_file, &tools_env) {
        server_stop.cancel();
        pollers_stop.cancel();
        let _ = shut_down(pools, Some(server), pollers).await;
        return Err(e);
    }
    let moto_pid = moto.as_ref().and_then(|m| m.pid());
    print_banner(
        config,
        addr,
        endpoint,
        moto_pid,
        queues,
        &pools,
        graph_url.as_deref(),
    );

    let outcome = wait_for_stop(stop, moto, &mut pollers).await;
    match std::fs::remove_file(&config.env_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %config.env_file.display(), error = %e, "cannot remove the env file")
        }
    }
    tracing::info!("stopping");
    server_stop.cancel();
    pollers_stop.cancel();
    let shutdown = shut_down(pools, Some(server), pollers).await;
    outcome.and(shutdown)
}

/// Waits for the stop signal, or for moto or a poller to fail.
async fn wait_for_stop(
    stop: &CancellationToken,
    moto: Option<&mut Moto>,
    pollers: &mut JoinSet<Result<(), EmulatorError>>,
) -> Result<(), StackError> {
    let moto_exit = async {
        match moto {
            Some(m) => match m.exited().await {
                Ok(status) => status.to_string(),
                Err(e) => e.to_string(),
            },
            None => std::future::pending().await,
        }
    };
    let poller_exit = async {
        match pollers.join_next().await {
            Some(Ok(Err(e))) => StackError::Poller(e),
            Some(Ok(Ok(()))) | None => std::future::pending().await,
            Some(Err(join)) => StackError::Poller(EmulatorError::ShutDown {
                function: format!("queue poller task ({join})"),
            }),
        }
    };
    tokio::select! {
        () = stop.cancelled() => Ok(()),
        status = moto_exit => Err(StackError::MotoExited(status)),
        error = poller_exit => Err(error),
    }
}

/// Stops the HTTP server (letting requests finish for a moment), the pollers, then the
/// function processes.
async fn shut_down(
    pools: Vec<(&'static str, FunctionPool)>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    mut pollers: JoinSet<Result<(), EmulatorError>>,
) -> Result<(), StackError> {
    let mut result = Ok(());
    if let Some(mut server) = server {
        match tokio::time::timeout(DRAIN, &mut server).await {
            Ok(Ok(Err(e))) => result = Err(StackError::Serve(e)),
            Ok(_) => {}
            Err(_) => server.abort(),
        }
    }
    while let Some(done) = pollers.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "queue poller stopped with an error");
        }
    }
    for (_, pool) in pools {
        pool.shutdown().await;
    }
    tracing::info!("functions stopped");
    result
}

/// The environment of every function process: `graph_url` is the sandbox's URL, if one runs
/// (otherwise `GRAPH_API_BASE_URL` comes from the environment, with the passthrough).
fn function_env(
    config: &Config,
    endpoint: &str,
    queues: &[Queue],
    graph_url: Option<&str>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("VENTANA_TABLE_NAME", resources::TABLE_NAME),
        ("VENTANA_RECIPIENTS_BUCKET", resources::RECIPIENTS_BUCKET),
        ("WHATSAPP_APP_SECRET", &config.app_secret),
        ("WHATSAPP_VERIFY_TOKEN", &config.verify_token),
        ("WHATSAPP_ACCESS_TOKEN", &config.access_token),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", resources::REGION),
        ("AWS_DEFAULT_REGION", resources::REGION),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("RUST_LOG", &config.rust_log),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for q in queues {
        env.push((q.url_env.to_owned(), q.url.clone()));
        env.push((q.dlq_env.to_owned(), q.dlq_url.clone()));
    }
    if let Some(url) = graph_url {
        env.push(("GRAPH_API_BASE_URL".to_owned(), url.to_owned()));
    }
    env.extend(config.passthrough.iter().cloned());
    env
}

/// What tools need to reach the stack (`ventana --env-file`, or `source` in a shell): the
/// AWS endpoint with moto's dummy credentials, the table, the queues, the URLs. No secret.
fn tools_env(
    addr: SocketAddr,
    endpoint: &str,
    queues: &[Queue],
    graph_url: Option<&str>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", resources::REGION),
        // moto checks no credentials; these keep the SDK from looking for real ones.
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("VENTANA_TABLE_NAME", resources::TABLE_NAME),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for q in queues {
        env.push((q.url_env.to_owned(), q.url.clone()));
        env.push((q.dlq_env.to_owned(), q.dlq_url.clone()));
    }
    env.push(("VENTANA_URL".to_owned(), format!("http://{addr}")));
    if let Some(url) = graph_url {
        env.push(("SANDBOX_URL".to_owned(), url.to_owned()));
    }
    env
}

/// Writes `KEY=VALUE` lines to `path` (replacing it), creating its directory.
fn write_env_file(path: &Path, vars: &[(String, String)]) -> Result<(), StackError> {
    let failed = |source| StackError::EnvFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut text = String::from(
        "# Written by local-stack (make dev) at start, removed when it stops.\n\
         # For `ventana --env-file <this file>`, or `set -a; . <this file>; set +a` in a shell.\n",
    );
    for (k, v) in vars {
        text.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(path, text).map_err(failed)
}

/// What a developer needs to use the stack, then the one line that says it serves.
fn print_banner(
    config: &Config,
    addr: SocketAddr,
    endpoint: &str,
    moto_pid: Option<u32>,
    queues: &[Queue],
    pools: &[(&'static str, FunctionPool)],
    sandbox_url: Option<&str>,
) {
    let moto = match moto_pid {
        None => format!("{endpoint} (from AWS_ENDPOINT_URL)"),
        Some(pid) => format!("{endpoint} (moto_server pid {pid}, started by local-stack)"),
    };
    let mut lines = vec![
        String::new(),
        "Ventana local stack".to_owned(),
        format!("  url:                 http://{addr}"),
        format!("  app secret:          {}", config.app_secret),
        format!("  verify token:        {}", config.verify_token),
        format!(
            "  API key:             {} (Authorization: Bearer …; any phone number id)",
            config.api_key
        ),
        format!("  moto (AWS) endpoint: {moto}"),
        format!("  table:               {}", resources::TABLE_NAME),
    ];
    for q in queues {
        let name = format!("{}:", q.url_env);
        lines.push(format!("  {name:<21}{} (DLQ {})", q.url, q.dlq_url));
    }
    match sandbox_url {
        Some(url) => {
            lines.push(format!(
                "  sandbox Graph API:   {url} (the functions' GRAPH_API_BASE_URL; status webhooks go to http://{addr}/webhook)"
            ));
            lines.push(format!(
                "    its sends:         curl -s {url}/_sandbox/sends"
            ));
            lines.push(format!(
                "    inject a failure:  curl -s -X POST {url}/_sandbox/failures -d '{{\"mode\":\"window_closed\",\"recipient\":\"16505551234\"}}'"
            ));
            lines.push(format!(
                "    clear failures:    curl -s -X DELETE {url}/_sandbox/failures"
            ));
        }
        None => {
            let url = config
                .passthrough
                .iter()
                .find(|(k, _)| k == "GRAPH_API_BASE_URL")
                .map_or("", |(_, v)| v.as_str());
            lines.push(format!(
                "  Graph API:           {url} (from GRAPH_API_BASE_URL; no sandbox)"
            ));
        }
    }
    lines.push(format!(
        "  env file:            {} (for `ventana --env-file`; removed on stop)",
        config.env_file.display()
    ));
    for (name, pool) in pools {
        let pids: Vec<String> = pool
            .processes()
            .iter()
            .filter_map(|p| p.pid.map(|p| p.to_string()))
            .collect();
        lines.push(format!("  function {name}: pids {}", pids.join(", ")));
    }
    for (key, function) in ROUTES {
        lines.push(format!("  route {key} -> {function}"));
    }
    lines.push(String::new());
    lines.push(format!("local stack ready on http://{addr}"));
    println!("{}", lines.join("\n"));
}

/// Runs `fut` unless `stop` fires first (`None`).
async fn until<T>(stop: &CancellationToken, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        () = stop.cancelled() => None,
        v = fut => Some(v),
    }
}
