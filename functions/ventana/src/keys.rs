//! API keys: `ventana api-key create` and `ventana api-key revoke`.
//!
//! A key is `vk_` and 32 random bytes in URL-safe base64 (no padding): 256 bits, so the fast
//! SHA-256 of `wa_domain::auth::hash_key` is all the store needs. Only that hash is stored,
//! with the key's scope; the key itself exists only in the creator's hands.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wa_domain::auth::hash_key;
use wa_domain::ports::{ApiKeyStore, KeyScope};
use wa_dynamodb::DynamoStore;

use crate::error::CliError;

/// The prefix of every key the CLI makes (so a leaked one is recognisable in a scan).
pub const KEY_PREFIX: &str = "vk_";

/// A new key: [`KEY_PREFIX`] and 32 bytes from the thread's CSPRNG, URL-safe base64.
pub fn generate_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The scope for `--number` values, or for `--any-number`: every number must be a phone
/// number id (digits); repeats are kept once, in the order given.
pub fn scope(numbers: &[String], any_number: bool) -> Result<KeyScope, CliError> {
    if any_number {
        return Ok(KeyScope::AnyNumber);
    }
    let mut ids: Vec<String> = Vec::new();
    for n in numbers {
        let n = n.trim();
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CliError::BadNumber(n.to_owned()));
        }
        if !ids.iter().any(|i| i == n) {
            ids.push(n.to_owned());
        }
    }
    if ids.is_empty() {
        return Err(CliError::BadNumber(String::new()));
    }
    Ok(KeyScope::Numbers(ids))
}

/// Creates a key with `scope` and `label`, stores its hash, and returns the key (to be shown
/// once).
pub async fn create(
    store: &DynamoStore,
    scope: &KeyScope,
    label: &str,
) -> Result<String, CliError> {
    let key = generate_key();
    store.put_key(&hash_key(&key), scope, label).await?;
    Ok(key)
}

/// Revokes `key`: it stops authorising requests (within about a second: reads are
/// eventually consistent). [`CliError::UnknownKey`] if the table has no such key.
pub async fn revoke(store: &DynamoStore, key: &str) -> Result<(), CliError> {
    let key = key.trim();
    if key.is_empty() {
        return Err(CliError::NoKey);
    }
    if store.revoke_key(&hash_key(key)).await? {
        Ok(())
    } else {
        Err(CliError::UnknownKey {
            table: store.table().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_url_safe_and_fresh() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        let body = a.strip_prefix("vk_").unwrap();
        assert_eq!(body.len(), 43, "32 bytes in unpadded base64");
        assert!(
            body.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
    }

    #[test]
    fn scopes_take_digits_only_once_each() {
        assert_eq!(scope(&[], true).unwrap(), KeyScope::AnyNumber);
        assert_eq!(
            scope(&["1".into(), " 2 ".into(), "1".into()], false).unwrap(),
            KeyScope::Numbers(vec!["1".into(), "2".into()])
        );
        for bad in ["+1555", "12a", ""] {
            assert!(matches!(
                scope(&[bad.into()], false),
                Err(CliError::BadNumber(_))
            ));
        }
        assert!(scope(&[], false).is_err());
    }
}
