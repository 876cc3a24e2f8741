//! Status reports: one element of `value.statuses[]`, a receipt for a message the business
//! sent (or, on the `calls` field, a call's progress).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::lenient;
use super::{ApiError, ModelError, parse_item};
use crate::clock::lenient_unix;
use crate::status::DeliveryStatus;

/// A status Meta reported: a delivery status Ventana applies, or any other string kept as
/// sent (call statuses such as `RINGING`, or statuses Meta adds later).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StatusValue {
    /// `sent`, `delivered`, `read`, `played` or `failed`.
    Delivery(DeliveryStatus),
    /// Anything else, as sent.
    Other(String),
}

impl StatusValue {
    /// Reads Meta's `status` string; never fails.
    pub fn parse(s: &str) -> StatusValue {
        DeliveryStatus::parse(s)
            .map_or_else(|| StatusValue::Other(s.to_owned()), StatusValue::Delivery)
    }

    /// The status string as Meta sent it.
    pub fn as_str(&self) -> &str {
        match self {
            StatusValue::Delivery(d) => d.as_str(),
            StatusValue::Other(s) => s,
        }
    }

    /// The delivery status, if this is one.
    pub fn delivery(&self) -> Option<DeliveryStatus> {
        match self {
            StatusValue::Delivery(d) => Some(*d),
            StatusValue::Other(_) => None,
        }
    }
}

/// A receipt for an outbound message, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// The message id (`wamid.…`; `wacid.…` for calls).
    pub id: String,
    /// What happened.
    pub status: StatusValue,
    /// When it happened (unix seconds).
    pub timestamp: i64,
    /// `type`: absent on message statuses, `call` on call statuses.
    pub kind: Option<String>,
    /// The recipient's phone number, or the group id for group sends.
    pub recipient_id: Option<String>,
    /// The recipient's BSUID.
    pub recipient_user_id: Option<String>,
    /// The recipient's parent BSUID.
    pub parent_recipient_user_id: Option<String>,
    /// `group` for group sends (absent for one-to-one messages).
    pub recipient_type: Option<String>,
    /// For group sends: the participant's phone number.
    pub recipient_participant_id: Option<String>,
    /// For group sends: the participant's BSUID.
    pub recipient_participant_user_id: Option<String>,
    /// For group sends: the participant's parent BSUID.
    pub recipient_participant_parent_user_id: Option<String>,
    /// The recipient's identity-key hash, when identity-change checks are enabled.
    pub recipient_identity_key_hash: Option<String>,
    /// What the business set on the send (Ventana puts its own id here).
    pub biz_opaque_callback_data: Option<String>,
    /// The conversation the message was billed in, when Meta says.
    pub conversation: Option<Conversation>,
    /// How the message is priced, when Meta says.
    pub pricing: Option<Pricing>,
    /// The `pricing` object as raw JSON, kept whole for billing records.
    pub pricing_raw: Option<String>,
    /// Why the message failed, on `failed` statuses.
    pub errors: Vec<ApiError>,
}

impl StatusReport {
    /// Parses a status item. `id` (non-empty), `status` and `timestamp` are required; an unknown
    /// status string is kept as [`StatusValue::Other`].
    pub fn parse(item: &str) -> Result<StatusReport, ModelError> {
        let w: StatusWire = parse_item(item)?;
        let id =
            w.id.filter(|s| !s.trim().is_empty())
                .ok_or(ModelError::Missing("id"))?;
        let status = w
            .status
            .filter(|s| !s.trim().is_empty())
            .ok_or(ModelError::Missing("status"))?;
        let timestamp = w.timestamp.ok_or(ModelError::Missing("timestamp"))?;
        let pricing = w
            .pricing
            .as_deref()
            .and_then(lenient::parse_object::<Pricing>);
        Ok(StatusReport {
            id,
            status: StatusValue::parse(&status),
            timestamp,
            kind: w.kind,
            recipient_id: w.recipient_id,
            recipient_user_id: w.recipient_user_id,
            parent_recipient_user_id: w.parent_recipient_user_id,
            recipient_type: w.recipient_type,
            recipient_participant_id: w.recipient_participant_id,
            recipient_participant_user_id: w.recipient_participant_user_id,
            recipient_participant_parent_user_id: w.recipient_participant_parent_user_id,
            recipient_identity_key_hash: w.recipient_identity_key_hash,
            biz_opaque_callback_data: w.biz_opaque_callback_data,
            conversation: w.conversation.map(ConversationWire::into_conversation),
            pricing,
            pricing_raw: w.pricing.map(|r| r.get().to_owned()),
            errors: w.errors,
        })
    }

    /// True for a message sent to a group (`recipient_type: group`): the recipient is the
    /// group, not a customer.
    pub fn is_group(&self) -> bool {
        self.recipient_type.as_deref() == Some("group")
    }
}

/// The conversation a message was billed in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    /// The conversation id.
    pub id: Option<String>,
    /// When it expires (unix seconds; only on `sent`).
    pub expiration_timestamp: Option<i64>,
    /// `origin.type`: `service`, `marketing`, `utility`, `referral_conversion`, ….
    pub origin_type: Option<String>,
}

/// How a message is priced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Pricing {
    /// Whether it is billed (slated for deprecation: derive billing from `kind` + `category`).
    #[serde(deserialize_with = "lenient::opt_flag")]
    pub billable: Option<bool>,
    /// `PMP` (per-message) or `CBP` (conversation-based, before July 2025).
    #[serde(deserialize_with = "lenient::string")]
    pub pricing_model: Option<String>,
    /// `type`: `regular`, `free_customer_service` or `free_entry_point`.
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub kind: Option<String>,
    /// `marketing`, `utility`, `authentication`, `service`, ….
    #[serde(deserialize_with = "lenient::string")]
    pub category: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StatusWire {
    #[serde(deserialize_with = "lenient::string")]
    id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    status: Option<String>,
    #[serde(deserialize_with = "lenient_unix")]
    timestamp: Option<i64>,
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    kind: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    recipient_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    recipient_user_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    parent_recipient_user_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    recipient_type: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    recipient_participant_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    recipient_participant_user_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    recipient_participant_parent_user_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    recipient_identity_key_hash: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    biz_opaque_callback_data: Option<String>,
    #[serde(deserialize_with = "lenient::object")]
    conversation: Option<ConversationWire>,
    pricing: Option<Box<RawValue>>,
    #[serde(deserialize_with = "lenient::list")]
    errors: Vec<ApiError>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConversationWire {
    #[serde(deserialize_with = "lenient::string")]
    id: Option<String>,
    #[serde(deserialize_with = "lenient_unix")]
    expiration_timestamp: Option<i64>,
    #[serde(deserialize_with = "lenient::object")]
    origin: Option<OriginWire>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OriginWire {
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    kind: Option<String>,
}

impl ConversationWire {
    fn into_conversation(self) -> Conversation {
        Conversation {
            id: self.id,
            expiration_timestamp: self.expiration_timestamp,
            origin_type: self.origin.and_then(|o| o.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_status_keeps_conversation_and_pricing() {
        let s = StatusReport::parse(
            r#"{"id":"wamid.S","status":"sent","timestamp":"1750030073","recipient_id":"16505551234","recipient_user_id":"US.9","biz_opaque_callback_data":"v:1","conversation":{"id":"c1","expiration_timestamp":"1750116480","origin":{"type":"marketing"}},"pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"}}"#,
        )
        .unwrap();
        assert_eq!(s.status, StatusValue::Delivery(DeliveryStatus::Sent));
        assert_eq!(s.timestamp, 1_750_030_073);
        assert_eq!(s.biz_opaque_callback_data.as_deref(), Some("v:1"));
        assert_eq!(
            s.conversation,
            Some(Conversation {
                id: Some("c1".into()),
                expiration_timestamp: Some(1_750_116_480),
                origin_type: Some("marketing".into())
            })
        );
        let p = s.pricing.as_ref().unwrap();
        assert_eq!(p.kind.as_deref(), Some("regular"));
        assert_eq!(p.billable, Some(true));
        assert_eq!(
            s.pricing_raw.as_deref(),
            Some(
                r#"{"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"}"#
            )
        );
        assert!(!s.is_group());
    }

    #[test]
    fn unknown_statuses_are_kept_not_refused() {
        let s = StatusReport::parse(
            r#"{"id":"wacid.1","status":"RINGING","timestamp":1,"type":"call"}"#,
        )
        .unwrap();
        assert_eq!(s.status, StatusValue::Other("RINGING".into()));
        assert_eq!(s.status.as_str(), "RINGING");
        assert_eq!(s.status.delivery(), None);
        assert_eq!(s.kind.as_deref(), Some("call"));
        for d in DeliveryStatus::ALL {
            assert_eq!(StatusValue::parse(d.as_str()).delivery(), Some(d));
            assert_eq!(StatusValue::parse(d.as_str()).as_str(), d.as_str());
        }
    }

    #[test]
    fn id_status_and_timestamp_are_required() {
        for (item, field) in [
            (r#"{"status":"sent","timestamp":"1"}"#, "id"),
            (r#"{"id":"w","timestamp":"1"}"#, "status"),
            (r#"{"id":"w","status":"","timestamp":"1"}"#, "status"),
            (r#"{"id":"w","status":"sent"}"#, "timestamp"),
        ] {
            match StatusReport::parse(item) {
                Err(ModelError::Missing(f)) => assert_eq!(f, field, "{item}"),
                other => panic!("{item}: {other:?}"),
            }
        }
        assert!(matches!(StatusReport::parse("1"), Err(ModelError::Json(_))));
    }

    #[test]
    fn a_failed_status_carries_its_errors_and_odd_pricing_is_kept_raw() {
        let s = StatusReport::parse(
            r#"{"id":"w","status":"failed","timestamp":"2","errors":[{"code":131049,"title":"t","error_data":{"details":"d"}}],"pricing":"weird","conversation":7}"#,
        )
        .unwrap();
        assert_eq!(s.status.delivery(), Some(DeliveryStatus::Failed));
        assert_eq!(s.errors[0].code, 131_049);
        assert_eq!(s.errors[0].details.as_deref(), Some("d"));
        assert_eq!(s.pricing, None);
        assert_eq!(s.pricing_raw.as_deref(), Some(r#""weird""#));
        assert_eq!(s.conversation, None);
    }

    #[test]
    fn group_statuses_are_recognised() {
        let s = StatusReport::parse(
            r#"{"id":"w","status":"read","timestamp":"3","recipient_id":"g1","recipient_type":"group","recipient_participant_id":"1555","recipient_participant_user_id":"US.5"}"#,
        )
        .unwrap();
        assert!(s.is_group());
        assert_eq!(s.recipient_participant_user_id.as_deref(), Some("US.5"));
    }
}
