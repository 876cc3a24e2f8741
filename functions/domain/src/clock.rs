//! Time as the domain sees it: unix seconds, formatted as RFC 3339 UTC at the edges.

use serde::{Deserialize, Deserializer};

/// The current time in unix seconds (the only place Ventana's functions read the clock; the
/// domain itself takes time as an argument).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Now, in unix milliseconds (0 if the system clock is before 1970).
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Formats unix seconds as RFC 3339 UTC (`2026-11-23T10:00:00Z`).
pub fn rfc3339(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| unix.to_string()),
        Err(_) => unix.to_string(),
    }
}

/// Parses Meta's timestamps, which arrive as strings (`"1749416383"`) on messages and statuses
/// and as integers on management fields. Anything else yields `None`.
pub fn parse_unix(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Serde helper: an optional unix timestamp given as a string or an integer. Values that are
/// neither become `None` instead of failing the whole payload.
pub fn lenient_unix<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(parse_unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(rfc3339(1_763_892_000), "2025-11-23T10:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn parses_string_and_number_timestamps() {
        assert_eq!(
            parse_unix(&serde_json::json!("1749416383")),
            Some(1_749_416_383)
        );
        assert_eq!(
            parse_unix(&serde_json::json!(1731705721)),
            Some(1_731_705_721)
        );
        assert_eq!(parse_unix(&serde_json::json!("x")), None);
        assert_eq!(parse_unix(&serde_json::json!(null)), None);
    }
}
