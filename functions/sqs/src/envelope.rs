//! The queue message envelope: `{"schema_version":1,"event":<InboundEvent>}`.
//!
//! webhook-receive writes it ([`encode`]) and inbound-processor reads it ([`decode`]). The
//! version lets a later format be rolled out while messages of the old one are still queued:
//! a reader refuses versions it does not know with a typed error instead of misreading them.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use wa_domain::event::InboundEvent;

/// The envelope version this crate writes and reads.
pub const SCHEMA_VERSION: u64 = 1;

/// Why a queue message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The event could not be serialized.
    #[error("could not encode the event")]
    Encode(#[source] serde_json::Error),
    /// The body is not a JSON envelope.
    #[error("queue message is not a JSON envelope")]
    Json(#[source] serde_json::Error),
    /// The envelope has no `schema_version`.
    #[error("queue message has no schema_version")]
    MissingVersion,
    /// The envelope was written in a version this code does not read.
    #[error("unknown queue message schema version {0}")]
    UnknownSchemaVersion(u64),
    /// The envelope has no `event`.
    #[error("queue message has no event")]
    MissingEvent,
    /// The `event` is not an [`InboundEvent`].
    #[error("queue message's event is invalid")]
    Event(#[source] serde_json::Error),
}

#[derive(Serialize)]
struct Out<'a> {
    schema_version: u64,
    event: &'a InboundEvent,
}

#[derive(Deserialize)]
struct In {
    #[serde(default)]
    schema_version: Option<u64>,
    #[serde(default)]
    event: Option<Box<RawValue>>,
}

/// The queue message body for `event`.
pub fn encode(event: &InboundEvent) -> Result<String, EnvelopeError> {
    serde_json::to_string(&Out {
        schema_version: SCHEMA_VERSION,
        event,
    })
    .map_err(EnvelopeError::Encode)
}

/// The event in a queue message body; unknown versions are
/// [`EnvelopeError::UnknownSchemaVersion`].
pub fn decode(body: &str) -> Result<InboundEvent, EnvelopeError> {
    let envelope: In = serde_json::from_str(body).map_err(EnvelopeError::Json)?;
    match envelope.schema_version {
        None => return Err(EnvelopeError::MissingVersion),
        Some(SCHEMA_VERSION) => {}
        Some(other) => return Err(EnvelopeError::UnknownSchemaVersion(other)),
    }
    let event = envelope.event.ok_or(EnvelopeError::MissingEvent)?;
    serde_json::from_str(event.get()).map_err(EnvelopeError::Event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_domain::customer::CustomerRef;
    use wa_domain::event::EventKind;

    fn event() -> InboundEvent {
        InboundEvent {
            kind: EventKind::Message,
            field: "messages".into(),
            waba_id: Some("1".into()),
            phone_number_id: Some("2".into()),
            display_phone_number: None,
            entry_time: None,
            customer: CustomerRef::new(Some("US.1"), Some("1555")),
            contact: None,
            item: RawValue::from_string(r#"{"id":"wamid.X","text":{"body":"h\u00e9"}}"#.into())
                .unwrap(),
            natural_key: "message:wamid.X".into(),
        }
    }

    #[test]
    fn an_event_round_trips_with_its_raw_item() {
        let body = encode(&event()).unwrap();
        assert!(body.starts_with(r#"{"schema_version":1,"event":{"#));
        let back = decode(&body).unwrap();
        assert_eq!(back.item.get(), event().item.get());
        assert_eq!(back.natural_key, "message:wamid.X");
        assert_eq!(back.customer, event().customer);
    }

    #[test]
    fn other_versions_and_shapes_are_refused() {
        let body = encode(&event()).unwrap();
        let v2 = body.replacen(r#""schema_version":1"#, r#""schema_version":2"#, 1);
        assert!(matches!(
            decode(&v2),
            Err(EnvelopeError::UnknownSchemaVersion(2))
        ));
        assert!(matches!(
            decode(r#"{"schema_version":7}"#),
            Err(EnvelopeError::UnknownSchemaVersion(7))
        ));
        assert!(matches!(
            decode(r#"{"event":{}}"#),
            Err(EnvelopeError::MissingVersion)
        ));
        assert!(matches!(
            decode(r#"{"schema_version":1}"#),
            Err(EnvelopeError::MissingEvent)
        ));
        assert!(matches!(
            decode(r#"{"schema_version":1,"event":{}}"#),
            Err(EnvelopeError::Event(_))
        ));
        assert!(matches!(decode("nope"), Err(EnvelopeError::Json(_))));
    }
}
