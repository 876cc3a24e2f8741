//! Splitting a webhook body into events.
//!
//! Meta batches up to 1,000 updates in one POST: every `entry[]`, every `changes[]`, and in
//! each change every element of `messages[]`, `statuses[]`, `errors[]`, `user_preferences[]`
//! (and of any other array of a `messages`-style value) becomes one [`InboundEvent`]. A change
//! with nothing to split — template, quality and account updates, and fields Ventana does not
//! know — becomes one event holding its whole `value`. Nothing is dropped.
//!
//! The parse borrows from the body and keeps items as raw JSON, so this is one pass over the
//! bytes plus a small key extraction per item. Bodies whose every change has items to split
//! (messages, statuses: nearly all the traffic) parse each `value` in that same pass; others
//! keep each `value` raw first, because a change with nothing to split is carried whole
//! (docs/benchmarks.md measures both against the floor of one HMAC plus one JSON pass).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::clock::parse_unix;
use crate::customer::CustomerRef;
use crate::event::{EventKind, InboundEvent, digest};
use crate::json::Object;

/// The largest webhook Meta sends: 3 MB. Larger bodies are refused with 413.
pub const MAX_WEBHOOK_BYTES: usize = 3 * 1024 * 1024;

/// Why a correctly signed body could not be split. A retry cannot fix either, so the body is
/// quarantined and acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The body is not JSON.
    #[error("webhook body is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// The body is not UTF-8, even where the split reads nothing (JSON is UTF-8; serde_json
    /// skips an unknown field's string without checking it).
    #[error("webhook body is not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// The body is JSON but not a WhatsApp webhook envelope.
    #[error("webhook body is not a WhatsApp webhook: {0}")]
    NotWebhook(&'static str),
}

/// The envelope, with each change's `value` as `V`: kept raw (`&RawValue`, then parsed on its
/// own) or parsed in the same pass ([`Value`]).
#[derive(Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
struct Envelope<'a, V> {
    #[serde(borrow, default)]
    object: Option<Cow<'a, str>>,
    #[serde(borrow)]
    entry: Option<Vec<Object<Entry<'a, V>>>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
struct Entry<'a, V> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient_unix")]
    time: Option<i64>,
    #[serde(borrow, default = "Vec::new")]
    changes: Vec<Object<Change<'a, V>>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
struct Change<'a, V> {
    #[serde(borrow, default)]
    field: Option<Cow<'a, str>>,
    value: Option<V>,
}

/// The parts of a `value` object that are split. Every array is kept raw.
#[derive(Deserialize, Default)]
struct Value<'a> {
    #[serde(borrow, default)]
    metadata: Option<Object<Metadata<'a>>>,
    #[serde(borrow, default)]
    contacts: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    statuses: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    errors: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    user_preferences: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    calls: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    message_echoes: Vec<&'a RawValue>,
}

impl Value<'_> {
    /// How many events the arrays split into (each element is one event).
    fn items(&self) -> usize {
        self.messages.len()
            + self.statuses.len()
            + self.errors.len()
            + self.user_preferences.len()
            + self.calls.len()
            + self.message_echoes.len()
    }
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    phone_number_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    display_phone_number: Option<Cow<'a, str>>,
}

/// The ids of an item that its natural key and customer are made of.
#[derive(Deserialize, Default)]
struct ItemKeys<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    from: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    from_user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    recipient_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    recipient_user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    recipient_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    wa_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient_unix")]
    timestamp: Option<i64>,
}

#[derive(Deserialize, Default)]
struct ContactKeys<'a> {
    #[serde(borrow, default)]
    wa_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
}

/// Splits a webhook body into events, in payload order.
///
/// Takes any JSON text (RFC 8259: UTF-8, checked for the whole body even where nothing is
/// read, as serde_json does not check a string it skips). What serde_json cannot represent in
/// a part the split never reads (a lone surrogate escape, a number such as `1e999`) is handed
/// on as written in the item's raw text; the inbound processor keeps an item it cannot read.
pub fn split(body: &[u8]) -> Result<Vec<InboundEvent>, PayloadError> {
    // The UTF-8 of the whole body at once, which spares checking it string by string.
    let body = std::str::from_utf8(body).map_err(PayloadError::NotUtf8)?;
    match split_in_one_pass(body) {
        Some(events) => Ok(events),
        None => split_values_apart(body),
    }
}

/// The common case in one pass over the body: each `value` parsed with the envelope. `None`
/// (the caller then takes [`split_values_apart`], which gives every answer its exact shape)
/// when the body is not a well-formed webhook, when a `value` does not parse as
/// [`Value`], or when a change has nothing to split (its event holds the raw `value`, not kept
/// here).
fn split_in_one_pass(body: &str) -> Option<Vec<InboundEvent>> {
    let Object(envelope): Object<Envelope<'_, Object<Value<'_>>>> =
        serde_json::from_str(body).ok()?;
    if envelope
        .object
        .as_deref()
        .is_some_and(|o| o != "whatsapp_business_account")
    {
        return None;
    }
    let entries = envelope.entry?;
    let mut total = 0;
    for change in entries.iter().flat_map(|e| &e.changes) {
        if let Some(value) = &change.value {
            match value.items() {
                0 => return None,
                n => total += n,
            }
        }
    }
    let mut events = Vec::with_capacity(total);
    for entry in &entries {
        for change in &entry.changes {
            if let Some(value) = &change.value {
                split_items(&Scope::new(entry, change, value), value, &mut events);
            }
        }
    }
    Some(events)
}

/// Every body: each `value` kept raw by the envelope's parse, then parsed on its own; one that
/// is not an object of the expected shapes, or has nothing to split, is one whole-value event.
fn split_values_apart(body: &str) -> Result<Vec<InboundEvent>, PayloadError> {
    let Object(envelope): Object<Envelope<'_, &RawValue>> =
        serde_json::from_str(body).map_err(PayloadError::NotJson)?;
    if let Some(object) = &envelope.object
        && object != "whatsapp_business_account"
    {
        return Err(PayloadError::NotWebhook(
            "object is not whatsapp_business_account",
        ));
    }
    let entries = envelope
        .entry
        .ok_or(PayloadError::NotWebhook("no entry array"))?;
    let mut events = Vec::new();
    for entry in &entries {
        for change in &entry.changes {
            let Some(raw_value) = change.value else {
                continue;
            };
            // A value that is not an object (or has unexpected shapes) is kept whole.
            let value: Object<Value<'_>> =
                serde_json::from_str(raw_value.get()).unwrap_or_default();
            let scope = Scope::new(entry, change, &value);
            if value.items() == 0 {
                let key = generic_key(EventKind::Field, &scope, raw_value);
                events.push(event(EventKind::Field, &scope, None, None, raw_value, key));
            } else {
                split_items(&scope, &value, &mut events);
            }
        }
    }
    Ok(events)
}

struct Scope<'s> {
    field: &'s str,
    waba_id: Option<&'s str>,
    phone_number_id: Option<&'s str>,
    display_phone_number: Option<&'s str>,
    entry_time: Option<i64>,
}

impl<'s> Scope<'s> {
    fn new<V>(entry: &'s Entry<'_, V>, change: &'s Change<'_, V>, value: &'s Value<'_>) -> Self {
        let metadata = value.metadata.as_ref();
        Scope {
            field: change.field.as_deref().unwrap_or("unknown"),
            waba_id: entry.id.as_deref(),
            phone_number_id: metadata.and_then(|m| m.phone_number_id.as_deref()),
            display_phone_number: metadata.and_then(|m| m.display_phone_number.as_deref()),
            entry_time: entry.time,
        }
    }
}

/// Pushes one event per element of the value's arrays, in the order messages, statuses,
/// user preferences, errors, calls, message echoes.
fn split_items(scope: &Scope<'_>, value: &Value<'_>, out: &mut Vec<InboundEvent>) {
    // Only messages and preferences are matched with a contact.
    let contacts: Vec<ContactKeys<'_>> =
        if value.messages.is_empty() && value.user_preferences.is_empty() {
            Vec::new()
        } else {
            value
                .contacts
                .iter()
                .map(|c| {
                    serde_json::from_str::<Object<_>>(c.get())
                        .map(|Object(keys)| keys)
                        .unwrap_or_default()
                })
                .collect()
        };
    let contacts = Contacts::new(&contacts, &value.contacts);

    for raw in &value.messages {
        let k: Object<ItemKeys<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
        let contact = contacts.find(k.from_user_id.as_deref(), k.from.as_deref());
        let user_id = k
            .from_user_id
            .as_deref()
            .or(contact.and_then(|(c, _)| c.user_id.as_deref()));
        let wa_id = k
            .from
            .as_deref()
            .or(contact.and_then(|(c, _)| c.wa_id.as_deref()));
        let key = match k.id.as_deref() {
            Some(id) => concat_key(&["message:", id]),
            None => generic_key(EventKind::Message, scope, raw),
        };
        out.push(event(
            EventKind::Message,
            scope,
            CustomerRef::new(user_id, wa_id),
            contact.map(|(_, r)| r),
            raw,
            key,
        ));
    }
    for raw in &value.statuses {
        let k: Object<ItemKeys<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
        let customer = if k.recipient_type.as_deref() == Some("group") {
            None
        } else {
            CustomerRef::new(k.recipient_user_id.as_deref(), k.recipient_id.as_deref())
        };
        let key = match (k.id.as_deref(), k.status.as_deref()) {
            (Some(id), Some(status)) => {
                let mut key = concat_key(&["status:", id, ":", status, ":"]);
                // Writing to a String cannot fail.
                let _ = write!(key, "{}", k.timestamp.unwrap_or_default());
                key
            }
            _ => generic_key(EventKind::Status, scope, raw),
        };
        out.push(event(EventKind::Status, scope, customer, None, raw, key));
    }
    for raw in &value.user_preferences {
        let k: Object<ItemKeys<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
        let contact = contacts.find(k.user_id.as_deref(), k.wa_id.as_deref());
        let user_id = k
            .user_id
            .as_deref()
            .or(contact.and_then(|(c, _)| c.user_id.as_deref()));
        let wa_id = k
            .wa_id
            .as_deref()
            .or(contact.and_then(|(c, _)| c.wa_id.as_deref()));
        let key = generic_key(EventKind::Preference, scope, raw);
        out.push(event(
            EventKind::Preference,
            scope,
            CustomerRef::new(user_id, wa_id),
            contact.map(|(_, r)| r),
            raw,
            key,
        ));
    }
    for raw in &value.errors {
        let key = generic_key(EventKind::Error, scope, raw);
        out.push(event(EventKind::Error, scope, None, None, raw, key));
    }
    for raw in value.calls.iter().chain(&value.message_echoes) {
        let key = generic_key(EventKind::Item, scope, raw);
        out.push(event(EventKind::Item, scope, None, None, raw, key));
    }
}

/// Past this many contacts, they are looked up through hash maps instead of a linear search
/// (which would make a 3 MB batch quadratic).
const CONTACTS_SCANNED: usize = 16;

/// A change's `contacts[]`, to find the one of a customer.
struct Contacts<'v, 'a> {
    keys: &'v [ContactKeys<'a>],
    raws: &'v [&'a RawValue],
    /// The first contact with each `user_id` / `wa_id`, for long lists only.
    by_user: HashMap<&'v str, usize>,
    by_phone: HashMap<&'v str, usize>,
}

impl<'v, 'a> Contacts<'v, 'a> {
    fn new(keys: &'v [ContactKeys<'a>], raws: &'v [&'a RawValue]) -> Self {
        let mut by_user = HashMap::new();
        let mut by_phone = HashMap::new();
        if keys.len() > CONTACTS_SCANNED {
            by_user.reserve(keys.len());
            by_phone.reserve(keys.len());
            for (i, c) in keys.iter().enumerate() {
                if let Some(u) = c.user_id.as_deref() {
                    by_user.entry(u).or_insert(i);
                }
                if let Some(p) = c.wa_id.as_deref() {
                    by_phone.entry(p).or_insert(i);
                }
            }
        }
        Self {
            keys,
            raws,
            by_user,
            by_phone,
        }
    }

    /// The contact element for a customer: matched by BSUID, then by phone; a lone contact is
    /// taken as the sender's (system messages carry none).
    fn find(
        &self,
        user_id: Option<&str>,
        wa_id: Option<&str>,
    ) -> Option<(&'v ContactKeys<'a>, &'a RawValue)> {
        let keys = self.keys;
        let indexed = keys.len() > CONTACTS_SCANNED;
        let by_user = || {
            let u = user_id?;
            if indexed {
                self.by_user.get(u).copied()
            } else {
                keys.iter().position(|c| c.user_id.as_deref() == Some(u))
            }
        };
        let by_phone = || {
            let p = wa_id?;
            if indexed {
                self.by_phone.get(p).copied()
            } else {
                keys.iter().position(|c| c.wa_id.as_deref() == Some(p))
            }
        };
        let lone = || (keys.len() == 1 && user_id.is_none() && wa_id.is_none()).then_some(0);
        let i = by_user().or_else(by_phone).or_else(lone)?;
        Some((&keys[i], self.raws[i]))
    }
}

/// `parts` joined, in a string allocated once.
fn concat_key(parts: &[&str]) -> String {
    let mut key = String::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 20);
    for p in parts {
        key.push_str(p);
    }
    key
}

fn generic_key(kind: EventKind, s: &Scope<'_>, raw: &RawValue) -> String {
    format!(
        "{}:{}:{}:{}:{}:{}",
        kind.as_str(),
        s.field,
        s.waba_id.unwrap_or("-"),
        s.phone_number_id.unwrap_or("-"),
        s.entry_time.unwrap_or_default(),
        digest(raw.get().as_bytes())
    )
}

fn event(
    kind: EventKind,
    s: &Scope<'_>,
    customer: Option<CustomerRef>,
    contact: Option<&RawValue>,
    item: &RawValue,
    natural_key: String,
) -> InboundEvent {
    InboundEvent {
        kind,
        field: s.field.to_owned(),
        waba_id: s.waba_id.map(str::to_owned),
        phone_number_id: s.phone_number_id.map(str::to_owned),
        display_phone_number: s.display_phone_number.map(str::to_owned),
        entry_time: s.entry_time,
        customer,
        contact: contact.map(|c| c.to_owned()),
        item: item.to_owned(),
        natural_key,
    }
}

/// [`crate::clock::lenient_unix`] without its allocation for the usual string or integer:
/// scalars are read in place, anything else goes through `serde_json::Value` as there, so the
/// result (and what makes the item fail to parse) is the same.
fn lenient_unix<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Lenient;

    impl<'de> Visitor<'de> for Lenient {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a unix timestamp")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(i64::try_from(v).ok())
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.trim().parse().ok())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
            Ok(parse_unix(&v))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
            Ok(parse_unix(&v))
        }
    }

    d.deserialize_option(Lenient)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"WABA1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"PN1"},"contacts":[{"profile":{"name":"Sheena"},"wa_id":"16505551234","user_id":"US.1349"}],"messages":[{"from":"16505551234","id":"wamid.A","timestamp":"1749416383","type":"text","text":{"body":"hi"}}]}}]}]}"#;

    #[test]
    fn a_text_webhook_yields_one_message_event_with_its_customer() {
        let events = split(TEXT.as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.kind, EventKind::Message);
        assert_eq!(e.natural_key(), "message:wamid.A");
        assert_eq!(e.phone_number_id.as_deref(), Some("PN1"));
        assert_eq!(e.waba_id.as_deref(), Some("WABA1"));
        assert_eq!(
            e.customer,
            CustomerRef::new(Some("US.1349"), Some("16505551234"))
        );
        assert!(e.contact.as_ref().unwrap().get().contains("Sheena"));
        assert!(e.item.get().contains(r#""body":"hi""#));
    }

    #[test]
    fn not_json_and_not_a_webhook_are_told_apart() {
        assert!(matches!(split(b"not json"), Err(PayloadError::NotJson(_))));
        assert!(matches!(split(b"[1,2]"), Err(PayloadError::NotJson(_))));
        assert!(matches!(
            split(br#"{"object":"page","entry":[]}"#),
            Err(PayloadError::NotWebhook(_))
        ));
        assert!(matches!(
            split(br#"{"hello":1}"#),
            Err(PayloadError::NotWebhook(_))
        ));
        assert!(matches!(
            split(br#"{"object":"whatsapp_business_account","entry":{}}"#),
            Err(PayloadError::NotJson(_))
        ));
    }

    /// Found by the mutation property test in CI: a byte that is not UTF-8 inside a field the
    /// split skips (serde_json skips such a string unchecked) made the split accept a body that
    /// no JSON parser accepts.
    #[test]
    fn a_body_that_is_not_utf8_is_refused_even_where_nothing_is_read() {
        let mut body =
            br#"{"object":"whatsapp_business_account","extra":"ab","entry":[]}"#.to_vec();
        let at = body.iter().position(|b| *b == b'b').unwrap();
        body[at] = 0x80;
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
        assert!(matches!(split(&body), Err(PayloadError::NotUtf8(_))));
    }

    /// Found by the mutation property test: serde_json's `Value` refuses a lone surrogate
    /// escape and a number out of `f64` range, which are JSON all the same and which serde_json
    /// does not judge in a string it skips or keeps raw. The split hands them on as written, in
    /// the item's raw text, like any other part it does not read.
    #[test]
    fn what_serde_json_cannot_represent_is_handed_on_as_written() {
        for odd in [r#""\ud83d""#, r#""\ude00x""#, "1e999", "-1E+400"] {
            let body = format!(
                r#"{{"object":"whatsapp_business_account","x":{odd},"entry":[{{"changes":[{{"field":"messages","value":{{"messages":[{{"id":"w","y":{odd}}},{{"id":"v"}}]}}}}]}}]}}"#
            );
            assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());
            let events = split(body.as_bytes()).unwrap();
            assert_eq!(events.len(), 2, "{body}");
            assert!(events[0].item.get().contains(odd));
        }
    }

    #[test]
    fn an_empty_entry_list_is_a_webhook_with_no_events() {
        assert_eq!(
            split(br#"{"object":"whatsapp_business_account","entry":[]}"#)
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn unknown_fields_are_kept_whole() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","time":1700000000,"changes":[{"field":"brand_new_field","value":{"anything":[1,2,3]}}]}]}"#;
        let events = split(body).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Field);
        assert_eq!(events[0].field, "brand_new_field");
        assert_eq!(events[0].item.get(), r#"{"anything":[1,2,3]}"#);
        assert_eq!(events[0].entry_time, Some(1_700_000_000));
    }

    #[test]
    fn statuses_are_keyed_by_wamid_status_and_time() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"PN"},"statuses":[{"id":"wamid.S","status":"delivered","timestamp":"1750030073","recipient_id":"16505551234","recipient_user_id":"US.9"},{"id":"wamid.S","status":"read","timestamp":"1750030080","recipient_id":"16505551234"}]}}]}]}"#;
        let events = split(body).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].natural_key(),
            "status:wamid.S:delivered:1750030073"
        );
        assert_eq!(events[1].natural_key(), "status:wamid.S:read:1750030080");
        assert_eq!(
            events[0].customer,
            CustomerRef::new(Some("US.9"), Some("16505551234"))
        );
    }

    #[test]
    fn a_batch_of_a_thousand_updates_yields_a_thousand_events_with_distinct_keys() {
        let mut msgs = Vec::new();
        for i in 0..1000 {
            msgs.push(format!(r#"{{"from":"1555000{i:04}","id":"wamid.{i}","timestamp":"1749416383","type":"text","text":{{"body":"m{i}"}}}}"#));
        }
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"W","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"PN"}},"messages":[{}]}}}}]}}]}}"#,
            msgs.join(",")
        );
        let events = split(body.as_bytes()).unwrap();
        assert_eq!(events.len(), 1000);
        let keys: std::collections::HashSet<_> = events.iter().map(|e| e.dedup_id()).collect();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn the_same_body_always_yields_the_same_keys() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","time":5,"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"PN"},"errors":[{"code":130429,"title":"Rate limit hit"}]}}]}]}"#;
        let a: Vec<String> = split(body).unwrap().iter().map(|e| e.dedup_id()).collect();
        let b: Vec<String> = split(body).unwrap().iter().map(|e| e.dedup_id()).collect();
        assert_eq!(a, b);
        assert_eq!(split(body).unwrap()[0].kind, EventKind::Error);
    }

    #[test]
    fn a_message_without_phone_uses_the_bsuid() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"PN"},"contacts":[{"user_id":"US.77","profile":{"username":"@x"}}],"messages":[{"from_user_id":"US.77","id":"wamid.B","timestamp":"1","type":"text","text":{"body":"x"}}]}}]}]}"#;
        let e = &split(body).unwrap()[0];
        assert_eq!(e.customer, CustomerRef::new(Some("US.77"), None));
        assert!(e.contact.is_some());
    }

    /// The events of a body as JSON, to compare two splits field by field.
    fn as_json(events: &[InboundEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect()
    }

    /// The one-pass split, when it takes a body, gives exactly what the general one gives.
    fn same_both_ways(body: &[u8]) -> Option<usize> {
        let public = split(body);
        let Ok(text) = std::str::from_utf8(body) else {
            assert!(public.is_err(), "split takes a body that is not UTF-8");
            return None;
        };
        let general = split_values_apart(text);
        match (&general, &public) {
            (Ok(g), Ok(p)) => assert_eq!(as_json(g), as_json(p)),
            (Err(g), Err(p)) => assert_eq!(g.to_string(), p.to_string()),
            _ => panic!("split and split_values_apart disagree on {body:?}"),
        }
        let one_pass = split_in_one_pass(text)?;
        assert_eq!(
            as_json(general.as_deref().unwrap()),
            as_json(&one_pass),
            "{}",
            String::from_utf8_lossy(body)
        );
        Some(one_pass.len())
    }

    #[test]
    fn every_fixture_splits_the_same_in_one_pass() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/pywa-updates"
        );
        let mut taken = 0;
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let examples: std::collections::BTreeMap<String, serde_json::Value> =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for payload in examples.values() {
                seen += 1;
                let compact = serde_json::to_vec(payload).unwrap();
                let pretty = serde_json::to_vec_pretty(payload).unwrap();
                taken += usize::from(same_both_ways(&compact).is_some());
                same_both_ways(&pretty);
            }
        }
        assert!(seen > 50, "only {seen} fixture examples");
        assert!(taken > seen / 2, "one pass took only {taken} of {seen}");
    }

    #[test]
    fn odd_bodies_split_the_same_in_one_pass_or_are_left_to_the_general_split() {
        let bodies: &[&str] = &[
            TEXT,
            "not json",
            "[1,2]",
            r#"{"object":"page","entry":[]}"#,
            r#"{"hello":1}"#,
            r#"{"object":"whatsapp_business_account","entry":{}}"#,
            r#"{"object":"whatsapp_business_account","entry":[]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages"}]}]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":null}]}]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"id":"w"}]}}]}]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":5}}]}]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":[null,[],[{"id":"w"}]]}]}]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":"text"}]}]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"id":"a"}],"messages":[{"id":"b"}]}}]}]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"id":"W","time":"17","changes":[{"field":"x","value":{"statuses":[{"id":"s","status":"read"}]}},{"field":"y","value":{"a":1}}]}]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"value":{"statuses":[{"id":"s","status":"read","timestamp":1.5},{"id":"s","status":"read","timestamp":-3},{"id":"s","status":"read","timestamp":18446744073709551615},{"id":"s","status":"read","timestamp":[1]},{"id":"s","status":"read","timestamp":{"a":"1"}},{"id":"s","status":"read","timestamp":" 12 "},{"id":"s","status":"read","timestamp":true},{"id":"s","status":"read","timestamp":null},{"id":"s","status":"read","timestamp":"\ud800"},{"id":"s","status":"read","timestamp":{"a":"\ud800"}},{"id":"s","status":"read","timestamp":1e400}]}}]}]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"value":{"statuses":[{"id":"s\u0041","status":"read","recipient_type":"group","recipient_id":"1"}],"errors":[{"code":1}],"calls":[{}],"message_echoes":[{}],"user_preferences":[{"wa_id":"1","value":"stop"}],"contacts":[{"wa_id":"1"}]}}]}]}"#,
            r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"value":{"messages":[{"id":"m"}]}}]}]} trailing"#,
        ];
        for body in bodies {
            same_both_ways(body.as_bytes());
        }
        assert_eq!(same_both_ways(TEXT.as_bytes()), Some(1));
    }

    #[test]
    fn long_contact_lists_match_like_short_ones() {
        // Contacts 0..40; the phone of 3 repeats at 30 (another BSUID): the first one wins.
        let mut contacts: Vec<String> = (0..40)
            .map(|i| format!(r#"{{"wa_id":"1555{i:04}","user_id":"US.{i}"}}"#))
            .collect();
        contacts[30] = r#"{"wa_id":"15550003","user_id":"US.thirty"}"#.to_owned();
        let messages = [
            r#"{"id":"a","from":"15550003"}"#,
            r#"{"id":"b","from_user_id":"US.thirty","from":"15550003"}"#,
            r#"{"id":"c","from":"15550039"}"#,
            r#"{"id":"d","from":"19990000"}"#,
            r#"{"id":"e"}"#,
        ];
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"W","changes":[{{"field":"messages","value":{{"contacts":[{}],"messages":[{}]}}}}]}}]}}"#,
            contacts.join(","),
            messages.join(",")
        );
        assert_eq!(same_both_ways(body.as_bytes()), Some(5));
        let events = split(body.as_bytes()).unwrap();
        let contact = |i: usize| events[i].contact.as_ref().map(|c| c.get().to_owned());
        assert_eq!(
            contact(0).unwrap(),
            r#"{"wa_id":"15550003","user_id":"US.3"}"#
        );
        assert_eq!(
            events[0].customer,
            CustomerRef::new(Some("US.3"), Some("15550003"))
        );
        assert_eq!(
            contact(1).unwrap(),
            r#"{"wa_id":"15550003","user_id":"US.thirty"}"#
        );
        assert_eq!(
            contact(2).unwrap(),
            r#"{"wa_id":"15550039","user_id":"US.39"}"#
        );
        assert_eq!(contact(3), None);
        assert_eq!(contact(4), None, "a lone contact only when there is one");
        // The same with a short list (contacts 31.. gone): the linear search agrees.
        let short = body.replace(&contacts[31..].join(","), r#"{"wa_id":"0"}"#);
        let short_events = split(short.as_bytes()).unwrap();
        for i in [0, 1, 3, 4] {
            assert_eq!(
                short_events[i].contact.as_ref().map(|c| c.get().to_owned()),
                contact(i)
            );
        }
    }
}

#[cfg(test)]
#[path = "webhook_props.rs"]
mod props;
