//! The worker's settings from the environment (names in `infra/template.yaml`).

use std::collections::HashMap;

use wa_domain::outbound::deliver::DeliverConfig;
use wa_edge::ConfigError;

/// Reads `PACING_NUMBER_MPS`: `pnid=mps` pairs separated by commas (`106540352242922=1000,
/// 106540352242923=20`); empty means none.
pub fn number_limits(spec: &str) -> Result<HashMap<String, u32>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "PACING_NUMBER_MPS",
        reason,
    };
    let mut limits = HashMap::new();
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (pnid, mps) = pair
            .split_once('=')
            .ok_or_else(|| invalid(format!("`{pair}` is not pnid=mps")))?;
        let (pnid, mps) = (pnid.trim(), mps.trim());
        if pnid.is_empty() || !pnid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!("`{pnid}` is not a phone number id")));
        }
        let mps: u32 = mps
            .parse()
            .ok()
            .filter(|m| (1..=10_000).contains(m))
            .ok_or_else(|| invalid(format!("`{mps}` is not a rate between 1 and 10000")))?;
        limits.insert(pnid.to_owned(), mps);
    }
    Ok(limits)
}

/// The worker's [`DeliverConfig`] from the environment.
pub fn deliver_config() -> Result<DeliverConfig, ConfigError> {
    let d = DeliverConfig::default();
    Ok(DeliverConfig {
        window_margin_secs: wa_edge::number("SEND_WINDOW_MARGIN_SECS", d.window_margin_secs)?,
        unconfirmed_grace_ms: wa_edge::number::<i64>("UNCONFIRMED_GRACE_SECS", 120)? * 1000,
        max_attempts: wa_edge::number("DELIVER_MAX_ATTEMPTS", d.max_attempts)?,
        default_limit: wa_edge::number("PACING_DEFAULT_MPS", d.default_limit)?,
        limits: number_limits(&wa_edge::optional("PACING_NUMBER_MPS", ""))?,
        retention_secs: wa_edge::number::<i64>("HISTORY_RETENTION_DAYS", 90)? * 86_400,
        ..d
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_limits_are_read_and_checked() {
        let l = number_limits(" 1=1000, 2=20 ,").unwrap();
        assert_eq!(l.get("1"), Some(&1000));
        assert_eq!(l.get("2"), Some(&20));
        assert!(number_limits("").unwrap().is_empty());
        for bad in ["1", "a=5", "1=0", "1=x", "=5", "1=100000"] {
            assert!(number_limits(bad).is_err(), "{bad}");
        }
    }
}
