//! Meta's webhook signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>`.
//!
//! The HMAC is computed over the exact bytes Meta sent, never over re-serialised JSON (Meta
//! escapes non-ASCII as `\uXXXX`, so a re-encoded body would not match). Several secrets may be
//! configured at once so that the app secret can be rotated without dropping webhooks.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The name of the header Meta signs webhooks with (compare case-insensitively).
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Why a webhook's signature was refused. Every variant is answered with 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The request carried no `X-Hub-Signature-256` header.
    #[error("signature header missing")]
    Missing,
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("signature header malformed")]
    Malformed,
    /// No configured app secret produces this signature.
    #[error("signature does not match any app secret")]
    Mismatch,
}

/// Why the configured app secrets cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretsError {
    /// The configuration held no non-empty secret.
    #[error("no app secret configured")]
    Empty,
}

/// The app secrets a webhook may be signed with: the current one and, during a rotation, the
/// previous one(s).
pub struct AppSecrets {
    macs: Vec<HmacSha256>,
}

impl std::fmt::Debug for AppSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppSecrets({} configured, redacted)", self.macs.len())
    }
}

impl AppSecrets {
    /// Parses a comma-separated list of secrets (`WHATSAPP_APP_SECRET`); blanks are ignored.
    pub fn parse(list: &SecretString) -> Result<Self, SecretsError> {
        let macs: Vec<HmacSha256> = list
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|s| HmacSha256::new_from_slice(s.as_bytes()).ok())
            .collect();
        if macs.is_empty() {
            return Err(SecretsError::Empty);
        }
        Ok(Self { macs })
    }

    /// How many secrets are accepted.
    pub fn len(&self) -> usize {
        self.macs.len()
    }

    /// Always false: an `AppSecrets` holds at least one secret.
    pub fn is_empty(&self) -> bool {
        self.macs.is_empty()
    }

    /// Checks `header` (the value of `X-Hub-Signature-256`, if any) against `body`, the raw
    /// request bytes. Every configured secret is tried, each in constant time.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?.trim();
        let hex_sig = header
            .strip_prefix("sha256=")
            .ok_or(SignatureError::Malformed)?;
        let mut expected = [0u8; 32];
        hex::decode_to_slice(hex_sig, &mut expected).map_err(|_| SignatureError::Malformed)?;
        let mut matched = subtle::Choice::from(0u8);
        for mac in &self.macs {
            let mut mac = mac.clone();
            mac.update(body);
            let tag = mac.finalize().into_bytes();
            // Fold every comparison in, so the time taken does not reveal which secret matched.
            matched |= tag.as_slice().ct_eq(&expected);
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// The header value Meta would send for `body` signed with the first secret. For tests,
    /// the local stack's sandbox and the README's signing example.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.macs[0].clone();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// Signs `body` with one secret, as Meta does. A convenience over [`AppSecrets::sign`].
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC accepts keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secrets(s: &str) -> AppSecrets {
        AppSecrets::parse(&SecretString::from(s.to_owned())).unwrap()
    }

    #[test]
    fn raw_bytes_with_escapes_emoji_and_at_sign_are_hashed_as_sent() {
        // Meta sends non-ASCII as \u escapes; a re-serialised body would carry "í" instead.
        let body = br#"{"text":{"body":"Luc\u00eda G\u00f3mez @ \ud83d\ude00 caf\u00e9 \/ ok"}}"#;
        let s = secrets("test-app-secret");
        // Known answer computed independently: python3 hmac.new(b"test-app-secret", body, sha256).
        let signed = "sha256=f7a619c78dbc14987577b7afaf3d3fc350efbe7efee3b4ecc52e6a4d56b5c7b6";
        assert_eq!(s.sign(body), signed);
        assert_eq!(s.verify(Some(signed), body), Ok(()));
        let reserialised =
            serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(body).unwrap())
                .unwrap();
        assert_ne!(
            reserialised,
            body.to_vec(),
            "the fixture must change when re-serialised"
        );
        assert_eq!(
            s.verify(Some(signed), &reserialised),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_header_is_refused() {
        assert_eq!(
            secrets("k").verify(None, b"{}"),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn header_without_sha256_prefix_is_malformed() {
        let s = secrets("k");
        let sig = s.sign(b"{}");
        let bare = sig.trim_start_matches("sha256=");
        assert_eq!(s.verify(Some(bare), b"{}"), Err(SignatureError::Malformed));
        assert_eq!(
            s.verify(Some(&format!("sha1={bare}")), b"{}"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            s.verify(Some("sha256=zz"), b"{}"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            s.verify(Some("sha256="), b"{}"),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let s = secrets("k");
        let sig = s.sign(b"{}").to_uppercase().replace("SHA256=", "sha256=");
        assert_eq!(s.verify(Some(&sig), b"{}"), Ok(()));
    }

    #[test]
    fn any_configured_secret_verifies_during_rotation() {
        let both = secrets("new-secret, old-secret");
        assert_eq!(both.len(), 2);
        let old = secrets("old-secret");
        let new = secrets("new-secret");
        let body = b"{\"object\":\"whatsapp_business_account\"}";
        assert_eq!(both.verify(Some(&old.sign(body)), body), Ok(()));
        assert_eq!(both.verify(Some(&new.sign(body)), body), Ok(()));
        assert_eq!(
            both.verify(Some(&secrets("other").sign(body)), body),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn empty_secret_list_is_a_config_error() {
        assert!(matches!(
            AppSecrets::parse(&SecretString::from(" , ".to_owned())),
            Err(SecretsError::Empty)
        ));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let s = secrets("super-secret-value");
        assert!(!format!("{s:?}").contains("super-secret-value"));
    }

    #[test]
    fn free_sign_function_matches_app_secrets_sign() {
        assert_eq!(sign("k", b"abc"), secrets("k").sign(b"abc"));
    }

    proptest! {
        #[test]
        fn any_body_verifies_with_its_own_signature_and_fails_when_one_byte_changes(
            body in proptest::collection::vec(any::<u8>(), 1..512),
            flip in any::<usize>(),
        ) {
            let s = secrets("prop-secret");
            let sig = s.sign(&body);
            prop_assert_eq!(s.verify(Some(&sig), &body), Ok(()));
            let mut tampered = body.clone();
            let i = flip % tampered.len();
            tampered[i] ^= 0x01;
            prop_assert_eq!(s.verify(Some(&sig), &tampered), Err(SignatureError::Mismatch));
        }
    }
}
