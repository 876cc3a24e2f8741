//! The planner's configuration from the environment.

use wa_domain::broadcast::planner::PlannerConfig;
use wa_domain::model::MessagingLimit;
use wa_edge::ConfigError;

/// [`PlannerConfig`] from `HISTORY_RETENTION_DAYS`, `MESSAGING_LIMIT_DEFAULT_TIER`,
/// `BROADCAST_SETTLE_AFTER_SECS`, `BROADCAST_RECHECK_SECS`, `BROADCAST_STEP_BUDGET_SECS`,
/// `BROADCAST_QUEUE_AHEAD_SECS` and the deliver worker's rates, `PACING_DEFAULT_MPS` and
/// `PACING_NUMBER_MPS` (defaults otherwise).
pub fn planner_config() -> Result<PlannerConfig, ConfigError> {
    let d = PlannerConfig::default();
    Ok(PlannerConfig {
        retention_secs: wa_edge::number::<i64>("HISTORY_RETENTION_DAYS", 90)? * 86_400,
        settle_after_secs: wa_edge::number("BROADCAST_SETTLE_AFTER_SECS", d.settle_after_secs)?,
        recheck_secs: wa_edge::number("BROADCAST_RECHECK_SECS", d.recheck_secs)?,
        step_budget_ms: wa_edge::number::<i64>(
            "BROADCAST_STEP_BUDGET_SECS",
            d.step_budget_ms / 1000,
        )? * 1000,
        default_tier: wa_edge::parsed(
            "MESSAGING_LIMIT_DEFAULT_TIER",
            d.default_tier,
            MessagingLimit::parse,
            MessagingLimit::NAMES,
        )?,
        queue_ahead_secs: wa_edge::number("BROADCAST_QUEUE_AHEAD_SECS", d.queue_ahead_secs)?,
        default_mps: wa_edge::number("PACING_DEFAULT_MPS", d.default_mps)?,
        number_mps: wa_edge::number_mps(&wa_edge::optional("PACING_NUMBER_MPS", ""))?,
        ..d
    })
}
