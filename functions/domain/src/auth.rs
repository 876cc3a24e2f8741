//! API keys: clients send `Authorization: Bearer <key>`; Ventana stores only the key's
//! SHA-256 and the phone number ids it may act for.

use sha2::{Digest, Sha256};

use crate::ports::{ApiKeyStore, KeyScope, StoreError};

/// Why a request was not authorised.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No key, a malformed header, or a key that does not exist → 401.
    #[error("missing or unknown API key")]
    Unauthenticated,
    /// A valid key for other phone numbers → 403.
    #[error("API key not allowed for this phone number")]
    Forbidden,
    /// The key store could not be read → 500.
    #[error("key store unavailable")]
    Store(#[from] StoreError),
}

/// The stored form of a key: lowercase hex SHA-256. (Keys are 32 random bytes, so a fast hash
/// is enough; there is nothing to brute-force.)
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

/// Extracts the key from an `Authorization` header value (`Bearer <key>`, scheme
/// case-insensitive).
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, key) = h.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// The scope of the API key in an `Authorization: Bearer` header: `Unauthenticated` when
/// the header is missing or the key unknown (or revoked).
pub async fn authenticate<S: ApiKeyStore>(
    store: &S,
    authorization: Option<&str>,
) -> Result<KeyScope, AuthError> {
    let key = bearer(authorization).ok_or(AuthError::Unauthenticated)?;
    store
        .find_key(&hash_key(key))
        .await?
        .ok_or(AuthError::Unauthenticated)
}

/// Checks that the request's key exists and may act for `phone_number_id`.
pub async fn authorize<S: ApiKeyStore>(
    store: &S,
    authorization: Option<&str>,
    phone_number_id: &str,
) -> Result<(), AuthError> {
    let scope = authenticate(store, authorization).await?;
    if scope.allows(phone_number_id) {
        Ok(())
    } else {
        Err(AuthError::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryStore;

    #[test]
    fn bearer_is_parsed_case_insensitively() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[tokio::test]
    async fn keys_are_checked_by_hash_and_scope() {
        let store = InMemoryStore::default();
        store
            .put_key(
                &hash_key("key-a"),
                &KeyScope::Numbers(vec!["PN_A".into()]),
                "a",
            )
            .await
            .unwrap();
        store
            .put_key(&hash_key("dev"), &KeyScope::AnyNumber, "dev")
            .await
            .unwrap();
        assert!(
            authorize(&store, Some("Bearer key-a"), "PN_A")
                .await
                .is_ok()
        );
        assert!(matches!(
            authorize(&store, Some("Bearer key-a"), "PN_B").await,
            Err(AuthError::Forbidden)
        ));
        assert!(matches!(
            authorize(&store, Some("Bearer nope"), "PN_A").await,
            Err(AuthError::Unauthenticated)
        ));
        assert!(matches!(
            authorize(&store, None, "PN_A").await,
            Err(AuthError::Unauthenticated)
        ));
        assert!(authorize(&store, Some("Bearer dev"), "PN_B").await.is_ok());
    }
}
