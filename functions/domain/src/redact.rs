//! Masking customer phone numbers for logs (docs/security.md §6).
//!
//! Logs may name a customer only masked: the first two digits (the country code, or its start)
//! and the last three stay, so that an operator can tell two customers apart and find one they
//! already know, but a log reader cannot recover the number. Texts that may carry a number
//! (error and dead-letter reasons) go through [`mask_digit_runs`].

use std::borrow::Cow;

/// The digits kept at the start of a masked number.
const KEPT_FRONT: usize = 2;
/// The digits kept at the end of a masked number.
const KEPT_BACK: usize = 3;
/// Runs of at least this many digits are taken for phone numbers by [`mask_digit_runs`]
/// (the shortest E.164 numbers in use have 7 digits after the country code).
pub const MIN_PHONE_DIGITS: usize = 7;

/// `phone` masked: `+16505551234` → `+16******234`. Only the digits are kept (a leading `+`
/// stays); numbers of fewer than 8 digits keep only their last two.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    let (front, back) = if n >= KEPT_FRONT + KEPT_BACK + 3 {
        (KEPT_FRONT, KEPT_BACK)
    } else {
        (0, n.min(2))
    };
    let mut out = String::with_capacity(n + 1);
    if phone.trim_start().starts_with('+') {
        out.push('+');
    }
    for (i, d) in digits.iter().enumerate() {
        out.push(if i < front || i >= n - back { *d } else { '*' });
    }
    out
}

/// `text` with every run of [`MIN_PHONE_DIGITS`] or more ASCII digits masked as by
/// [`mask_phone`]. Borrowed when there is none.
pub fn mask_digit_runs(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let runs: Vec<(usize, usize)> = {
        let mut runs = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if i - start >= MIN_PHONE_DIGITS {
                    runs.push((start, i));
                }
            } else {
                i += 1;
            }
        }
        runs
    };
    if runs.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in runs {
        out.push_str(&text[at..start]);
        out.push_str(&mask_phone(&text[start..end]));
        at = end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_the_country_code_start_and_the_last_three_digits() {
        assert_eq!(mask_phone("+16505551234"), "+16******234");
        assert_eq!(mask_phone("16505551234"), "16******234");
        assert_eq!(mask_phone("+1 650-555-1234"), "+16******234");
        assert_eq!(mask_phone("447700900123"), "44*******123");
        assert_eq!(mask_phone("1234567"), "*****67");
        assert_eq!(mask_phone("12"), "12");
        assert_eq!(mask_phone(""), "");
    }

    #[test]
    fn masks_every_long_digit_run_in_a_text() {
        assert_eq!(
            mask_digit_runs("invalid type: string \"16505551234\", code 131047 at 2026"),
            "invalid type: string \"16******234\", code 131047 at 2026"
        );
        assert!(matches!(
            mask_digit_runs("code 131047 (window closed)"),
            Cow::Borrowed(_)
        ));
        assert_eq!(mask_digit_runs("a1234567b"), "a*****67b");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// No 5 consecutive digits of a number of 8 or more digits survive masking, and the
        /// masked number has as many digits (or stars) as the number.
        #[test]
        fn a_masked_number_never_shows_five_consecutive_digits(
            phone in "\\+?[0-9]{8,15}",
            prefix in "[a-z :\"]{0,10}",
        ) {
            let text = format!("{prefix}{phone}");
            let masked = mask_digit_runs(&text);
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            for w in digits.as_bytes().windows(5) {
                let w = std::str::from_utf8(w).unwrap_or_default();
                prop_assert!(!masked.contains(w), "{} shows {}", masked, w);
            }
            prop_assert_eq!(mask_phone(&phone).trim_start_matches('+').len(), digits.len());
        }
    }
}
