//! A moto server started (and stopped) by the local stack, on a free loopback port.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long moto may take to answer `GET /moto-api/` (it is usually ready in half a second).
const STARTUP: Duration = Duration::from_secs(30);
/// Lines of moto's output kept to explain a failed start.
const KEPT_LINES: usize = 30;

/// Why moto could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    /// No `moto_server` executable was found.
    #[error(
        "moto_server not found (looked for {}); run `make bootstrap` (or `python3 -m venv .venv && .venv/bin/pip install 'moto[server]'`), or set VENTANA_MOTO_SERVER, or point AWS_ENDPOINT_URL at a running moto",
        .looked.iter().take(3).map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// The paths tried.
        looked: Vec<PathBuf>,
    },
    /// No free port could be found.
    #[error("cannot find a free loopback port for moto")]
    Port(#[source] std::io::Error),
    /// The executable could not be started.
    #[error("cannot start {}", path.display())]
    Spawn {
        /// The executable.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// moto exited before answering.
    #[error("moto exited during startup ({status}); its last output:\n{output}")]
    Exited {
        /// How it ended.
        status: String,
        /// Its last lines of output.
        output: String,
    },
    /// moto did not answer in time.
    #[error(
        "moto did not answer GET /moto-api/ on {addr} within {STARTUP:?}; its last output:\n{output}"
    )]
    Timeout {
        /// Where it should listen.
        addr: SocketAddr,
        /// Its last lines of output.
        output: String,
    },
}

/// A running moto server; killed when dropped, killed and waited for by [`Moto::stop`].
pub struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    /// The first existing candidate (see `Config::moto_candidates`).
    pub fn find(candidates: &[PathBuf]) -> Result<PathBuf, MotoError> {
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .ok_or_else(|| MotoError::NotFound {
                looked: candidates.to_vec(),
            })
    }

    /// Starts `server -H 127.0.0.1 -p <free port>` and waits until `GET /moto-api/`
    /// answers. Its output goes to the `moto` log target at debug level.
    pub async fn start(server: &Path) -> Result<Moto, MotoError> {
        let port = free_port().map_err(MotoError::Port)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| MotoError::Spawn {
                path: server.to_path_buf(),
                source,
            })?;
        let recent = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward(out, recent.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward(err, recent.clone()));
        }
        let output = || {
            recent
                .lock()
                .map(|r| r.iter().cloned().collect::<Vec<_>>().join("\n"))
                .unwrap_or_default()
        };
        let deadline = tokio::time::Instant::now() + STARTUP;
        loop {
            if answers(addr).await {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Give the output forwarders a moment to catch the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(MotoError::Exited {
                    status: status.to_string(),
                    output: output(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(MotoError::Timeout {
                    addr,
                    output: output(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Moto {
            child,
            endpoint: format!("http://{addr}"),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The process id, for the banner.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resolves if moto exits on its own.
    pub async fn exited(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Kills moto and waits until it has exited.
    pub async fn stop(mut self) {
        if let Err(error) = self.child.kill().await {
            tracing::warn!(?error, "could not stop moto");
        }
    }
}

/// Binds port 0 on loopback and releases it: the port moto is then told to use.
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Whether `GET /moto-api/` answers 200 (a minimal HTTP/1.0 request; no client library
/// needed for one probe).
async fn answers(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0_u8; 16];
        let n = stream.read(&mut head).await.ok()?;
        let status_line = String::from_utf8_lossy(&head[..n]).into_owned();
        Some(status_line.starts_with("HTTP/1.1 200") || status_line.starts_with("HTTP/1.0 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), probe).await,
        Ok(Some(true))
    )
}

async fn forward(stream: impl AsyncRead + Unpin, recent: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "moto", "{line}");
        if let Ok(mut r) = recent.lock() {
            if r.len() >= KEPT_LINES {
                r.pop_front();
            }
            r.push_back(line);
        }
    }
}
