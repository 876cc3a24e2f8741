//! The body of `POST /{version}/{phone_number_id}/messages`, taken unchanged from the client
//! and validated against Meta's limits before anything is recorded or queued.

use serde_json::{Map, Value, json};

use super::check::{
    Caption, Obj, Res, as_object, at, check_len, coordinate, media, nth, opt_object, opt_str,
    req_array, req_object, req_str, req_text, wrong_kind,
};
use super::error::SendError;
use super::interactive::{self, InteractiveKind};
use super::template;
use crate::customer::{CustomerRef, is_bsuid, normalize_phone};

/// Longest text message body.
pub const TEXT_BODY_MAX: usize = 4096;

/// Longest `biz_opaque_callback_data`. Meta's send reference gives 512 characters; the digest
/// could not confirm it, so Ventana keeps to it: a longer value would fail at Meta after it
/// had been queued, and Ventana substitutes its own id there anyway (the client's value is
/// kept so it can be given back).
pub const CALLBACK_DATA_MAX: usize = 512;

/// Fewest and most digits a phone number in `to` may have once formatting is removed.
const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 5..=20;

/// What a message is, by its `type` (and `interactive.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `text`.
    Text,
    /// `image`.
    Image,
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `document`.
    Document,
    /// `sticker`.
    Sticker,
    /// `location`.
    Location,
    /// `contacts`.
    Contacts,
    /// `reaction`.
    Reaction,
    /// `interactive`, with its own kind.
    Interactive(InteractiveKind),
    /// `template`: the only kind Meta delivers outside the customer-service window.
    Template,
}

impl MessageKind {
    /// The wire name of the message `type` (`interactive` for every interactive kind).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Image => "image",
            MessageKind::Audio => "audio",
            MessageKind::Video => "video",
            MessageKind::Document => "document",
            MessageKind::Sticker => "sticker",
            MessageKind::Location => "location",
            MessageKind::Contacts => "contacts",
            MessageKind::Reaction => "reaction",
            MessageKind::Interactive(_) => "interactive",
            MessageKind::Template => "template",
        }
    }
}

/// Who a send goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// One customer (`recipient_type` `individual`, the default), by phone (`to`), BSUID
    /// (`recipient`), or both.
    Customer(CustomerRef),
    /// A group (`recipient_type` `group`); `to` is the group id.
    Group {
        /// The group id as the client gave it.
        group_id: String,
    },
}

/// A validated send: a Cloud API message body Meta's limits allow.
///
/// The body is kept exactly as the client sent it ([`SendRequest::raw_json`]), so it can be
/// forwarded to Meta unchanged; [`SendRequest::graph_body`] adds Ventana's
/// `biz_opaque_callback_data`.
#[derive(Debug, Clone)]
pub struct SendRequest {
    raw: String,
    body: Map<String, Value>,
    kind: MessageKind,
    recipient: Recipient,
    to_input: Option<String>,
    context_message_id: Option<String>,
    callback_data: Option<String>,
    template: Option<(String, String)>,
}

/// A read receipt posted to the messages endpoint: marks a customer's message (and the ones
/// before it) as read, optionally showing a typing indicator. Meta answers `{"success":true}`;
/// it creates no message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadReceipt {
    /// The wamid of the customer's message.
    pub message_id: String,
    /// Whether a typing indicator is asked for as well (`typing_indicator.type`).
    pub typing_indicator: Option<String>,
}

/// Anything the messages endpoint accepts: a send, or a read receipt.
#[derive(Debug, Clone)]
pub enum MessagesRequest {
    /// A message to send.
    Send(Box<SendRequest>),
    /// A read receipt (with or without a typing indicator).
    Read(ReadReceipt),
}

impl MessagesRequest {
    /// Parses and validates a body for the messages endpoint: a read receipt when it has a
    /// top-level `status`, a send otherwise.
    pub fn parse(body: &[u8]) -> Result<MessagesRequest, SendError> {
        let value: Value = serde_json::from_slice(body).map_err(SendError::NotJson)?;
        let Value::Object(obj) = value else {
            return Err(SendError::NotAnObject);
        };
        if obj.get("status").is_some_and(|v| !v.is_null()) {
            return read_receipt(&obj).map(MessagesRequest::Read);
        }
        // serde_json validated the bytes as UTF-8 JSON, so the lossy conversion never
        // replaces anything; it only avoids a second fallible step.
        let raw = String::from_utf8_lossy(body).into_owned();
        SendRequest::validate(raw, obj).map(|s| MessagesRequest::Send(Box::new(s)))
    }
}

fn read_receipt(obj: &Obj) -> Res<ReadReceipt> {
    product(obj)?;
    let status = req_str(obj, "", "status")?;
    if status != "read" {
        return Err(SendError::invalid("status", "must be `read`"));
    }
    let message_id = req_text(obj, "", "message_id", 1, usize::MAX)?.to_owned();
    let typing_indicator = match opt_object(obj, "", "typing_indicator")? {
        Some(t) => Some(req_text(t, "typing_indicator", "type", 1, 32)?.to_owned()),
        None => None,
    };
    Ok(ReadReceipt {
        message_id,
        typing_indicator,
    })
}

/// `messaging_product` must be `whatsapp`.
fn product(obj: &Obj) -> Res<()> {
    if req_str(obj, "", "messaging_product")? != "whatsapp" {
        return Err(SendError::invalid(
            "messaging_product",
            "must be `whatsapp`",
        ));
    }
    Ok(())
}

impl SendRequest {
    /// Parses and validates a Cloud API send body. A read receipt is refused with
    /// [`SendError::NotAMessage`]; use [`MessagesRequest::parse`] to accept both.
    ///
    /// Rules: `messaging_product` is `whatsapp`; `recipient_type` is `individual` (default)
    /// or `group`; an individual send names the customer by `to` (a phone number; `+`,
    /// spaces, dashes, dots and parentheses allowed) and/or `recipient` (a BSUID); `type`
    /// defaults to `text`, as at Meta; the object named by `type` is there and within Meta's
    /// limits; `context.message_id`, when given, is not empty; `biz_opaque_callback_data` is
    /// at most [`CALLBACK_DATA_MAX`] characters. The first broken rule is reported.
    pub fn parse(body: &[u8]) -> Result<SendRequest, SendError> {
        match MessagesRequest::parse(body)? {
            MessagesRequest::Send(s) => Ok(*s),
            MessagesRequest::Read(_) => Err(SendError::NotAMessage),
        }
    }

    fn validate(raw: String, body: Map<String, Value>) -> Res<SendRequest> {
        product(&body)?;
        let (recipient, to_input) = recipient(&body)?;

        let kind = match body.get("type") {
            None | Some(Value::Null) => "text",
            Some(Value::String(s)) => s.as_str(),
            Some(v) => return Err(wrong_kind("type".into(), "a string", v)),
        };

        let context_message_id = match opt_object(&body, "", "context")? {
            Some(c) => Some(req_text(c, "context", "message_id", 1, usize::MAX)?.to_owned()),
            None => None,
        };
        let callback_data = match opt_str(&body, "", "biz_opaque_callback_data")? {
            Some(s) => {
                check_len(s, "biz_opaque_callback_data", 0, CALLBACK_DATA_MAX)?;
                Some(s.to_owned())
            }
            None => None,
        };

        let mut template = None;
        let kind = match kind {
            "text" => {
                let t = req_object(&body, "", "text")?;
                req_text(t, "text", "body", 1, TEXT_BODY_MAX)?;
                if let Some(v) = t.get("preview_url").filter(|v| !v.is_null())
                    && !v.is_boolean()
                {
                    return Err(wrong_kind("text.preview_url".into(), "a boolean", v));
                }
                MessageKind::Text
            }
            "image" | "video" | "document" => {
                media(req_object(&body, "", kind)?, kind, Caption::Allowed)?;
                match kind {
                    "image" => MessageKind::Image,
                    "video" => MessageKind::Video,
                    _ => MessageKind::Document,
                }
            }
            "audio" | "sticker" => {
                media(req_object(&body, "", kind)?, kind, Caption::Refused)?;
                if kind == "audio" {
                    MessageKind::Audio
                } else {
                    MessageKind::Sticker
                }
            }
            "location" => {
                let l = req_object(&body, "", "location")?;
                coordinate(l, "location", "latitude", 90.0)?;
                coordinate(l, "location", "longitude", 180.0)?;
                opt_str(l, "location", "name")?;
                opt_str(l, "location", "address")?;
                MessageKind::Location
            }
            "contacts" => {
                let contacts = req_array(&body, "", "contacts")?;
                if contacts.is_empty() {
                    return Err(SendError::invalid(
                        "contacts",
                        "must have at least 1 contact",
                    ));
                }
                for (i, c) in contacts.iter().enumerate() {
                    let p = nth("contacts", i);
                    let c = as_object(c, &p)?;
                    let name = req_object(c, &p, "name")?;
                    req_text(name, &at(&p, "name"), "formatted_name", 1, usize::MAX)?;
                }
                MessageKind::Contacts
            }
            "reaction" => {
                let r = req_object(&body, "", "reaction")?;
                req_text(r, "reaction", "message_id", 1, usize::MAX)?;
                // An empty emoji removes an earlier reaction.
                req_str(r, "reaction", "emoji")?;
                MessageKind::Reaction
            }
            "interactive" => {
                MessageKind::Interactive(interactive::validate(req_object(&body, "", kind)?)?)
            }
            "template" => {
                template = Some(template::validate(req_object(&body, "", kind)?)?);
                MessageKind::Template
            }
            other => {
                return Err(SendError::UnsupportedType {
                    field: "type".into(),
                    value: other.to_owned(),
                });
            }
        };

        Ok(SendRequest {
            raw,
            body,
            kind,
            recipient,
            to_input,
            context_message_id,
            callback_data,
            template,
        })
    }

    /// What the message is.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Whether this is a session (free-form) message, which Meta delivers only inside the
    /// customer-service window: everything but a template.
    pub fn is_session_message(&self) -> bool {
        self.kind != MessageKind::Template
    }

    /// Who the message goes to.
    pub fn recipient(&self) -> &Recipient {
        &self.recipient
    }

    /// The customer the message goes to; `None` for a group send.
    pub fn customer(&self) -> Option<&CustomerRef> {
        match &self.recipient {
            Recipient::Customer(c) => Some(c),
            Recipient::Group { .. } => None,
        }
    }

    /// `to` exactly as the client wrote it (the Cloud API echoes it as `contacts[].input`).
    pub fn to_input(&self) -> Option<&str> {
        self.to_input.as_deref()
    }

    /// The template's name and language code, for a template send.
    pub fn template_name_language(&self) -> Option<(&str, &str)> {
        self.template
            .as_ref()
            .map(|(n, l)| (n.as_str(), l.as_str()))
    }

    /// The `template` object of a template send, as the client gave it.
    pub fn template_object(&self) -> Option<&Value> {
        if self.kind == MessageKind::Template {
            self.body.get("template")
        } else {
            None
        }
    }

    /// The wamid this message replies to (`context.message_id`).
    pub fn context_message_id(&self) -> Option<&str> {
        self.context_message_id.as_deref()
    }

    /// The client's own `biz_opaque_callback_data`, if it sent one.
    pub fn client_callback_data(&self) -> Option<&str> {
        self.callback_data.as_deref()
    }

    /// The body exactly as the client sent it.
    pub fn raw_json(&self) -> &str {
        &self.raw
    }

    /// The body to post to the Graph API: the client's body with `biz_opaque_callback_data`
    /// set to `callback_data` (Ventana's id, echoed in status webhooks so they can be matched
    /// to the send). Everything else is unchanged.
    pub fn graph_body(&self, callback_data: &str) -> Value {
        let mut body = self.body.clone();
        body.insert(
            "biz_opaque_callback_data".into(),
            Value::String(callback_data.to_owned()),
        );
        Value::Object(body)
    }

    /// The Cloud API success response for this send, with `message_id` (Ventana's id) in
    /// place of Meta's wamid: `{"messaging_product":"whatsapp","contacts":[{"input","wa_id"}],
    /// "messages":[{"id","message_status":"accepted"}]}`.
    pub fn response_body(&self, message_id: &str) -> Value {
        let contact = match &self.recipient {
            Recipient::Customer(c) => {
                let mut o = Map::new();
                let input = self
                    .to_input
                    .as_deref()
                    .or(c.user_id.as_deref())
                    .unwrap_or_default();
                o.insert("input".into(), Value::String(input.to_owned()));
                if let Some(w) = &c.wa_id {
                    o.insert("wa_id".into(), Value::String(w.clone()));
                }
                if let Some(u) = &c.user_id {
                    o.insert("user_id".into(), Value::String(u.clone()));
                }
                Value::Object(o)
            }
            Recipient::Group { group_id } => json!({ "input": group_id }),
        };
        json!({
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{ "id": message_id, "message_status": "accepted" }],
        })
    }
}

/// Reads `recipient_type`, `to` and `recipient`.
fn recipient(body: &Obj) -> Res<(Recipient, Option<String>)> {
    let group = match opt_str(body, "", "recipient_type")? {
        None | Some("individual") => false,
        Some("group") => true,
        Some(_) => {
            return Err(SendError::invalid(
                "recipient_type",
                "must be `individual` or `group`",
            ));
        }
    };
    let to = opt_str(body, "", "to")?;
    if group {
        let group_id = to.ok_or_else(|| SendError::missing("to"))?;
        check_len(group_id.trim(), "to", 1, 256)?;
        return Ok((
            Recipient::Group {
                group_id: group_id.to_owned(),
            },
            Some(group_id.to_owned()),
        ));
    }

    let bsuid = match opt_str(body, "", "recipient")? {
        Some(r) if is_bsuid(r.trim()) => Some(r.trim()),
        Some(_) => {
            return Err(SendError::invalid(
                "recipient",
                "must be a business-scoped user id such as `US.13491208655302741918`",
            ));
        }
        None => None,
    };
    let mut user_id = bsuid;
    let mut phone = None;
    if let Some(to) = to {
        let t = to.trim();
        if is_bsuid(t) {
            // Some clients put the BSUID in `to`; it names the same customer.
            user_id = user_id.or(Some(t));
        } else {
            let allowed = t
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')' | '.'));
            let digits = normalize_phone(t);
            if !allowed || !PHONE_DIGITS.contains(&digits.len()) {
                return Err(SendError::invalid(
                    "to",
                    "must be a phone number with country code, e.g. +16505551234",
                ));
            }
            phone = Some(t);
        }
    }
    let customer = CustomerRef::new(user_id, phone).ok_or_else(|| SendError::missing("to"))?;
    Ok((Recipient::Customer(customer), to.map(str::to_owned)))
}

#[cfg(test)]
#[path = "request_props.rs"]
mod props;
