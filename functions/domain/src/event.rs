//! An inbound event: one message, status, error, preference or management update taken out of
//! a webhook. Events are what webhook-receive queues and inbound-processor applies.
//!
//! The raw JSON of the item is carried unchanged (`item`), so that nothing Meta sent is lost,
//! including fields and message types Ventana does not know yet.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::customer::CustomerRef;

/// What an event holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// One element of `value.messages[]`: something a customer sent.
    Message,
    /// One element of `value.statuses[]`: a receipt for a message the business sent.
    Status,
    /// One element of `value.errors[]`: an out-of-band error for the number or app.
    Error,
    /// One element of `value.user_preferences[]`: a marketing stop/resume.
    Preference,
    /// One element of another array of a `messages`-style value (`calls[]`,
    /// `message_echoes[]`, …): kept whole.
    Item,
    /// A whole `value` of any other field (template, quality, account updates, unknown fields).
    Field,
}

impl EventKind {
    /// The short name used in keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Message => "message",
            EventKind::Status => "status",
            EventKind::Error => "error",
            EventKind::Preference => "preference",
            EventKind::Item => "item",
            EventKind::Field => "field",
        }
    }
}

/// One event from a webhook, self-contained: it carries the ids of the entry and change it came
/// from, so it can be applied without the rest of the payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboundEvent {
    /// What the item is.
    pub kind: EventKind,
    /// The webhook field it came under (`messages`, `message_template_status_update`, …).
    pub field: String,
    /// `entry[].id`: the WhatsApp Business Account id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<String>,
    /// `value.metadata.phone_number_id`: the business number, when the field has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    /// `value.metadata.display_phone_number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// `entry[].time` (unix seconds), present on management fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_time: Option<i64>,
    /// The customer this event is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerRef>,
    /// The `value.contacts[]` element that matches the customer, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Box<RawValue>>,
    /// The item itself, exactly as Meta sent it.
    pub item: Box<RawValue>,
    /// What makes this event unique across redeliveries (see [`InboundEvent::natural_key`]).
    pub natural_key: String,
}

impl InboundEvent {
    /// The event's natural key: `message:<wamid>` for messages,
    /// `status:<wamid>:<status>:<timestamp>` for statuses, and for the rest the kind, field,
    /// account, number, entry time and a digest of the raw item. A redelivered webhook yields
    /// the same keys.
    pub fn natural_key(&self) -> &str {
        &self.natural_key
    }

    /// The SQS FIFO deduplication id: a hex SHA-256 of the natural key (64 characters, within
    /// SQS's 128-character limit whatever the ids' lengths).
    pub fn dedup_id(&self) -> String {
        hex::encode(Sha256::digest(self.natural_key.as_bytes()))
    }

    /// The SQS FIFO message group: the business number and the customer, so that one
    /// customer's events are applied in order while different customers run in parallel.
    /// Events about no customer are grouped by account (or number) and field.
    pub fn group_id(&self) -> String {
        let scope = self
            .phone_number_id
            .as_deref()
            .or(self.waba_id.as_deref())
            .unwrap_or("-");
        let who = match &self.customer {
            Some(c) => c
                .user_id
                .as_deref()
                .or(c.wa_id.as_deref())
                .unwrap_or("-")
                .to_owned(),
            None => self.field.clone(),
        };
        let group = format!("{scope}:{who}");
        if group.len() <= 128 && group.bytes().all(|b| b.is_ascii_graphic()) {
            group
        } else {
            hex::encode(Sha256::digest(group.as_bytes()))
        }
    }
}

/// A digest of raw bytes, used in natural keys of items that carry no id of their own.
pub(crate) fn digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    hex::encode(&d[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(customer: Option<CustomerRef>) -> InboundEvent {
        InboundEvent {
            kind: EventKind::Message,
            field: "messages".into(),
            waba_id: Some("102290129340398".into()),
            phone_number_id: Some("106540352242922".into()),
            display_phone_number: None,
            entry_time: None,
            customer,
            contact: None,
            item: RawValue::from_string("{}".into()).unwrap(),
            natural_key: "message:wamid.X".into(),
        }
    }

    #[test]
    fn group_is_number_and_customer_preferring_bsuid() {
        let e = event(CustomerRef::new(Some("US.1"), Some("1555")));
        assert_eq!(e.group_id(), "106540352242922:US.1");
        let e = event(CustomerRef::new(None, Some("1555")));
        assert_eq!(e.group_id(), "106540352242922:1555");
        let e = event(None);
        assert_eq!(e.group_id(), "106540352242922:messages");
    }

    #[test]
    fn long_group_ids_are_hashed_to_fit_sqs() {
        let long = format!("US.{}", "9".repeat(150));
        let e = event(CustomerRef::new(Some(&long), None));
        let g = e.group_id();
        assert_eq!(g.len(), 64);
        assert!(g.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn dedup_id_is_stable_and_fits_sqs() {
        let a = event(None);
        let b = event(CustomerRef::new(Some("US.2"), None));
        assert_eq!(
            a.dedup_id(),
            b.dedup_id(),
            "dedup depends on the natural key only"
        );
        assert_eq!(a.dedup_id().len(), 64);
    }

    #[test]
    fn event_round_trips_through_json_keeping_the_raw_item() {
        let mut e = event(CustomerRef::new(Some("US.1"), None));
        e.item = RawValue::from_string(r#"{"b":"Luc\u00eda","a":1}"#.into()).unwrap();
        let s = serde_json::to_string(&e).unwrap();
        let back: InboundEvent = serde_json::from_str(&s).unwrap();
        assert_eq!(back.item.get(), r#"{"b":"Luc\u00eda","a":1}"#);
        assert_eq!(back.customer, e.customer);
    }
}
