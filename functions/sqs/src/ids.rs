//! SQS message group and deduplication ids: at most 128 characters, each a letter, a digit
//! or ASCII punctuation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The longest group or deduplication id SQS accepts.
pub const MAX_ID_LEN: usize = 128;

/// Whether SQS accepts `s` as a `MessageGroupId` or `MessageDeduplicationId`.
pub fn is_valid_sqs_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

/// `s` itself if SQS accepts it as an id, otherwise its SHA-256 in hex (64 characters):
/// the same input always gives the same id.
pub fn sqs_id(s: &str) -> String {
    if is_valid_sqs_id(s) {
        s.to_owned()
    } else {
        hex::encode(Sha256::digest(s.as_bytes()))
    }
}

/// A deduplication id used once: SHA-256 (hex) over `seed`, the time, the process id and a
/// counter. For messages that must not be swallowed by an earlier copy's deduplication (a
/// dead-lettered or redriven message) while SDK retries of the same request, which reuse
/// it, still are.
pub fn fresh_dedup_id(seed: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = Sha256::new();
    h.update((seed.len() as u64).to_be_bytes());
    h.update(seed.as_bytes());
    h.update(nanos.to_be_bytes());
    h.update(std::process::id().to_be_bytes());
    h.update(n.to_be_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_are_kept_and_others_hashed_into_the_allowed_set() {
        assert_eq!(
            sqs_id("vnt.01JD5Q8Z3X4Y5Z6A7B8C9D0E1F"),
            "vnt.01JD5Q8Z3X4Y5Z6A7B8C9D0E1F"
        );
        assert_eq!(
            sqs_id("106540352242922:u:US.13491208655302741918"),
            "106540352242922:u:US.13491208655302741918"
        );
        for bad in ["", "has space", "é", &"x".repeat(129)] {
            let id = sqs_id(bad);
            assert!(is_valid_sqs_id(&id), "{bad:?} → {id}");
            assert_eq!(id.len(), 64);
            assert_eq!(id, sqs_id(bad), "stable");
        }
        assert!(is_valid_sqs_id(&"x".repeat(128)));
    }

    #[test]
    fn fresh_dedup_ids_differ_every_time() {
        let a = fresh_dedup_id("m1");
        let b = fresh_dedup_id("m1");
        assert_ne!(a, b);
        assert!(is_valid_sqs_id(&a));
    }
}
