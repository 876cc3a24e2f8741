//! Key formats of the single table (see the crate docs).

use sha2::{Digest, Sha256};
use wa_domain::customer::CustomerKey;

use crate::attr::{Item, s};

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
pub(crate) const GSI1: &str = "gsi1";
pub(crate) const GSI1PK: &str = "gsi1pk";
pub(crate) const GSI1SK: &str = "gsi1sk";
pub(crate) const TTL: &str = "ttl";

pub(crate) const MSG_SK: &str = "MSG";
pub(crate) const WINDOW_SK: &str = "WINDOW";
pub(crate) const ALIAS_SK: &str = "ALIAS";
pub(crate) const EVENT_SK: &str = "EVENT";
pub(crate) const APIKEY_SK: &str = "APIKEY";
pub(crate) const META_SK: &str = "META";
pub(crate) const SEND_SK: &str = "SEND";
pub(crate) const IDEM_SK: &str = "IDEM";

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(crate) fn msg_pk(wamid: &str) -> String {
    format!("MSG#{wamid}")
}

/// The partition of one customer of one number: window and consent items, and the `gsi1`
/// partition of their history.
pub(crate) fn conv_pk(pnid: &str, customer: &CustomerKey) -> String {
    format!("CONV#{pnid}#{}", customer.as_storage())
}

/// Sorts history newest-first when read backwards; the wamid breaks ties.
pub(crate) fn history_sk(timestamp: i64, wamid: &str) -> String {
    format!("{timestamp:010}#{wamid}")
}

pub(crate) fn alias_pk(pnid: &str, wa_id: &str) -> String {
    format!("ALIAS#{pnid}#{wa_id}")
}

/// A link from a customer's partition to an earlier key of the same customer (the phone
/// before its BSUID was known, a BSUID that changed): their history is read with it.
pub(crate) fn previous_sk(earlier: &CustomerKey) -> String {
    format!("{PREVIOUS_PREFIX}{}", earlier.as_storage())
}

pub(crate) const PREVIOUS_PREFIX: &str = "PREVIOUS#";

pub(crate) fn consent_sk(scope: &str) -> String {
    format!("CONSENT#{scope}")
}

pub(crate) fn account_pk(waba_id: &str) -> String {
    format!("WABA#{waba_id}")
}

pub(crate) fn account_sk(key: &str) -> String {
    format!("ACCOUNT#{key}")
}

/// Account record attributes are stored under this prefix, away from keys and reserved words.
pub(crate) const ACCOUNT_ATTR_PREFIX: &str = "a_";

pub(crate) fn event_pk(hash: &str) -> String {
    format!("EVENT#{hash}")
}

pub(crate) fn events_gsi_pk(scope: &str) -> String {
    format!("EVENTS#{scope}")
}

pub(crate) fn apikey_pk(hash: &str) -> String {
    format!("APIKEY#{hash}")
}

pub(crate) fn send_pk(id: &str) -> String {
    format!("SEND#{id}")
}

pub(crate) fn idem_pk(key_hash: &str) -> String {
    format!("IDEM#{key_hash}")
}

pub(crate) fn quarantine_pk(hash: &str) -> String {
    format!("QUARANTINE#{hash}")
}

pub(crate) fn chunk_sk(n: usize) -> String {
    format!("CHUNK#{n:04}")
}

/// The primary key of an item.
pub(crate) fn key(pk: String, sk: &str) -> Item {
    Item::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}
