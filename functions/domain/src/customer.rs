//! Who a customer is. Since 2026 Meta identifies users by a business-scoped user id (BSUID,
//! `user_id`, e.g. `US.13491208655302741918`) and may withhold the phone number (`wa_id`).
//! Ventana keys a customer by BSUID when it knows one, and keeps the phone as an alias that
//! resolves to the same customer.

use serde::{Deserialize, Serialize};

/// The identifiers a webhook gave for a customer. At least one is present.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct CustomerRef {
    /// The business-scoped user id (BSUID), when Meta sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The phone number, digits only, when Meta sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
}

impl CustomerRef {
    /// Builds a reference from optional ids, dropping empty strings. `None` when both are absent.
    pub fn new(user_id: Option<&str>, wa_id: Option<&str>) -> Option<Self> {
        let user_id = user_id
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let wa_id = wa_id.map(normalize_phone).filter(|s| !s.is_empty());
        if user_id.is_none() && wa_id.is_none() {
            return None;
        }
        Some(Self { user_id, wa_id })
    }

    /// The key this reference resolves to on its own: the BSUID when present, else the phone.
    /// (A phone-only reference may still resolve to a BSUID through a stored alias.)
    pub fn direct_key(&self) -> CustomerKey {
        match (&self.user_id, &self.wa_id) {
            (Some(u), _) => CustomerKey::Bsuid(u.clone()),
            (None, Some(p)) => CustomerKey::Phone(p.clone()),
            (None, None) => CustomerKey::Phone(String::new()),
        }
    }
}

/// The stable key of a customer within one business phone number. Serialised as its storage
/// form ([`CustomerKey::as_storage`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CustomerKey {
    /// Keyed by BSUID (`user_id`).
    Bsuid(String),
    /// Keyed by phone digits, for customers Meta has given no BSUID for.
    Phone(String),
}

impl Serialize for CustomerKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_storage())
    }
}

impl<'de> Deserialize<'de> for CustomerKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CustomerKey::from_storage(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not a customer key: {s:?}")))
    }
}

impl CustomerKey {
    /// The key as stored: `u:<bsuid>` or `p:<digits>`.
    pub fn as_storage(&self) -> String {
        match self {
            CustomerKey::Bsuid(u) => format!("u:{u}"),
            CustomerKey::Phone(p) => format!("p:{p}"),
        }
    }

    /// Parses a stored key (`u:…` / `p:…`).
    pub fn from_storage(s: &str) -> Option<Self> {
        if let Some(u) = s.strip_prefix("u:") {
            Some(CustomerKey::Bsuid(u.to_owned()))
        } else {
            s.strip_prefix("p:")
                .map(|p| CustomerKey::Phone(p.to_owned()))
        }
    }

    /// The bare id (BSUID or digits).
    pub fn id(&self) -> &str {
        match self {
            CustomerKey::Bsuid(u) | CustomerKey::Phone(u) => u,
        }
    }

    /// Interprets what a client typed in a URL: a BSUID (`CC.` prefix, e.g. `US.1349…`) or a
    /// phone number (digits, with optional `+`, spaces, dashes or parentheses).
    pub fn parse_client(input: &str) -> Option<Self> {
        let input = input.trim();
        if is_bsuid(input) {
            return Some(CustomerKey::Bsuid(input.to_owned()));
        }
        let digits = normalize_phone(input);
        let allowed = input
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'));
        if allowed && (5..=20).contains(&digits.len()) {
            Some(CustomerKey::Phone(digits))
        } else {
            None
        }
    }
}

/// True for a business-scoped user id: two upper-case letters, a dot, then alphanumerics and
/// dots (a parent BSUID contains `ENT.`), at most 160 characters in all.
pub fn is_bsuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4
        && b.len() <= 160
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && b[2] == b'.'
        && b[3..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.')
}

/// Keeps the digits of a phone number (`+1 (650) 555-1234` → `16505551234`).
pub fn normalize_phone(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsuid_wins_over_phone_as_direct_key() {
        let r = CustomerRef::new(Some("US.134"), Some("16505551234")).unwrap();
        assert_eq!(r.direct_key(), CustomerKey::Bsuid("US.134".into()));
        let r = CustomerRef::new(None, Some("+1 650-555-1234")).unwrap();
        assert_eq!(r.direct_key(), CustomerKey::Phone("16505551234".into()));
    }

    #[test]
    fn empty_ids_make_no_reference() {
        assert_eq!(CustomerRef::new(Some(""), Some("")), None);
        assert_eq!(CustomerRef::new(None, None), None);
    }

    #[test]
    fn storage_form_round_trips() {
        for k in [
            CustomerKey::Bsuid("US.ENT.1".into()),
            CustomerKey::Phone("1555".into()),
        ] {
            assert_eq!(CustomerKey::from_storage(&k.as_storage()), Some(k));
        }
        assert_eq!(CustomerKey::from_storage("x:1"), None);
    }

    #[test]
    fn client_input_is_a_bsuid_or_a_phone() {
        assert_eq!(
            CustomerKey::parse_client("US.13491208655302741918"),
            Some(CustomerKey::Bsuid("US.13491208655302741918".into()))
        );
        assert_eq!(
            CustomerKey::parse_client("+1 (650) 555-1234"),
            Some(CustomerKey::Phone("16505551234".into()))
        );
        assert_eq!(CustomerKey::parse_client("abc"), None);
        assert_eq!(CustomerKey::parse_client("12"), None);
        assert_eq!(CustomerKey::parse_client("us.123"), None);
    }
}
