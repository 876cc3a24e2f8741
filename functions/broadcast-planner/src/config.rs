//! The planner's configuration from the environment.

use wa_domain::broadcast::planner::PlannerConfig;
use wa_domain::model::MessagingLimit;
use wa_edge::ConfigError;

/// [`PlannerConfig`] from `HISTORY_RETENTION_DAYS`, `BROADCAST_DEFAULT_TIER`,
/// `BROADCAST_SETTLE_AFTER_SECS` and `BROADCAST_RECHECK_SECS` (defaults otherwise).
pub fn planner_config() -> Result<PlannerConfig, ConfigError> {
    let d = PlannerConfig::default();
    let tier = wa_edge::optional("BROADCAST_DEFAULT_TIER", "TIER_250");
    Ok(PlannerConfig {
        retention_secs: wa_edge::number::<i64>("HISTORY_RETENTION_DAYS", 90)? * 86_400,
        settle_after_secs: wa_edge::number("BROADCAST_SETTLE_AFTER_SECS", d.settle_after_secs)?,
        recheck_secs: wa_edge::number("BROADCAST_RECHECK_SECS", d.recheck_secs)?,
        default_tier: MessagingLimit::parse(&tier).ok_or_else(|| ConfigError::Invalid {
            name: "BROADCAST_DEFAULT_TIER",
            reason: "not a tier (TIER_50, TIER_250, TIER_1K, TIER_2K, TIER_10K, TIER_100K)".into(),
        })?,
        ..d
    })
}
