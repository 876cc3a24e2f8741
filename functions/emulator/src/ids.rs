//! Identifiers shaped like the ones AWS generates (random, unique per process run).

use std::time::{SystemTime, UNIX_EPOCH};

/// A random UUID v4 string, the shape of Lambda request ids and API Gateway request ids.
pub(crate) fn uuid() -> String {
    let n: u128 = rand::random();
    // Set the version (4) and variant (10xx) bits like a real v4 UUID.
    let n = (n & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An X-Ray trace header value: `Root=1-<epoch hex>-<24 hex>;Parent=<16 hex>;Sampled=0`.
pub(crate) fn trace_id() -> String {
    let secs = epoch_millis() / 1000;
    let root: u128 = rand::random::<u128>() >> 32;
    let parent: u64 = rand::random();
    format!("Root=1-{secs:08x}-{root:024x};Parent={parent:016x};Sampled=0")
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_shaped_like_a_v4_uuid() {
        let id = uuid();
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert_ne!(uuid(), uuid());
    }

    #[test]
    fn trace_id_has_the_xray_shape() {
        let t = trace_id();
        assert!(t.starts_with("Root=1-"), "{t}");
        assert!(t.ends_with(";Sampled=0"), "{t}");
        let root = t.split(';').next().unwrap_or_default();
        assert_eq!(root.len(), "Root=1-".len() + 8 + 1 + 24);
    }
}
