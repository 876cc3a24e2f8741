//! The webhook verification handshake: Meta sends
//! `GET /webhook?hub.mode=subscribe&hub.verify_token=<token>&hub.challenge=<challenge>` and
//! expects the challenge back, exactly, when the token is the one configured.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The challenge to echo if the handshake is valid, `None` otherwise (answered with 403).
///
/// The token is compared in constant time (over SHA-256 digests, so not even its length
/// leaks). The challenge is limited to 1,024 printable ASCII characters: Meta sends digits,
/// and anything else must not be reflected to a browser.
pub fn accept<'a>(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&'a str>,
    expected: &SecretString,
) -> Option<&'a str> {
    if mode != Some("subscribe") {
        return None;
    }
    let given = Sha256::digest(token?.as_bytes());
    let wanted = Sha256::digest(expected.expose_secret().as_bytes());
    if !bool::from(given.as_slice().ct_eq(wanted.as_slice())) {
        return None;
    }
    let challenge = challenge?;
    let printable = challenge.bytes().all(|b| b.is_ascii_graphic());
    (!challenge.is_empty() && challenge.len() <= 1024 && printable).then_some(challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> SecretString {
        SecretString::from("dev-verify-token".to_owned())
    }

    #[test]
    fn valid_handshake_echoes_the_challenge_exactly() {
        assert_eq!(
            accept(
                Some("subscribe"),
                Some("dev-verify-token"),
                Some("1158201444"),
                &token()
            ),
            Some("1158201444")
        );
    }

    #[test]
    fn wrong_or_missing_token_or_mode_is_refused() {
        assert_eq!(
            accept(Some("subscribe"), Some("nope"), Some("1"), &token()),
            None
        );
        assert_eq!(accept(Some("subscribe"), None, Some("1"), &token()), None);
        assert_eq!(
            accept(
                Some("unsubscribe"),
                Some("dev-verify-token"),
                Some("1"),
                &token()
            ),
            None
        );
        assert_eq!(
            accept(None, Some("dev-verify-token"), Some("1"), &token()),
            None
        );
        assert_eq!(
            accept(
                Some("subscribe"),
                Some("dev-verify-token "),
                Some("1"),
                &token()
            ),
            None
        );
    }

    #[test]
    fn missing_or_unsafe_challenge_is_refused() {
        assert_eq!(
            accept(Some("subscribe"), Some("dev-verify-token"), None, &token()),
            None
        );
        assert_eq!(
            accept(
                Some("subscribe"),
                Some("dev-verify-token"),
                Some(""),
                &token()
            ),
            None
        );
        assert_eq!(
            accept(
                Some("subscribe"),
                Some("dev-verify-token"),
                Some("<script>x</script> "),
                &token()
            ),
            None
        );
        let long = "9".repeat(1025);
        assert_eq!(
            accept(
                Some("subscribe"),
                Some("dev-verify-token"),
                Some(&long),
                &token()
            ),
            None
        );
    }
}
