//! Opaque history cursors: base64url (no padding) of the `LastEvaluatedKey` as a JSON object
//! of strings. A cursor is checked against the conversation it is used for.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wa_domain::ports::StoreError;

use crate::attr::Item;
use crate::keys::{GSI1PK, GSI1SK, PK, SK};

const KEY_NAMES: [&str; 4] = [PK, SK, GSI1PK, GSI1SK];

fn bad(what: &str) -> StoreError {
    StoreError::Corrupt(format!("invalid cursor: {what}"))
}

/// The cursor for a history page that ended at `key` (a `gsi1` key: table and index keys).
pub(crate) fn encode(key: &Item) -> Result<String, StoreError> {
    let mut map = BTreeMap::new();
    for name in KEY_NAMES {
        match key.get(name) {
            Some(AttributeValue::S(v)) => {
                map.insert(name, v.as_str());
            }
            _ => return Err(StoreError::Corrupt(format!("history key without `{name}`"))),
        }
    }
    let json = serde_json::to_vec(&map)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode cursor: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// The key of the last item of the page a cursor stands for, if that item is in one of the
/// history partitions `gsi1pks` (a customer's own, or an earlier key's).
pub(crate) fn decode(cursor: &str, gsi1pks: &[String]) -> Result<Item, StoreError> {
    let json = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| bad("not base64url"))?;
    let map: BTreeMap<String, String> =
        serde_json::from_slice(&json).map_err(|_| bad("not a key"))?;
    if map.len() != KEY_NAMES.len() || KEY_NAMES.iter().any(|k| !map.contains_key(*k)) {
        return Err(bad("wrong key attributes"));
    }
    if !map.get(GSI1PK).is_some_and(|p| gsi1pks.contains(p)) {
        return Err(bad("from another conversation"));
    }
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::s;

    fn key() -> Item {
        Item::from([
            (PK.into(), s("MSG#wamid.1")),
            (SK.into(), s("MSG")),
            (GSI1PK.into(), s("CONV#1#u:US.1")),
            (GSI1SK.into(), s("0000000001#wamid.1")),
        ])
    }

    #[test]
    fn a_cursor_round_trips() {
        let c = encode(&key()).unwrap();
        assert_eq!(decode(&c, &["CONV#1#u:US.1".into()]).unwrap(), key());
        let linked = ["CONV#1#u:US.9".into(), "CONV#1#u:US.1".into()];
        assert_eq!(decode(&c, &linked).unwrap(), key());
    }

    #[test]
    fn foreign_or_garbled_cursors_are_corrupt() {
        let c = encode(&key()).unwrap();
        for (cursor, pk) in [
            (c.as_str(), "CONV#1#u:US.2"),
            ("%%%", "CONV#1#u:US.1"),
            ("e30", "CONV#1#u:US.1"), // {}
            ("bm90IGpzb24", "CONV#1#u:US.1"),
        ] {
            assert!(matches!(
                decode(cursor, &[pk.to_owned()]),
                Err(StoreError::Corrupt(_))
            ));
        }
    }
}
