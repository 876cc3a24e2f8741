//! `wa-graph`: Ventana's client for Meta's Graph API (the WhatsApp Cloud API).
//!
//! It owns the HTTP side of a send: posting a message body to
//! `{base_url}/{version}/{phone_number_id}/messages` with the bearer token, under a connect
//! timeout and a request timeout, and reporting what happened as a
//! [`wa_domain::outbound::GraphOutcome`]. Reading Meta's answers and deciding what to do
//! about them (retry, permanent failure, unconfirmed) is pure domain code in
//! `wa_domain::outbound`; this crate only tells those cases apart on the wire.
//!
//! The base URL is injected (`GRAPH_API_BASE_URL`), so tests and the local stack point it at a
//! stub on loopback. It must not depend on AWS or Lambda crates, and it never logs the token
//! or a message body.
//!
//! It also reads an account's template listing (`GET {base_url}/{version}/{waba_id}/message_templates`)
//! page by page for `wa_domain::templates::sync`, as its [`TemplateSource`].

#![warn(missing_docs)]

use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use tracing::{debug, instrument, warn};
use wa_domain::outbound::{GraphOutcome, TransportFailure};
use wa_domain::templates::{SourceError, TemplatePage, TemplateSource, parse_listing};

/// How long a send may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest time to establish the connection (TCP and TLS). A send that fails here never
    /// left, so it is safe to retry.
    pub connect: Duration,
    /// Longest time for the whole request, connection included, until the answer's body is
    /// read. Must be longer than `connect`.
    pub request: Duration,
}

impl Default for Timeouts {
    /// 2 s to connect, 6 s in all: well inside the 10 s Lambda timeout of the deliver-worker,
    /// and far above the Graph API's usual sub-second answers.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(6),
        }
    }
}

impl Timeouts {
    /// The timeouts for a `GRAPH_API_TIMEOUT_MS` of `request_ms`: that long in all, and half
    /// of it (at most 2 s) to connect.
    pub fn for_request_ms(request_ms: u64) -> Self {
        Timeouts {
            connect: Duration::from_millis((request_ms / 2).min(2_000)),
            request: Duration::from_millis(request_ms),
        }
    }
}

/// Why a [`GraphClient`] could not be built. Raised at start-up, never per request.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The base URL does not parse.
    #[error("Graph API base URL `{url}` is not a valid URL")]
    InvalidBaseUrl {
        /// The URL given.
        url: String,
        /// The parser's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The base URL is not `http` or `https`, or cannot take path segments.
    #[error("Graph API base URL `{url}` must be an http(s) URL")]
    UnsupportedBaseUrl {
        /// The URL given.
        url: String,
    },
    /// The API version is not of the form `v25.0`.
    #[error("Graph API version `{version}` must look like `v25.0`")]
    InvalidVersion {
        /// The version given.
        version: String,
    },
    /// The connect timeout is not shorter than the request timeout, so a timeout could not
    /// tell "never connected" from "sent, no answer".
    #[error("the connect timeout must be shorter than the request timeout")]
    InvalidTimeouts,
    /// The HTTP client could not be built (for instance, no TLS roots).
    #[error("could not build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// A Cloud API client for one base URL, API version and access token. Build it once per
/// process and share it: it keeps a connection pool.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: Url,
    version: String,
    token: SecretString,
}

impl GraphClient {
    /// Builds a client for `base_url` (e.g. `https://graph.facebook.com`, or a stub on
    /// loopback; a path prefix is kept), API `version` (e.g. `v25.0`) and the access token.
    ///
    /// Proxies from the environment are honoured except for a loopback base URL, which is
    /// always reached directly.
    pub fn new(
        base_url: &str,
        version: impl Into<String>,
        token: SecretString,
        timeouts: Timeouts,
    ) -> Result<Self, GraphError> {
        let url = Url::parse(base_url).map_err(|e| GraphError::InvalidBaseUrl {
            url: base_url.to_owned(),
            source: Box::new(e),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(GraphError::UnsupportedBaseUrl {
                url: base_url.to_owned(),
            });
        }
        let version = version.into();
        if !valid_version(&version) {
            return Err(GraphError::InvalidVersion { version });
        }
        if timeouts.connect >= timeouts.request {
            return Err(GraphError::InvalidTimeouts);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .user_agent(concat!("ventana/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&url) {
            builder = builder.no_proxy();
        }
        Ok(GraphClient {
            http: builder.build().map_err(GraphError::Client)?,
            base_url: url,
            version,
            token,
        })
    }

    /// The URL a send for `phone_number_id` is posted to:
    /// `{base_url}/{version}/{phone_number_id}/messages`.
    pub fn messages_url(&self, phone_number_id: &str) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .push(&self.version)
                .push(phone_number_id)
                .push("messages");
        }
        url
    }

    /// Posts a message body (a Cloud API send body, as built by
    /// `SendRequest::graph_body`) for `phone_number_id`, and reports what happened:
    ///
    /// - a 2xx with `messages[0].id` → [`GraphOutcome::Accepted`];
    /// - any other answer → [`GraphOutcome::Rejected`] with Meta's code, or code 0 and the
    ///   HTTP status when the body is not a Cloud API error (`fbtrace_id` from the body, else
    ///   the `x-fb-trace-id` header);
    /// - no connection → [`TransportFailure::ConnectFailed`] (nothing left);
    /// - connected but no answer in time → [`TransportFailure::TimedOutAfterSend`];
    /// - anything else once connected → [`TransportFailure::Other`].
    ///
    /// How a failure is told apart: reqwest marks an error `is_connect()` only when the
    /// connection (TCP or TLS) was never established, so the request cannot have been
    /// written. Every other error may come after the request was written, and then Meta may
    /// have sent the message: a timeout is `TimedOutAfterSend`, the rest `Other`, and both are
    /// classified as unconfirmed, never blindly retried. The connect timeout is shorter than
    /// the request timeout, so a slow connect ends as a connect error. An invalid phone
    /// number id (not ASCII letters and digits) is refused without a request, as
    /// `Rejected { http_status: 0, code: 100 }`.
    #[instrument(skip_all, fields(phone_number_id = %phone_number_id))]
    pub async fn send_message(
        &self,
        phone_number_id: &str,
        body: &serde_json::Value,
    ) -> GraphOutcome {
        if phone_number_id.is_empty() || !phone_number_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            warn!("phone number id is not a Graph id; not sent");
            return GraphOutcome::Rejected {
                http_status: 0,
                code: 100,
                subcode: None,
                message: "phone number id must be ASCII letters and digits; not sent".into(),
                details: None,
                fbtrace_id: None,
            };
        }
        let sent = self
            .http
            .post(self.messages_url(phone_number_id))
            .bearer_auth(self.token.expose_secret())
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let failure = transport_failure(&e);
                warn!(error = %e, ?failure, "Graph API request failed");
                return GraphOutcome::Transport(failure);
            }
        };
        let status = response.status();
        let trace = response
            .headers()
            .get("x-fb-trace-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, status = status.as_u16(), "could not read the Graph API answer");
                // Meta answered, so it got the request. A success whose body is lost may
                // still have sent the message; an error status stays an error.
                if status.is_success() {
                    return GraphOutcome::Transport(if e.is_timeout() {
                        TransportFailure::TimedOutAfterSend
                    } else {
                        TransportFailure::Other
                    });
                }
                Default::default()
            }
        };
        let outcome = GraphOutcome::from_response(status.as_u16(), &bytes, trace.as_deref());
        match &outcome {
            GraphOutcome::Accepted { wamid, .. } => debug!(%wamid, "accepted by the Graph API"),
            GraphOutcome::Rejected {
                http_status,
                code,
                fbtrace_id,
                ..
            } => warn!(
                http_status,
                code,
                fbtrace_id = fbtrace_id.as_deref().unwrap_or(""),
                "refused by the Graph API"
            ),
            GraphOutcome::Transport(failure) => {
                warn!(
                    ?failure,
                    status = status.as_u16(),
                    "unreadable Graph API answer"
                );
            }
        }
        outcome
    }
}

/// Sorts a reqwest error: connect errors never sent the request; the rest may have.
fn transport_failure(e: &reqwest::Error) -> TransportFailure {
    if e.is_connect() || e.is_builder() {
        TransportFailure::ConnectFailed
    } else if e.is_timeout() {
        TransportFailure::TimedOutAfterSend
    } else {
        TransportFailure::Other
    }
}

/// `v` followed by digits, a dot and digits (`v25.0`).
fn valid_version(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        })
}

fn is_loopback(url: &Url) -> bool {
    url.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

impl wa_domain::ports::GraphSender for GraphClient {
    fn post_message(
        &self,
        phone_number_id: &str,
        body: &serde_json::Value,
    ) -> impl std::future::Future<Output = GraphOutcome> + Send {
        self.send_message(phone_number_id, body)
    }
}

/// Templates asked for per listing page (the Graph API's largest page).
pub const TEMPLATE_PAGE_SIZE: usize = 100;

impl GraphClient {
    /// The URL of one page of `waba_id`'s template listing:
    /// `{base_url}/{version}/{waba_id}/message_templates?limit=…[&after=…]`.
    pub fn templates_url(&self, waba_id: &str, after: Option<&str>) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .push(&self.version)
                .push(waba_id)
                .push("message_templates");
        }
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &TEMPLATE_PAGE_SIZE.to_string());
            if let Some(after) = after {
                query.append_pair("after", after);
            }
        }
        url
    }

    /// Reads one page of `waba_id`'s templates (`GET …/message_templates`, bearer token),
    /// after the cursor `after`:
    ///
    /// - a 2xx whose body is a listing → the page, read by `wa_domain::templates::parse_listing`;
    /// - a 2xx that is not a listing → [`SourceError::Malformed`];
    /// - no answer, a timeout, or a 5xx / 429 → [`SourceError::Unavailable`] (try later);
    /// - any other status → [`SourceError::Refused`] with Meta's code and message.
    ///
    /// An account id that is not ASCII letters and digits is refused without a request.
    #[instrument(skip_all, fields(waba_id = %waba_id))]
    pub async fn template_page(
        &self,
        waba_id: &str,
        after: Option<&str>,
    ) -> Result<TemplatePage, SourceError> {
        if waba_id.is_empty() || !waba_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SourceError::Refused {
                status: 0,
                code: Some(100),
                message: "account id must be ASCII letters and digits; not asked".into(),
            });
        }
        let response = self
            .http
            .get(self.templates_url(waba_id, after))
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| {
                warn!(error = %e, "template listing request failed");
                SourceError::Unavailable(Box::new(e))
            })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            warn!(error = %e, status = status.as_u16(), "could not read the template listing");
            SourceError::Unavailable(Box::new(e))
        })?;
        if status.is_success() {
            let page = parse_listing(waba_id, &bytes).map_err(|e| {
                warn!(
                    status = status.as_u16(),
                    "template listing is not a listing"
                );
                SourceError::Malformed(Box::new(e))
            })?;
            debug!(
                templates = page.templates.len(),
                more = page.after.is_some(),
                "template listing page read"
            );
            return Ok(page);
        }
        let (code, message) = graph_error(&bytes);
        warn!(
            status = status.as_u16(),
            code, "template listing refused by the Graph API"
        );
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(SourceError::Unavailable(
                format!("HTTP {} (code {code:?})", status.as_u16()).into(),
            ));
        }
        Err(SourceError::Refused {
            status: status.as_u16(),
            code,
            message,
        })
    }
}

/// Meta's error code and message from an error body, when it is one.
fn graph_error(body: &[u8]) -> (Option<i64>, String) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error = &value["error"];
    (
        error["code"].as_i64(),
        error["message"].as_str().unwrap_or_default().to_owned(),
    )
}

impl TemplateSource for GraphClient {
    fn page(
        &self,
        waba_id: &str,
        after: Option<&str>,
    ) -> impl std::future::Future<Output = Result<TemplatePage, SourceError>> + Send {
        self.template_page(waba_id, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> GraphClient {
        GraphClient::new(
            base,
            "v25.0",
            SecretString::from("secret-token"),
            Timeouts::default(),
        )
        .unwrap()
    }

    #[test]
    fn messages_url_is_base_version_number_messages() {
        assert_eq!(
            client("https://graph.facebook.com")
                .messages_url("1234")
                .as_str(),
            "https://graph.facebook.com/v25.0/1234/messages"
        );
        assert_eq!(
            client("http://127.0.0.1:9/graph/")
                .messages_url("1234")
                .as_str(),
            "http://127.0.0.1:9/graph/v25.0/1234/messages"
        );
    }

    #[test]
    fn templates_url_asks_for_full_pages_after_the_cursor() {
        let c = client("http://127.0.0.1:9/graph/");
        assert_eq!(
            c.templates_url("102290129340398", None).as_str(),
            "http://127.0.0.1:9/graph/v25.0/102290129340398/message_templates?limit=100"
        );
        assert_eq!(
            c.templates_url("1", Some("QVFI+a=")).as_str(),
            "http://127.0.0.1:9/graph/v25.0/1/message_templates?limit=100&after=QVFI%2Ba%3D"
        );
    }

    #[test]
    fn bad_configuration_fails_at_start_up() {
        let token = || SecretString::from("t");
        let t = Timeouts::default();
        assert!(matches!(
            GraphClient::new("not a url", "v25.0", token(), t),
            Err(GraphError::InvalidBaseUrl { .. })
        ));
        assert!(matches!(
            GraphClient::new("ftp://x.test", "v25.0", token(), t),
            Err(GraphError::UnsupportedBaseUrl { .. })
        ));
        for v in ["25.0", "v25", "latest", "v25.0/x"] {
            assert!(matches!(
                GraphClient::new("https://x.test", v, token(), t),
                Err(GraphError::InvalidVersion { .. })
            ));
        }
        let same = Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(5),
        };
        assert!(matches!(
            GraphClient::new("https://x.test", "v25.0", token(), same),
            Err(GraphError::InvalidTimeouts)
        ));
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let shown = format!("{:?}", client("https://graph.facebook.com"));
        assert!(!shown.contains("secret-token"), "{shown}");
    }

    #[test]
    fn only_loopback_hosts_skip_proxies() {
        for (url, want) in [
            ("http://127.0.0.1:1", true),
            ("http://localhost:1", true),
            ("http://[::1]:1", true),
            ("https://graph.facebook.com", false),
        ] {
            assert_eq!(is_loopback(&Url::parse(url).unwrap()), want, "{url}");
        }
    }
}
