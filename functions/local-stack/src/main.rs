//! `local-stack`: Ventana on one machine, on loopback only (`make dev`; architecture §4).
//!
//! It owns the wiring of the local stack: moto (started here unless `AWS_ENDPOINT_URL` points
//! at one), the table, queues and dev API key in it, N processes of every function binary
//! behind a fake Lambda Runtime API, an HTTP server on `127.0.0.1:${VENTANA_PORT:-3000}` that
//! plays API Gateway for the routes in `routes.rs`, and the SQS event source mappings that
//! feed the queue consumers. It prints the URL, secrets, key and endpoint, then one line with
//! `ready`; SIGINT or SIGTERM stops all of it, moto included, and it exits 0.
//!
//! It runs the real function binaries and must not link any function crate or reimplement
//! their logic; AWS-like plumbing belongs in `wa-emulator`, resource definitions in
//! `wa-dynamodb` / `wa-sqs`.

mod config;
mod gateway;
mod moto;
mod resources;
mod routes;
mod stack;

use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line with the whole cause chain (no backtrace: these are user-facing errors).
            eprintln!("local-stack: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    // Handlers first, so that a signal during startup still stops moto and the functions.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        on_signal.cancel();
    });
    let config = config::Config::from_env()?;
    stack::run(config, stop).await?;
    Ok(())
}
