//! Splitting a webhook body into events.
//!
//! Meta batches up to 1,000 updates in one POST: every `entry[]`, every `changes[]`, and in
//! each change every element of `messages[]`, `statuses[]`, `errors[]`, `user_preferences[]`
//! (and of any other array of a `messages`-style value) becomes one [`InboundEvent`]. A change
//! with nothing to split — template, quality and account updates, and fields Ventana does not
//! know — becomes one event holding its whole `value`. Nothing is dropped.
//!
//! The parse borrows from the body and keeps items as raw JSON, so this is one pass over the
//! bytes plus a small key extraction per item.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::clock::lenient_unix;
use crate::customer::CustomerRef;
use crate::event::{EventKind, InboundEvent, digest};

/// The largest webhook Meta sends: 3 MB. Larger bodies are refused with 413.
pub const MAX_WEBHOOK_BYTES: usize = 3 * 1024 * 1024;

/// Why a correctly signed body could not be split. A retry cannot fix either, so the body is
/// quarantined and acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The body is not JSON (or not UTF-8).
    #[error("webhook body is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// The body is JSON but not a WhatsApp webhook envelope.
    #[error("webhook body is not a WhatsApp webhook: {0}")]
    NotWebhook(&'static str),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    object: Option<Cow<'a, str>>,
    #[serde(borrow)]
    entry: Option<Vec<Entry<'a>>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient_unix")]
    time: Option<i64>,
    #[serde(borrow, default)]
    changes: Vec<Change<'a>>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow, default)]
    field: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
}

/// The parts of a `value` object that are split. Every array is kept raw.
#[derive(Deserialize, Default)]
struct Value<'a> {
    #[serde(borrow, default)]
    metadata: Option<Metadata<'a>>,
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
pub fn split(body: &[u8]) -> Result<Vec<InboundEvent>, PayloadError> {
    let envelope: Envelope<'_> = serde_json::from_slice(body).map_err(PayloadError::NotJson)?;
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
            split_change(entry, change, &mut events);
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

fn split_change(entry: &Entry<'_>, change: &Change<'_>, out: &mut Vec<InboundEvent>) {
    let field = change.field.as_deref().unwrap_or("unknown");
    let Some(raw_value) = change.value else {
        return;
    };
    // A value that is not an object (or has unexpected shapes) is kept whole as a field event.
    let value: Value<'_> = serde_json::from_str(raw_value.get()).unwrap_or_default();
    let metadata = value.metadata.as_ref();
    let scope = Scope {
        field,
        waba_id: entry.id.as_deref(),
        phone_number_id: metadata.and_then(|m| m.phone_number_id.as_deref()),
        display_phone_number: metadata.and_then(|m| m.display_phone_number.as_deref()),
        entry_time: entry.time,
    };
    let contacts: Vec<ContactKeys<'_>> = value
        .contacts
        .iter()
        .map(|c| serde_json::from_str(c.get()).unwrap_or_default())
        .collect();

    let before = out.len();
    for raw in &value.messages {
        let k: ItemKeys<'_> = serde_json::from_str(raw.get()).unwrap_or_default();
        let contact = match_contact(
            &contacts,
            &value.contacts,
            k.from_user_id.as_deref(),
            k.from.as_deref(),
        );
        let user_id = k
            .from_user_id
            .as_deref()
            .or(contact.and_then(|(c, _)| c.user_id.as_deref()));
        let wa_id = k
            .from
            .as_deref()
            .or(contact.and_then(|(c, _)| c.wa_id.as_deref()));
        let key = match k.id.as_deref() {
            Some(id) => format!("message:{id}"),
            None => generic_key(EventKind::Message, &scope, raw),
        };
        out.push(event(
            EventKind::Message,
            &scope,
            CustomerRef::new(user_id, wa_id),
            contact.map(|(_, r)| r),
            raw,
            key,
        ));
    }
    for raw in &value.statuses {
        let k: ItemKeys<'_> = serde_json::from_str(raw.get()).unwrap_or_default();
        let customer = if k.recipient_type.as_deref() == Some("group") {
            None
        } else {
            CustomerRef::new(k.recipient_user_id.as_deref(), k.recipient_id.as_deref())
        };
        let key = match (k.id.as_deref(), k.status.as_deref()) {
            (Some(id), Some(status)) => {
                format!("status:{id}:{status}:{}", k.timestamp.unwrap_or_default())
            }
            _ => generic_key(EventKind::Status, &scope, raw),
        };
        out.push(event(EventKind::Status, &scope, customer, None, raw, key));
    }
    for raw in &value.user_preferences {
        let k: ItemKeys<'_> = serde_json::from_str(raw.get()).unwrap_or_default();
        let contact = match_contact(
            &contacts,
            &value.contacts,
            k.user_id.as_deref(),
            k.wa_id.as_deref(),
        );
        let user_id = k
            .user_id
            .as_deref()
            .or(contact.and_then(|(c, _)| c.user_id.as_deref()));
        let wa_id = k
            .wa_id
            .as_deref()
            .or(contact.and_then(|(c, _)| c.wa_id.as_deref()));
        let key = generic_key(EventKind::Preference, &scope, raw);
        out.push(event(
            EventKind::Preference,
            &scope,
            CustomerRef::new(user_id, wa_id),
            contact.map(|(_, r)| r),
            raw,
            key,
        ));
    }
    for raw in &value.errors {
        let key = generic_key(EventKind::Error, &scope, raw);
        out.push(event(EventKind::Error, &scope, None, None, raw, key));
    }
    for raw in value.calls.iter().chain(&value.message_echoes) {
        let key = generic_key(EventKind::Item, &scope, raw);
        out.push(event(EventKind::Item, &scope, None, None, raw, key));
    }
    if out.len() == before {
        let key = generic_key(EventKind::Field, &scope, raw_value);
        out.push(event(EventKind::Field, &scope, None, None, raw_value, key));
    }
}

/// The contact element for a customer: matched by BSUID, then by phone; a lone contact is
/// taken as the sender's (system messages carry none).
fn match_contact<'v, 'a>(
    keys: &'v [ContactKeys<'a>],
    raws: &'v [&'a RawValue],
    user_id: Option<&str>,
    wa_id: Option<&str>,
) -> Option<(&'v ContactKeys<'a>, &'a RawValue)> {
    let by_user = user_id.and_then(|u| keys.iter().position(|c| c.user_id.as_deref() == Some(u)));
    let by_phone = || wa_id.and_then(|p| keys.iter().position(|c| c.wa_id.as_deref() == Some(p)));
    let lone = || (keys.len() == 1 && user_id.is_none() && wa_id.is_none()).then_some(0);
    let i = by_user.or_else(by_phone).or_else(lone)?;
    Some((&keys[i], raws[i]))
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
}
