//! The worker's settings from the environment (names in `infra/template.yaml`).

use wa_domain::model::MessagingLimit;
use wa_domain::outbound::deliver::DeliverConfig;
use wa_edge::ConfigError;

/// The worker's [`DeliverConfig`] from the environment. `MESSAGING_LIMIT_DEFAULT_TIER` is the
/// tier a fallback template the worker switches to is charged at until a webhook tells the
/// portfolio's own, read as send-api and the broadcast planner read it.
pub fn deliver_config() -> Result<DeliverConfig, ConfigError> {
    let d = DeliverConfig::default();
    Ok(DeliverConfig {
        window_margin_secs: wa_edge::number("SEND_WINDOW_MARGIN_SECS", d.window_margin_secs)?,
        unconfirmed_grace_ms: wa_edge::number::<i64>("UNCONFIRMED_GRACE_SECS", 120)? * 1000,
        max_attempts: wa_edge::number("DELIVER_MAX_ATTEMPTS", d.max_attempts)?,
        default_limit: wa_edge::number("PACING_DEFAULT_MPS", d.default_limit)?,
        limits: wa_edge::number_mps(&wa_edge::optional("PACING_NUMBER_MPS", ""))?,
        retention_secs: wa_edge::number::<i64>("HISTORY_RETENTION_DAYS", 90)? * 86_400,
        default_tier: wa_edge::parsed(
            "MESSAGING_LIMIT_DEFAULT_TIER",
            d.default_tier,
            MessagingLimit::parse,
            MessagingLimit::NAMES,
        )?,
        ..d
    })
}
