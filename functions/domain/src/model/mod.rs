//! Typed models of what Meta sends: inbound messages, status reports, user preferences,
//! errors and management-field updates.
//!
//! Each model is parsed from the raw JSON an [`InboundEvent`](crate::event::InboundEvent)
//! carries, and parsing is lenient by rule:
//! - unknown fields are ignored (no model denies unknown fields);
//! - a field of an unexpected shape is taken as absent (an id sent as an integer is kept as its
//!   text, a timestamp may be a string or a number);
//! - an unknown message type, status or field is kept by name, never an error;
//! - only what a model cannot exist without is required: a message's `id` and `timestamp`, a
//!   status's `id`, `status` and `timestamp`, an error's `code`, a preference's `value`.
//!
//! The event keeps the raw JSON, so whatever a model leaves out is never lost.

mod field;
mod lenient;
mod message;
mod status;

use serde::Deserialize;

use crate::json::Object;

pub use field::{
    AccountAlerts, AccountUpdate, BusinessCapability, FieldUpdate, MessagingLimit, OtherInfo,
    PhoneNumberQuality, PreferenceValue, RejectionInfo, Restriction, TemplateCategory,
    TemplateComponents, TemplateQuality, TemplateStatus, UserPreference, VolumeTier,
};
pub use message::{
    ConsentText, ContactAddress, ContactEmail, ContactName, ContactOrg, ContactPhone, ContactUrl,
    Context, Identity, IdentityChange, InboundMessage, Interactive, Location, Media,
    MessageContent, Order, ProductItem, Reaction, Referral, ReferredProduct, SharedContact, System,
    WelcomeMessage,
};
pub use status::{Conversation, Pricing, StatusReport, StatusValue};

/// Why an item could not be modelled. Either way the raw item is still in its event.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The item is not JSON, or not a JSON object.
    #[error("item is not a JSON object")]
    Json(#[from] serde_json::Error),
    /// A field the model cannot do without is absent, empty or unusable.
    #[error("item has no usable `{0}`")]
    Missing(&'static str),
}

/// An error Meta reports in an `errors[]` array: on a message (e.g. 131051 for an unsupported
/// type), on a failed status, or for a whole number or app (a value-level error event).
/// An element without a usable `code` is not an `ApiError`; in a list it is skipped.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ApiErrorWire")]
pub struct ApiError {
    /// Meta's error code (`131051`, `130472`, …).
    pub code: i64,
    /// Short title.
    pub title: Option<String>,
    /// Message, often the same as the title.
    pub message: Option<String>,
    /// `error_data.details`: the longer explanation.
    pub details: Option<String>,
    /// Link to Meta's error-code documentation.
    pub href: Option<String>,
}

impl ApiError {
    /// Parses one element of an `errors[]` array (the item of an error event).
    pub fn parse(item: &str) -> Result<ApiError, ModelError> {
        ApiError::try_from(parse_item::<ApiErrorWire>(item)?)
    }

    /// The most useful human text: the details, else the message, else the title.
    pub fn text(&self) -> Option<&str> {
        self.details
            .as_deref()
            .or(self.message.as_deref())
            .or(self.title.as_deref())
    }
}

/// Deserializes an item that must be a JSON object ([`Object`]: an array is refused, with
/// serde's own error as the source, instead of filling the struct by position).
pub(crate) fn parse_item<'a, T: Deserialize<'a>>(item: &'a str) -> Result<T, ModelError> {
    let Object(t) = serde_json::from_str(item)?;
    Ok(t)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiErrorWire {
    #[serde(deserialize_with = "lenient::int")]
    code: Option<i64>,
    #[serde(deserialize_with = "lenient::string")]
    title: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    message: Option<String>,
    #[serde(deserialize_with = "lenient::object")]
    error_data: Option<ErrorData>,
    #[serde(deserialize_with = "lenient::string")]
    href: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorData {
    #[serde(deserialize_with = "lenient::string")]
    details: Option<String>,
}

impl TryFrom<ApiErrorWire> for ApiError {
    type Error = ModelError;

    fn try_from(w: ApiErrorWire) -> Result<Self, ModelError> {
        Ok(ApiError {
            code: w.code.ok_or(ModelError::Missing("code"))?,
            title: w.title,
            message: w.message,
            details: w.error_data.and_then(|d| d.details),
            href: w.href,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_keeps_code_texts_and_details() {
        let e = ApiError::parse(
            r#"{"code":131051,"title":"Message type unknown","message":"Message type unknown","error_data":{"details":"Message type is currently not supported."},"href":"https://x","extra":1}"#,
        )
        .unwrap();
        assert_eq!(e.code, 131_051);
        assert_eq!(e.title.as_deref(), Some("Message type unknown"));
        assert_eq!(
            e.details.as_deref(),
            Some("Message type is currently not supported.")
        );
        assert_eq!(e.text(), Some("Message type is currently not supported."));
        assert_eq!(e.href.as_deref(), Some("https://x"));
    }

    #[test]
    fn an_error_code_may_be_a_string_but_must_be_there() {
        assert_eq!(
            ApiError::parse(r#"{"code":"130429"}"#).unwrap().code,
            130_429
        );
        assert!(matches!(
            ApiError::parse(r#"{"title":"no code"}"#),
            Err(ModelError::Missing("code"))
        ));
        assert!(matches!(
            ApiError::parse(r#"{"code":"abc"}"#),
            Err(ModelError::Missing("code"))
        ));
        assert!(matches!(ApiError::parse("nope"), Err(ModelError::Json(_))));
        assert!(matches!(
            ApiError::parse("[131051]"),
            Err(ModelError::Json(_))
        ));
    }

    #[test]
    fn model_errors_keep_their_serde_source() {
        let err = ApiError::parse("{").unwrap_err();
        assert!(std::error::Error::source(&err).is_some());
    }
}
