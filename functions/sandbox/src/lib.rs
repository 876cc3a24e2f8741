//! `wa-sandbox`: a sandbox of Meta's Graph API (the WhatsApp Cloud API) on loopback.
//!
//! It stands in for `https://graph.facebook.com` in the local stack (`make dev`), in tests and
//! in benchmarks: point `GRAPH_API_BASE_URL` at [`SandboxHandle::url`]. It owns only the
//! Meta side of the wire. It records every send, answers like Meta, posts signed status
//! webhooks back to the receiver, and fails on demand. It knows nothing of Ventana's domain,
//! AWS or Lambda, and must not depend on them: its tests check it against `wa-domain`'s
//! signature verifier, a dev-dependency only. It binds 127.0.0.1 and never talks to anything
//! but loopback and the webhook URL it is given. It never logs a token, a secret or a message
//! body.
//!
//! # Starting it
//!
//! ```no_run
//! # async fn demo() -> Result<(), wa_sandbox::SandboxError> {
//! use std::time::Duration;
//! use wa_sandbox::{FailureMode, FailureRule, Sandbox, SandboxConfig};
//!
//! let sandbox = Sandbox::start(SandboxConfig {
//!     access_token: "dev-token".into(),
//!     app_secret: "dev-app-secret".into(),
//!     webhook_url: Some("http://127.0.0.1:3000/webhook".into()),
//!     latency: Duration::from_millis(50),
//!     ..SandboxConfig::default()
//! })
//! .await?;
//! println!("GRAPH_API_BASE_URL={}", sandbox.url());
//! sandbox.set_failure(FailureRule::new(FailureMode::Throughput).for_recipient("+16505551234").times(2));
//! // … run the system under test …
//! assert!(sandbox.sends().iter().all(|s| s.phone_number_id == "106540352242922"));
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Meta's routes
//!
//! **`POST /{version}/{phone_number_id}/messages`**, with `Authorization: Bearer <token>`
//! ([`SandboxConfig::access_token`]). A missing or wrong token is answered 401,
//! `{"error":{"message":…,"type":"OAuthException","code":190,"fbtrace_id":…}}`. The body
//! gets light validation only: a JSON object, `messaging_product: "whatsapp"`, and `to` (with
//! digits) or `recipient` (a BSUID). Anything else is 400 with code 100. A body with top-level
//! `"status":"read"` is a read receipt, answered `{"success":true}`. Any other send is answered,
//! after the configured latency,
//!
//! ```json
//! {"messaging_product":"whatsapp",
//!  "contacts":[{"input":"+16505551234","wa_id":"16505551234"}],
//!  "messages":[{"id":"wamid.HBgL…"}]}
//! ```
//!
//! Template sends also get `"message_status":"accepted"`. BSUID sends get
//! `"user_id"` in the contact. Every answer carries `x-fb-trace-id`, and every error is in
//! Meta's shape with an `fbtrace_id`.
//!
//! ```text
//! curl -s http://127.0.0.1:$PORT/v25.0/106540352242922/messages \
//!   -H 'Authorization: Bearer dev-token' -H 'Content-Type: application/json' \
//!   -d '{"messaging_product":"whatsapp","to":"+16505551234","type":"text",
//!        "text":{"body":"hi"},"biz_opaque_callback_data":"vnt.0123"}'
//! ```
//!
//! **`GET /{version}/{waba_id}/message_templates`** lists [`SandboxConfig::templates`]
//! (`name`, `language`, `status`, `category`, `components`, `id`) for the configured
//! [`SandboxConfig::waba_id`] only. It pages like the Graph API, with `limit` (default 25, at
//! most 100), `after`, `before`, `paging.cursors.{before,after}`, `paging.next` and
//! `paging.previous`. The default seed is [`Template::samples`]. A bad cursor is 400 with code 131059. It filters on `name`, `status`,
//! `category` and `language`, and `fields` keeps only the named fields (and `id`).
//!
//! ```text
//! curl -s "http://127.0.0.1:$PORT/v25.0/102290129340398/message_templates?limit=2&status=APPROVED" \
//!   -H 'Authorization: Bearer dev-token'
//! ```
//!
//! # Status webhooks
//!
//! With a [`SandboxConfig::webhook_url`], each accepted send is followed by `sent`, then
//! `delivered`, then `read`, at [`SandboxConfig::status_delays`] after the answer (by default
//! 200, 400 and 800 ms). The answer never waits for them. Each webhook is a POST in Meta's
//! shape:
//!
//! ```json
//! {"object":"whatsapp_business_account","entry":[{"id":"<waba_id>","changes":[{"value":{
//!   "messaging_product":"whatsapp",
//!   "metadata":{"display_phone_number":"15550001234","phone_number_id":"106540352242922"},
//!   "statuses":[{"id":"wamid.…","status":"sent","timestamp":"1750030073",
//!     "recipient_id":"16505551234","biz_opaque_callback_data":"vnt.0123",
//!     "conversation":{"id":"…","expiration_timestamp":"1750116473","origin":{"type":"service"}},
//!     "pricing":{"billable":false,"pricing_model":"PMP","type":"free_customer_service","category":"service"}}]},
//!   "field":"messages"}]}]}
//! ```
//!
//! The webhook echoes `biz_opaque_callback_data` when the send had it, and
//! `recipient_user_id` for BSUID sends. `conversation` comes only on `sent`, and `pricing` on
//! `sent` and `delivered`. Template sends are priced `regular` in the template's category;
//! other sends are `free_customer_service` / `service`. The body is signed
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the exact body, key = app secret>`. It is
//! written the way Meta writes it, with non-ASCII as `\uXXXX` and `/` as `\/`, so a receiver
//! that hashes re-serialised JSON fails here as it would against Meta. A POST that is refused
//! (connection error, timeout, non-200) is retried with doubling backoff
//! ([`SandboxConfig::webhook_retry`]). A send's statuses are posted one after the other, so a
//! retried status holds back the next ones. [`SandboxConfig::shuffle_statuses`] posts them in a
//! random order, to test forward-only status handling.
//!
//! # Failure injection
//!
//! A [`FailureRule`] makes the sends it matches fail. It can match a recipient (phone digits
//! compared with `to`'s digits, or a BSUID compared with `recipient`), a phone number id, both,
//! or every send. It can last until cleared, or cover only the next `times` sends. The rule set
//! last wins. Read receipts are never failed. The [`FailureMode`]s are:
//!
//! | mode | answer |
//! |---|---|
//! | `throughput` | 400, code 130429 (subcode 2494055) |
//! | `window_closed` | 400, code 131047 |
//! | `pair_rate` | 400, code 131056 |
//! | `opted_out` | 400, code 131050 |
//! | `undeliverable` | 400, code 131026 |
//! | `server_error` | 500, code 131000 |
//! | `token_expired` | 401, code 190 (subcode 463): a "stop sending" code, the send is dead-lettered and the number held |
//! | `unavailable` | 503, plain text (no Cloud API body) |
//! | `timeout_after_receive` | recorded and *sent* (wamid, webhooks follow), answer held [`SandboxConfig::hold_for`] (60 s) |
//! | `reset_after_receive` | recorded and *sent*, connection closed without a complete answer |
//! | `async_failure` + `code` | 200 with a wamid, then one `failed` status webhook with `errors[{code,title,message,error_data.details,href}]` |
//!
//! # Control API (same server, no authentication: loopback only)
//!
//! ```text
//! curl -s http://127.0.0.1:$PORT/_sandbox/health                      # {"status":"ok"}
//! curl -s http://127.0.0.1:$PORT/_sandbox/sends                       # every request recorded, oldest first
//! curl -s -X DELETE http://127.0.0.1:$PORT/_sandbox/sends             # forget them
//! curl -s http://127.0.0.1:$PORT/_sandbox/failures                    # active rules
//! curl -s http://127.0.0.1:$PORT/_sandbox/failures -H 'Content-Type: application/json' \
//!   -d '{"mode":"throughput","phone_number_id":"106540352242922","times":3}'
//! curl -s http://127.0.0.1:$PORT/_sandbox/failures \
//!   -d '{"mode":"async_failure","code":131049,"recipient":"+16505551234"}'
//! curl -s -X DELETE http://127.0.0.1:$PORT/_sandbox/failures          # clear every rule
//! curl -s http://127.0.0.1:$PORT/_sandbox/latency -d '{"latency_ms":50}'
//! curl -s http://127.0.0.1:$PORT/_sandbox/counters
//! ```
//!
//! A recorded send ([`RecordedSend`]) is
//! `{"seq":1,"version":"v25.0","phone_number_id":"…","body":{…},"outcome":{"kind":"accepted","wamid":"wamid.…"},"received_at_ms":…}`;
//! the other outcome kinds are `read_receipt`, `rejected` (`http_status`, `code`), `timed_out`,
//! `reset` and `accepted_then_failed` (`wamid`, `code`).

#![warn(missing_docs)]

mod config;
mod failure;
mod meta;
mod record;
mod server;
mod templates;
mod webhook;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, info};

pub use config::{SandboxConfig, StatusDelays, Template, WebhookRetry};
pub use failure::{FailureMode, FailureRule, RuleError};
pub use record::{Counters, RecordedSend, SendOutcome};

use server::Shared;

/// Why a sandbox could not start, or a setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The port could not be bound on 127.0.0.1.
    #[error("could not bind the sandbox Graph API to 127.0.0.1:{port}")]
    Bind {
        /// The port asked for (0 = any).
        port: u16,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The webhook URL does not parse or is not http(s).
    #[error("status webhook URL `{url}` is not an http(s) URL")]
    InvalidWebhookUrl {
        /// The URL given.
        url: String,
    },
    /// The app secret cannot key an HMAC (it is empty).
    #[error("the app secret for signing status webhooks is empty")]
    EmptyAppSecret,
    /// The HTTP client for webhooks could not be built.
    #[error("could not build the HTTP client for status webhooks")]
    Client(#[source] reqwest::Error),
}

/// The sandbox Graph API. [`Sandbox::start`] serves it until the returned handle is shut down
/// (or dropped).
#[derive(Debug)]
pub struct Sandbox {
    _private: (),
}

impl Sandbox {
    /// Binds 127.0.0.1 on [`SandboxConfig::port`] (0: any free port) and serves Meta's routes
    /// and the control API in a background task.
    pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
        let webhook_url = config
            .webhook_url
            .as_deref()
            .map(parse_webhook_url)
            .transpose()?;
        if config.app_secret.expose_secret().is_empty() {
            return Err(SandboxError::EmptyAppSecret);
        }
        let signer = webhook::signer(config.app_secret.expose_secret())
            .ok_or(SandboxError::EmptyAppSecret)?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .user_agent("facebookexternalua")
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(SandboxError::Client)?;
        let port = config.port;
        let bind = |source| SandboxError::Bind { port, source };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let url = format!("http://{addr}");
        let shared = Arc::new(Shared::new(config, url.clone(), signer, http, webhook_url));
        let router = server::router(Arc::clone(&shared));
        let stop = shared.cancel.clone();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                error!(error = %e, "sandbox Graph API server failed");
            }
        });
        info!(%addr, "sandbox Graph API listening");
        Ok(SandboxHandle {
            shared,
            server: Some(server),
            addr,
            url,
        })
    }
}

fn parse_webhook_url(url: &str) -> Result<reqwest::Url, SandboxError> {
    reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| SandboxError::InvalidWebhookUrl {
            url: url.to_owned(),
        })
}

/// A running sandbox. Dropping it stops the server without waiting; [`shutdown`](Self::shutdown)
/// stops it and waits.
#[derive(Debug)]
pub struct SandboxHandle {
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
    addr: SocketAddr,
    url: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// The base URL, `http://127.0.0.1:<port>`, to use as `GRAPH_API_BASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `{url}/{version}/{phone_number_id}/messages`.
    pub fn messages_url(&self, version: &str, phone_number_id: &str) -> String {
        format!("{}/{version}/{phone_number_id}/messages", self.url)
    }

    /// Every request to `/messages` still kept (at most [`SandboxConfig::max_recorded`]),
    /// oldest first.
    pub fn sends(&self) -> Vec<RecordedSend> {
        self.shared.sends().iter().cloned().collect()
    }

    /// Forgets the recorded requests (the counters keep counting).
    pub fn clear_sends(&self) {
        self.shared.sends().clear();
    }

    /// Adds a failure rule; it takes precedence over the rules set before it.
    pub fn set_failure(&self, rule: FailureRule) {
        self.shared.rules().add(rule);
    }

    /// The active failure rules, oldest first, with what is left of their `times`.
    pub fn failures(&self) -> Vec<FailureRule> {
        self.shared.rules().list()
    }

    /// Removes every failure rule.
    pub fn clear_failures(&self) {
        self.shared.rules().clear();
    }

    /// Sets how long every `/messages` answer waits.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.set_latency(latency);
    }

    /// How long every `/messages` answer waits.
    pub fn latency(&self) -> Duration {
        self.shared.latency()
    }

    /// Points status webhooks at `url`, or disables them with `None`. Webhooks already
    /// scheduled go to the new URL.
    pub fn set_webhook_url(&self, url: Option<&str>) -> Result<(), SandboxError> {
        let url = url.map(parse_webhook_url).transpose()?;
        self.shared.set_webhook_url(url);
        Ok(())
    }

    /// Totals since the start.
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Stops serving: held answers are released, pending webhooks are dropped (counted as
    /// abandoned), and this returns once the server and every webhook task have stopped.
    pub async fn shutdown(mut self) {
        self.shared.cancel.cancel();
        if let Some(server) = self.server.take()
            && let Err(e) = server.await
        {
            error!(error = %e, "sandbox Graph API server task failed");
        }
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        info!(addr = %self.addr, "sandbox Graph API stopped");
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
