//! What a sandbox is started with.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// How a [`Sandbox`](crate::Sandbox) behaves. [`SandboxConfig::default`] gives a sandbox on any
/// free port, with no status webhooks (set [`webhook_url`](Self::webhook_url) to get them),
/// no latency and Meta's `hello_world` template.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The port to bind on 127.0.0.1; 0 picks any free port.
    pub port: u16,
    /// The Graph API access token a request must carry as `Authorization: Bearer <token>`
    /// (the deliver-worker's `WHATSAPP_ACCESS_TOKEN`).
    pub access_token: SecretString,
    /// The app secret the status webhooks are signed with (`WHATSAPP_APP_SECRET` of the
    /// receiver; with several, the receiver must accept this one).
    pub app_secret: SecretString,
    /// The WhatsApp Business Account id: `entry[].id` of every status webhook, and the only id
    /// the template listing answers for.
    pub waba_id: String,
    /// `metadata.display_phone_number` of the status webhooks, for phone number ids not in
    /// [`display_phone_numbers`](Self::display_phone_numbers).
    pub display_phone_number: String,
    /// `metadata.display_phone_number` per phone number id.
    pub display_phone_numbers: BTreeMap<String, String>,
    /// Where status webhooks are posted (e.g. `http://127.0.0.1:3000/webhook`); `None`
    /// disables them. Can be changed later with
    /// [`SandboxHandle::set_webhook_url`](crate::SandboxHandle::set_webhook_url).
    pub webhook_url: Option<String>,
    /// When each status webhook is posted, counted from the moment the send is answered.
    pub status_delays: StatusDelays,
    /// Posts each send's statuses in a random order (still at the delays' instants), to test
    /// that a receiver applies statuses forward-only.
    pub shuffle_statuses: bool,
    /// How a status webhook that was not answered 200 is retried.
    pub webhook_retry: WebhookRetry,
    /// How long every `/messages` answer waits before it is given (benchmarks use 50 ms, about
    /// what Meta takes). Can be changed with
    /// [`SandboxHandle::set_latency`](crate::SandboxHandle::set_latency).
    pub latency: Duration,
    /// How long a send failed with [`FailureMode::TimeoutAfterReceive`](crate::FailureMode)
    /// waits before it is answered: longer than any client timeout.
    pub hold_for: Duration,
    /// The templates `GET /{version}/{waba_id}/message_templates` lists, in this order.
    pub templates: Vec<Template>,
    /// How many requests [`SandboxHandle::sends`](crate::SandboxHandle::sends) keeps; the
    /// oldest are forgotten first (counters still count them), so a long benchmark does not
    /// grow without bound.
    pub max_recorded: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            port: 0,
            access_token: SecretString::from("sandbox-access-token"),
            app_secret: SecretString::from("sandbox-app-secret"),
            waba_id: "102290129340398".into(),
            display_phone_number: "15550001234".into(),
            display_phone_numbers: BTreeMap::new(),
            webhook_url: None,
            status_delays: StatusDelays::default(),
            shuffle_statuses: false,
            webhook_retry: WebhookRetry::default(),
            latency: Duration::ZERO,
            hold_for: Duration::from_secs(60),
            templates: Template::samples(),
            max_recorded: 100_000,
        }
    }
}

/// When the `sent`, `delivered` and `read` webhooks of a successful send are posted, counted
/// from the answer. `None` leaves that status out (a message delivered but never read). A
/// send's statuses are posted one after the other by one task, so a status whose post is being
/// retried holds back the next ones, and ties keep the order sent, delivered, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusDelays {
    /// Delay of `sent` (also of `failed`, for [`FailureMode::AsyncFailure`](crate::FailureMode)).
    pub sent: Option<Duration>,
    /// Delay of `delivered`.
    pub delivered: Option<Duration>,
    /// Delay of `read`.
    pub read: Option<Duration>,
}

impl Default for StatusDelays {
    /// 200 ms, 400 ms and 800 ms.
    fn default() -> Self {
        StatusDelays {
            sent: Some(Duration::from_millis(200)),
            delivered: Some(Duration::from_millis(400)),
            read: Some(Duration::from_millis(800)),
        }
    }
}

/// Retries of a status webhook POST that failed (connection refused, timeout, non-200), as Meta
/// retries: at once, then less and less often. The sandbox gives up far sooner than Meta's
/// 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookRetry {
    /// Retries after the first attempt (0: never retried).
    pub retries: u32,
    /// Wait before the first retry; each next wait doubles.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// How long one POST may take.
    pub timeout: Duration,
}

impl Default for WebhookRetry {
    /// 5 retries after 100 ms, 200 ms, 400 ms, 800 ms and 1.6 s; 5 s per POST.
    fn default() -> Self {
        WebhookRetry {
            retries: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

/// A message template, as the Graph API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// The template id (digits).
    pub id: String,
    /// Its name (`order_update`).
    pub name: String,
    /// Its language code (`en_US`, `es`).
    pub language: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`, ….
    pub status: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`; also the pricing category of its sends.
    pub category: String,
    /// Its components, as Meta lists them (`[{"type":"BODY","text":"…"}]`).
    pub components: serde_json::Value,
}

impl Template {
    /// An `APPROVED` template with an id derived from its name and language.
    pub fn approved(
        name: impl Into<String>,
        language: impl Into<String>,
        category: impl Into<String>,
        components: serde_json::Value,
    ) -> Template {
        let name = name.into();
        let language = language.into();
        Template {
            id: template_id(&name, &language),
            name,
            language,
            status: "APPROVED".into(),
            category: category.into(),
            components,
        }
    }

    /// Meta's `hello_world` sample template, which every new WhatsApp Business Account has.
    pub fn hello_world() -> Template {
        Template::approved(
            "hello_world",
            "en_US",
            "UTILITY",
            serde_json::json!([
                {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
                {"type": "BODY", "text": "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for taking the time to test with us."},
                {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"}
            ]),
        )
    }

    /// The default seed: [`Template::hello_world`], a `MARKETING` template with body
    /// parameters and quick-reply buttons (`summer_sale`, `en_US`) and a `UTILITY` one with a
    /// header and body parameters and a URL button (`order_update`, `en_US`).
    pub fn samples() -> Vec<Template> {
        vec![
            Template::hello_world(),
            Template::approved(
                "summer_sale",
                "en_US",
                "MARKETING",
                serde_json::json!([
                    {"type": "BODY", "text": "Hi {{1}}, our summer sale is on: {{2}} off until Sunday.",
                     "example": {"body_text": [["Maria", "20%"]]}},
                    {"type": "FOOTER", "text": "Reply STOP to opt out"},
                    {"type": "BUTTONS", "buttons": [
                        {"type": "QUICK_REPLY", "text": "Show me"},
                        {"type": "QUICK_REPLY", "text": "Stop promotions"}
                    ]}
                ]),
            ),
            Template::approved(
                "order_update",
                "en_US",
                "UTILITY",
                serde_json::json!([
                    {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}",
                     "example": {"header_text": ["A-1042"]}},
                    {"type": "BODY", "text": "Hi {{1}}, your order is {{2}}. It should arrive on {{3}}.",
                     "example": {"body_text": [["Maria", "on its way", "Friday"]]}},
                    {"type": "BUTTONS", "buttons": [
                        {"type": "URL", "text": "Track", "url": "https://example.com/track/{{1}}",
                         "example": ["https://example.com/track/A-1042"]}
                    ]}
                ]),
            ),
        ]
    }
}

/// A stable 16-digit id from the name and language (FNV-1a), so the same seed gives the same
/// ids in every run.
fn template_id(name: &str, language: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain([0u8]).chain(language.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{}", 1_000_000_000_000_000 + hash % 9_000_000_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_ids_are_stable_distinct_digits() {
        let a = Template::approved("a", "en", "UTILITY", serde_json::json!([]));
        let again = Template::approved("a", "en", "UTILITY", serde_json::json!([]));
        let b = Template::approved("a", "es", "UTILITY", serde_json::json!([]));
        assert_eq!(a.id, again.id);
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 16);
        assert!(a.id.bytes().all(|c| c.is_ascii_digit()));
    }
}
