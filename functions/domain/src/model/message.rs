//! Inbound messages: one element of `value.messages[]`, something a customer sent.
//!
//! The content is read from the object named by the message's `type` (`"type": "image"` →
//! `"image": {…}`). A type Ventana does not model becomes [`MessageContent::Unknown`], and so
//! does a modelled type whose object is missing or malformed (`"type": "image"` with no
//! `"image"`): such a message is still a message the customer sent, so it is recorded and still
//! opens the window, rather than being refused. [`MessageContent::is_malformed`] tells the two
//! cases apart.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::lenient;
use super::{ApiError, ModelError, parse_item};
use crate::clock::lenient_unix;

/// What a customer's message says that may change their consent, by where the words came
/// from: the two are matched against different lists ([`crate::optout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentText<'a> {
    /// A `text` message's body, as the customer typed it.
    Typed(&'a str),
    /// A tap on a template's quick-reply button (`type: button`): its label and the payload
    /// the business set on it, either of which may be missing (never both).
    TemplateButton {
        /// The button's label, as the customer saw it.
        text: Option<&'a str>,
        /// The payload the business set on the button when it sent the template.
        payload: Option<&'a str>,
    },
}

/// A message a customer sent, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The message id (`wamid.…`).
    pub id: String,
    /// The customer's phone number (digits), when Meta shares it.
    pub from: Option<String>,
    /// The customer's business-scoped user id (BSUID).
    pub from_user_id: Option<String>,
    /// The customer's parent BSUID (shared across an enterprise's portfolios).
    pub from_parent_user_id: Option<String>,
    /// The group the message was sent in, for group messages.
    pub group_id: Option<String>,
    /// When the customer sent it (unix seconds), the clock the window is computed from.
    pub timestamp: i64,
    /// What the message replies to or how it was forwarded.
    pub context: Option<Context>,
    /// The ad or post the customer came from (Click-to-WhatsApp).
    pub referral: Option<Referral>,
    /// Errors Meta attached to the message (e.g. 131051 on unsupported types).
    pub errors: Vec<ApiError>,
    /// The customer's profile name (`contacts[].profile.name`).
    pub profile_name: Option<String>,
    /// The customer's username (`contacts[].profile.username`).
    pub username: Option<String>,
    /// What was sent.
    pub content: MessageContent,
}

/// What a message holds, by Meta's `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    /// `text`: a plain text message.
    Text {
        /// The text (empty if Meta sent none).
        body: String,
    },
    /// `image`.
    Image(Media),
    /// `video`.
    Video(Media),
    /// `audio`; a voice note has `voice: true`.
    Audio(Media),
    /// `document`.
    Document(Media),
    /// `sticker`.
    Sticker(Media),
    /// `location`: a shared or current location.
    Location(Location),
    /// `contacts`: shared contact cards.
    Contacts(Vec<SharedContact>),
    /// `interactive`: a reply to a button, list or Flow the business sent.
    Interactive(Interactive),
    /// `button`: a tap on a template's quick-reply button.
    Button {
        /// The payload the business set on the button.
        payload: Option<String>,
        /// The button's label.
        text: Option<String>,
    },
    /// `reaction`: an emoji on a message, or its removal.
    Reaction(Reaction),
    /// `order`: a cart sent from a catalog.
    Order(Order),
    /// `system`: a change Meta reports about the customer (new number, new BSUID, new
    /// security code). Not written by the customer.
    System(System),
    /// `unsupported`: a message type the Cloud API does not deliver (the reason is in `errors`).
    Unsupported {
        /// `unsupported.type`: what the customer actually sent (`poll_creation`, `edit`, …).
        unsupported_type: Option<String>,
    },
    /// `revoke`: the customer deleted a message (coexistence numbers).
    Revoke {
        /// The id of the deleted message.
        original_message_id: Option<String>,
    },
    /// `edit`: the customer edited a message (coexistence numbers).
    Edit {
        /// The id of the edited message.
        original_message_id: Option<String>,
        /// The new message, as Meta sent it (`Null` if absent).
        message: serde_json::Value,
    },
    /// `request_welcome`: the customer opened a chat for the first time.
    RequestWelcome,
    /// Any other `type`, or a modelled type whose object is missing or malformed. The raw
    /// message stays in the event.
    Unknown {
        /// Meta's `type` as sent (empty if there was none).
        type_name: String,
    },
}

/// The message types whose content is read from an object named after the type.
const TYPES_WITH_OBJECT: [&str; 15] = [
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
    "revoke",
    "edit",
];

impl MessageContent {
    /// Meta's `type` string, as sent.
    pub fn type_name(&self) -> &str {
        match self {
            MessageContent::Text { .. } => "text",
            MessageContent::Image(_) => "image",
            MessageContent::Video(_) => "video",
            MessageContent::Audio(_) => "audio",
            MessageContent::Document(_) => "document",
            MessageContent::Sticker(_) => "sticker",
            MessageContent::Location(_) => "location",
            MessageContent::Contacts(_) => "contacts",
            MessageContent::Interactive(_) => "interactive",
            MessageContent::Button { .. } => "button",
            MessageContent::Reaction(_) => "reaction",
            MessageContent::Order(_) => "order",
            MessageContent::System(_) => "system",
            MessageContent::Unsupported { .. } => "unsupported",
            MessageContent::Revoke { .. } => "revoke",
            MessageContent::Edit { .. } => "edit",
            MessageContent::RequestWelcome => "request_welcome",
            MessageContent::Unknown { type_name } => type_name,
        }
    }

    /// True when the type is one Ventana models but its object was missing or malformed.
    pub fn is_malformed(&self) -> bool {
        matches!(self, MessageContent::Unknown { type_name } if TYPES_WITH_OBJECT.contains(&type_name.as_str()))
    }

    /// The media object of an image, video, audio, document or sticker.
    pub fn media(&self) -> Option<&Media> {
        match self {
            MessageContent::Image(m)
            | MessageContent::Video(m)
            | MessageContent::Audio(m)
            | MessageContent::Document(m)
            | MessageContent::Sticker(m) => Some(m),
            _ => None,
        }
    }
}

impl InboundMessage {
    /// Parses a message item, with the matching `contacts[]` element if there is one. Only
    /// `id` (non-empty) and `timestamp` (string or number) are required.
    pub fn parse(item: &str, contact: Option<&str>) -> Result<InboundMessage, ModelError> {
        let w: MessageWire<'_> = parse_item(item)?;
        let id =
            w.id.clone()
                .filter(|s| !s.trim().is_empty())
                .ok_or(ModelError::Missing("id"))?;
        let timestamp = w.timestamp.ok_or(ModelError::Missing("timestamp"))?;
        let profile = contact
            .and_then(|c| parse_item::<ContactWire>(c).ok())
            .and_then(|c| c.profile);
        let content = w.content();
        Ok(InboundMessage {
            id,
            from: w.from,
            from_user_id: w.from_user_id,
            from_parent_user_id: w.from_parent_user_id,
            group_id: w.group_id,
            timestamp,
            context: w.context,
            referral: w.referral,
            errors: w.errors,
            profile_name: profile.as_ref().and_then(|p| p.name.clone()),
            username: profile.and_then(|p| p.username),
            content,
        })
    }

    /// Meta's `type` string, as sent.
    pub fn type_name(&self) -> &str {
        self.content.type_name()
    }

    /// Whether the message counts as the customer writing, and so opens or extends the
    /// customer-service window: everything but `system` and `revoke` messages (reactions,
    /// button taps, edits and unsupported types count).
    pub fn opens_window(&self) -> bool {
        !matches!(self.type_name(), "system" | "revoke")
    }

    /// Whether the message came from an ad or Page post (it carries a `referral`), which also
    /// opens a free-entry-point window.
    pub fn from_referral(&self) -> bool {
        self.referral.is_some()
    }

    /// The words a consent change is looked for in ([`crate::optout`]), by where they came
    /// from: a text body the customer typed, or a tap on a template's quick-reply button.
    /// Interactive replies (a button or list row's title) give `None`: they are the business's
    /// own menu, so a "Cancel" or "Voltar" there is not the customer asking to stop or resume.
    pub fn consent_text(&self) -> Option<ConsentText<'_>> {
        fn non_empty(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|t| !t.trim().is_empty())
        }
        match &self.content {
            MessageContent::Text { body } => Some(ConsentText::Typed(body)),
            MessageContent::Button { payload, text } => {
                let (text, payload) = (non_empty(text), non_empty(payload));
                (text.is_some() || payload.is_some())
                    .then_some(ConsentText::TemplateButton { text, payload })
            }
            _ => None,
        }
    }

    /// The customer's new identifiers, when this is a `system` message saying they changed:
    /// `user_changed_number` gives the new phone number, `user_changed_user_id` the new BSUID.
    pub fn identity_change(&self) -> Option<IdentityChange> {
        let MessageContent::System(s) = &self.content else {
            return None;
        };
        let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        match s.kind.as_deref()? {
            "user_changed_number" | "customer_changed_number" => Some(IdentityChange::Number {
                new_wa_id: non_empty(&s.wa_id)?,
                previous_wa_id: non_empty(&s.customer).or_else(|| non_empty(&self.from)),
                new_user_id: non_empty(&s.user_id),
                previous_user_id: non_empty(&s.previous_user_id),
            }),
            "user_changed_user_id" => {
                let previous_user_id = non_empty(&s.previous_user_id);
                // The new BSUID is `system.user_id`; failing that, the sender's BSUID when it
                // is known to differ from the previous one.
                let new_user_id = non_empty(&s.user_id).or_else(|| {
                    let prev = previous_user_id.as_ref()?;
                    non_empty(&self.from_user_id).filter(|u| u != prev)
                })?;
                Some(IdentityChange::UserId {
                    new_user_id,
                    previous_user_id,
                })
            }
            _ => None,
        }
    }
}

/// A change of the identifiers a customer is known by, reported by a `system` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityChange {
    /// The customer moved to a new phone number (`user_changed_number`).
    Number {
        /// The new phone number (`system.wa_id`).
        new_wa_id: String,
        /// The previous phone number (the message's `from`).
        previous_wa_id: Option<String>,
        /// The new BSUID, when Meta reports it (a number change also issues a new BSUID).
        new_user_id: Option<String>,
        /// The previous BSUID (`system.previous_user_id`).
        previous_user_id: Option<String>,
    },
    /// Only the customer's BSUID changed (`user_changed_user_id`).
    UserId {
        /// The new BSUID.
        new_user_id: String,
        /// The previous BSUID (`system.previous_user_id`).
        previous_user_id: Option<String>,
    },
}

/// `context`: what a message replies to, or how it was forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Context {
    /// The business number the replied-to message came from.
    #[serde(deserialize_with = "lenient::string")]
    pub from: Option<String>,
    /// The id of the replied-to message.
    #[serde(deserialize_with = "lenient::string")]
    pub id: Option<String>,
    /// The message was forwarded.
    #[serde(deserialize_with = "lenient::flag")]
    pub forwarded: bool,
    /// The message was forwarded more than five times.
    #[serde(deserialize_with = "lenient::flag")]
    pub frequently_forwarded: bool,
    /// The product the customer asked about (product enquiry).
    #[serde(deserialize_with = "lenient::object")]
    pub referred_product: Option<ReferredProduct>,
}

/// A catalog product a message refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ReferredProduct {
    /// The catalog id.
    #[serde(deserialize_with = "lenient::string")]
    pub catalog_id: Option<String>,
    /// The product's retailer id (SKU).
    #[serde(deserialize_with = "lenient::string")]
    pub product_retailer_id: Option<String>,
}

/// `referral`: the ad or post a Click-to-WhatsApp customer came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Referral {
    /// URL of the ad or post.
    #[serde(deserialize_with = "lenient::string")]
    pub source_url: Option<String>,
    /// Id of the ad or post.
    #[serde(deserialize_with = "lenient::string")]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(deserialize_with = "lenient::string")]
    pub source_type: Option<String>,
    /// The ad's body text.
    #[serde(deserialize_with = "lenient::string")]
    pub body: Option<String>,
    /// The ad's headline.
    #[serde(deserialize_with = "lenient::string")]
    pub headline: Option<String>,
    /// `image` or `video`.
    #[serde(deserialize_with = "lenient::string")]
    pub media_type: Option<String>,
    /// The ad's image.
    #[serde(deserialize_with = "lenient::string")]
    pub image_url: Option<String>,
    /// The ad's video.
    #[serde(deserialize_with = "lenient::string")]
    pub video_url: Option<String>,
    /// The video's thumbnail.
    #[serde(deserialize_with = "lenient::string")]
    pub thumbnail_url: Option<String>,
    /// The Click-to-WhatsApp click id (absent for Status ad placements).
    #[serde(deserialize_with = "lenient::string")]
    pub ctwa_clid: Option<String>,
    /// The welcome message the ad showed.
    #[serde(deserialize_with = "lenient::object")]
    pub welcome_message: Option<WelcomeMessage>,
}

/// The welcome message of a Click-to-WhatsApp ad.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WelcomeMessage {
    /// Its text.
    #[serde(deserialize_with = "lenient::string")]
    pub text: Option<String>,
}

/// An image, video, audio, document or sticker. The file itself is fetched with the id
/// (`url`, when present, still needs the access token and expires quickly).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Media {
    /// The media id.
    #[serde(deserialize_with = "lenient::string")]
    pub id: Option<String>,
    /// Its MIME type.
    #[serde(deserialize_with = "lenient::string")]
    pub mime_type: Option<String>,
    /// Its SHA-256 (base64).
    #[serde(deserialize_with = "lenient::string")]
    pub sha256: Option<String>,
    /// The caption (image, video, document).
    #[serde(deserialize_with = "lenient::string")]
    pub caption: Option<String>,
    /// The file name (document).
    #[serde(deserialize_with = "lenient::string")]
    pub filename: Option<String>,
    /// A short-lived download URL, when Meta includes one.
    #[serde(deserialize_with = "lenient::string")]
    pub url: Option<String>,
    /// The audio is a voice note.
    #[serde(deserialize_with = "lenient::flag")]
    pub voice: bool,
    /// The sticker is animated.
    #[serde(deserialize_with = "lenient::flag")]
    pub animated: bool,
}

/// A location.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Location {
    /// Latitude in degrees.
    #[serde(deserialize_with = "lenient::float")]
    pub latitude: Option<f64>,
    /// Longitude in degrees.
    #[serde(deserialize_with = "lenient::float")]
    pub longitude: Option<f64>,
    /// The place's name.
    #[serde(deserialize_with = "lenient::string")]
    pub name: Option<String>,
    /// The place's address.
    #[serde(deserialize_with = "lenient::string")]
    pub address: Option<String>,
    /// The place's URL.
    #[serde(deserialize_with = "lenient::string")]
    pub url: Option<String>,
}

/// A shared contact card; every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SharedContact {
    /// The contact's name.
    #[serde(deserialize_with = "lenient::object")]
    pub name: Option<ContactName>,
    /// Phone numbers.
    #[serde(deserialize_with = "lenient::list")]
    pub phones: Vec<ContactPhone>,
    /// Email addresses.
    #[serde(deserialize_with = "lenient::list")]
    pub emails: Vec<ContactEmail>,
    /// Organisation.
    #[serde(deserialize_with = "lenient::object")]
    pub org: Option<ContactOrg>,
    /// Web addresses.
    #[serde(deserialize_with = "lenient::list")]
    pub urls: Vec<ContactUrl>,
    /// Postal addresses.
    #[serde(deserialize_with = "lenient::list")]
    pub addresses: Vec<ContactAddress>,
    /// Birthday (`YYYY-MM-DD`).
    #[serde(deserialize_with = "lenient::string")]
    pub birthday: Option<String>,
}

/// A shared contact's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContactName {
    /// The full name as displayed.
    #[serde(deserialize_with = "lenient::string")]
    pub formatted_name: Option<String>,
    /// First name.
    #[serde(deserialize_with = "lenient::string")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(deserialize_with = "lenient::string")]
    pub last_name: Option<String>,
    /// Middle name.
    #[serde(deserialize_with = "lenient::string")]
    pub middle_name: Option<String>,
    /// Name suffix.
    #[serde(deserialize_with = "lenient::string")]
    pub suffix: Option<String>,
    /// Name prefix.
    #[serde(deserialize_with = "lenient::string")]
    pub prefix: Option<String>,
}

/// A shared contact's phone number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContactPhone {
    /// The number as written.
    #[serde(deserialize_with = "lenient::string")]
    pub phone: Option<String>,
    /// Its WhatsApp id, when it is on WhatsApp.
    #[serde(deserialize_with = "lenient::string")]
    pub wa_id: Option<String>,
    /// `CELL`, `HOME`, `WORK`, … (`type`).
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub kind: Option<String>,
}

/// A shared contact's email address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContactEmail {
    /// The address.
    #[serde(deserialize_with = "lenient::string")]
    pub email: Option<String>,
    /// `HOME`, `WORK`, … (`type`).
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub kind: Option<String>,
}

/// A shared contact's organisation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContactOrg {
    /// Company.
    #[serde(deserialize_with = "lenient::string")]
    pub company: Option<String>,
    /// Department.
    #[serde(deserialize_with = "lenient::string")]
    pub department: Option<String>,
    /// Job title.
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
}

/// A shared contact's web address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContactUrl {
    /// The URL.
    #[serde(deserialize_with = "lenient::string")]
    pub url: Option<String>,
    /// `HOME`, `WORK`, … (`type`).
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub kind: Option<String>,
}

/// A shared contact's postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ContactAddress {
    /// Street.
    #[serde(deserialize_with = "lenient::string")]
    pub street: Option<String>,
    /// City.
    #[serde(deserialize_with = "lenient::string")]
    pub city: Option<String>,
    /// State or region.
    #[serde(deserialize_with = "lenient::string")]
    pub state: Option<String>,
    /// Postal code.
    #[serde(deserialize_with = "lenient::string")]
    pub zip: Option<String>,
    /// Country name.
    #[serde(deserialize_with = "lenient::string")]
    pub country: Option<String>,
    /// ISO country code.
    #[serde(deserialize_with = "lenient::string")]
    pub country_code: Option<String>,
    /// `HOME`, `WORK`, … (`type`).
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    pub kind: Option<String>,
}

/// The customer's answer to an interactive message, by `interactive.type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interactive {
    /// `button_reply`: a reply button was tapped.
    ButtonReply {
        /// The button's id, set by the business.
        id: Option<String>,
        /// The button's label.
        title: Option<String>,
    },
    /// `list_reply`: a list row was chosen.
    ListReply {
        /// The row's id, set by the business.
        id: Option<String>,
        /// The row's title.
        title: Option<String>,
        /// The row's description.
        description: Option<String>,
    },
    /// `nfm_reply`: a Flow (or address message) was completed.
    NfmReply {
        /// `flow` or `address_message`.
        name: Option<String>,
        /// The text shown in the chat (`Sent`).
        body: Option<String>,
        /// The answers, as the JSON string Meta sends (empty if absent).
        response_json: String,
    },
    /// Any other `interactive.type` (e.g. `call_permission_reply`), or a known type whose
    /// reply object is missing.
    Other {
        /// `interactive.type` as sent (empty if absent).
        kind: String,
        /// The `interactive` object, raw JSON.
        raw: String,
    },
}

impl Interactive {
    /// `interactive.type` as sent.
    pub fn kind(&self) -> &str {
        match self {
            Interactive::ButtonReply { .. } => "button_reply",
            Interactive::ListReply { .. } => "list_reply",
            Interactive::NfmReply { .. } => "nfm_reply",
            Interactive::Other { kind, .. } => kind,
        }
    }

    /// The title of the chosen button or list row.
    pub fn reply_title(&self) -> Option<&str> {
        match self {
            Interactive::ButtonReply { title, .. } | Interactive::ListReply { title, .. } => {
                title.as_deref()
            }
            _ => None,
        }
    }

    /// The id of the chosen button or list row.
    pub fn reply_id(&self) -> Option<&str> {
        match self {
            Interactive::ButtonReply { id, .. } | Interactive::ListReply { id, .. } => {
                id.as_deref()
            }
            _ => None,
        }
    }

    fn parse(raw: &RawValue) -> Option<Interactive> {
        let w: InteractiveWire = lenient::parse_object(raw)?;
        let reply =
            |r: Option<Box<RawValue>>| r.and_then(|r| lenient::parse_object::<ReplyWire>(&r));
        let parsed = match w.kind.as_str() {
            "button_reply" => reply(w.button_reply).map(|r| Interactive::ButtonReply {
                id: r.id,
                title: r.title,
            }),
            "list_reply" => reply(w.list_reply).map(|r| Interactive::ListReply {
                id: r.id,
                title: r.title,
                description: r.description,
            }),
            "nfm_reply" => w
                .nfm_reply
                .and_then(|r| lenient::parse_object::<NfmWire>(&r))
                .map(|r| Interactive::NfmReply {
                    name: r.name,
                    body: r.body,
                    response_json: r.response_json,
                }),
            _ => None,
        };
        Some(parsed.unwrap_or_else(|| Interactive::Other {
            kind: w.kind,
            raw: raw.get().to_owned(),
        }))
    }
}

/// A reaction to a message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Reaction {
    /// The message reacted to.
    #[serde(deserialize_with = "lenient::string")]
    pub message_id: Option<String>,
    /// The emoji, as sent; empty or absent when the customer removed their reaction.
    #[serde(deserialize_with = "lenient::string")]
    pub emoji: Option<String>,
}

impl Reaction {
    /// True when the customer removed their reaction (empty or missing emoji).
    pub fn is_removal(&self) -> bool {
        self.emoji.as_deref().is_none_or(str::is_empty)
    }
}

/// A cart sent from a catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Order {
    /// The catalog id.
    #[serde(deserialize_with = "lenient::string")]
    pub catalog_id: Option<String>,
    /// The note the customer added.
    #[serde(deserialize_with = "lenient::string")]
    pub text: Option<String>,
    /// The items.
    #[serde(deserialize_with = "lenient::list")]
    pub product_items: Vec<ProductItem>,
}

/// One line of an order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ProductItem {
    /// The product's retailer id (SKU).
    #[serde(deserialize_with = "lenient::string")]
    pub product_retailer_id: Option<String>,
    /// How many.
    #[serde(deserialize_with = "lenient::int")]
    pub quantity: Option<i64>,
    /// The unit price, as the exact decimal text Meta sent (`30`, `12.99`): never a float.
    #[serde(deserialize_with = "lenient::number_text")]
    pub item_price: Option<String>,
    /// ISO 4217 currency code.
    #[serde(deserialize_with = "lenient::string")]
    pub currency: Option<String>,
}

/// A `system` message: something Meta reports about the customer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct System {
    /// The text shown in the chat.
    pub body: Option<String>,
    /// `system.type`: `user_changed_number`, `user_changed_user_id`,
    /// `customer_identity_changed`, … as sent.
    pub kind: Option<String>,
    /// The customer's new phone number (`wa_id`, or the older `new_wa_id`).
    pub wa_id: Option<String>,
    /// The customer's previous phone number (`customer`, older API versions).
    pub customer: Option<String>,
    /// The customer's new BSUID (`user_id`).
    pub user_id: Option<String>,
    /// The customer's new parent BSUID (`parent_user_id`).
    pub parent_user_id: Option<String>,
    /// The customer's previous BSUID (`previous_user_id`).
    pub previous_user_id: Option<String>,
    /// The customer's previous parent BSUID (`previous_parent_user_id`).
    pub previous_parent_user_id: Option<String>,
    /// The new security identity, for `customer_identity_changed` (read from `system.identity`
    /// or from the message's own `identity`).
    pub identity: Option<Identity>,
}

/// A customer's security identity (their encryption key changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Identity {
    /// Whether the change was acknowledged.
    #[serde(deserialize_with = "lenient::opt_flag")]
    pub acknowledged: Option<bool>,
    /// When the identity was created (unix seconds).
    #[serde(deserialize_with = "lenient_unix")]
    pub created_timestamp: Option<i64>,
    /// The identity hash.
    #[serde(deserialize_with = "lenient::string")]
    pub hash: Option<String>,
}

// ---- wire shapes ----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct MessageWire<'a> {
    #[serde(deserialize_with = "lenient::string")]
    id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    from: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    from_user_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    from_parent_user_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    group_id: Option<String>,
    #[serde(deserialize_with = "lenient_unix")]
    timestamp: Option<i64>,
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    kind: Option<String>,
    #[serde(deserialize_with = "lenient::object")]
    context: Option<Context>,
    #[serde(deserialize_with = "lenient::object")]
    referral: Option<Referral>,
    #[serde(deserialize_with = "lenient::list")]
    errors: Vec<ApiError>,
    #[serde(deserialize_with = "lenient::object")]
    identity: Option<Identity>,
    // The type-named objects, kept raw until the type says which one to read.
    #[serde(borrow)]
    text: Option<&'a RawValue>,
    #[serde(borrow)]
    image: Option<&'a RawValue>,
    #[serde(borrow)]
    video: Option<&'a RawValue>,
    #[serde(borrow)]
    audio: Option<&'a RawValue>,
    #[serde(borrow)]
    document: Option<&'a RawValue>,
    #[serde(borrow)]
    sticker: Option<&'a RawValue>,
    #[serde(borrow)]
    location: Option<&'a RawValue>,
    #[serde(borrow)]
    contacts: Option<&'a RawValue>,
    #[serde(borrow)]
    interactive: Option<&'a RawValue>,
    #[serde(borrow)]
    button: Option<&'a RawValue>,
    #[serde(borrow)]
    reaction: Option<&'a RawValue>,
    #[serde(borrow)]
    order: Option<&'a RawValue>,
    #[serde(borrow)]
    system: Option<&'a RawValue>,
    #[serde(borrow)]
    unsupported: Option<&'a RawValue>,
    #[serde(borrow)]
    revoke: Option<&'a RawValue>,
    #[serde(borrow)]
    edit: Option<&'a RawValue>,
}

impl MessageWire<'_> {
    /// The content named by `type`; `Unknown` when the type is not modelled or its object is
    /// missing or malformed.
    fn content(&self) -> MessageContent {
        let kind = self.kind.as_deref().unwrap_or_default();
        let media = |raw: Option<&RawValue>| raw.and_then(lenient::parse_object::<Media>);
        let content = match kind {
            "text" => self
                .text
                .and_then(lenient::parse_object::<TextWire>)
                .map(|t| MessageContent::Text { body: t.body }),
            "image" => media(self.image).map(MessageContent::Image),
            "video" => media(self.video).map(MessageContent::Video),
            "audio" => media(self.audio).map(MessageContent::Audio),
            "document" => media(self.document).map(MessageContent::Document),
            "sticker" => media(self.sticker).map(MessageContent::Sticker),
            "location" => self
                .location
                .and_then(lenient::parse_object)
                .map(MessageContent::Location),
            "contacts" => self
                .contacts
                .filter(|r| r.get().trim_start().starts_with('['))
                .map(|r| MessageContent::Contacts(lenient::parse_list(r))),
            "interactive" => self
                .interactive
                .and_then(Interactive::parse)
                .map(MessageContent::Interactive),
            "button" => self
                .button
                .and_then(lenient::parse_object::<ButtonWire>)
                .map(|b| MessageContent::Button {
                    payload: b.payload,
                    text: b.text,
                }),
            "reaction" => self
                .reaction
                .and_then(lenient::parse_object)
                .map(MessageContent::Reaction),
            "order" => self
                .order
                .and_then(lenient::parse_object)
                .map(MessageContent::Order),
            "system" => self
                .system
                .and_then(lenient::parse_object::<SystemWire>)
                .map(|s| MessageContent::System(s.into_system(self.identity.clone()))),
            // The `unsupported` object is optional: Meta often sends only the errors.
            "unsupported" => Some(MessageContent::Unsupported {
                unsupported_type: self
                    .unsupported
                    .and_then(lenient::parse_object::<KindWire>)
                    .and_then(|u| u.kind),
            }),
            "revoke" => self
                .revoke
                .and_then(lenient::parse_object::<RevokeWire>)
                .map(|r| MessageContent::Revoke {
                    original_message_id: r.original_message_id,
                }),
            "edit" => self
                .edit
                .and_then(lenient::parse_object::<EditWire>)
                .map(|e| MessageContent::Edit {
                    original_message_id: e.original_message_id,
                    message: e.message,
                }),
            "request_welcome" => Some(MessageContent::RequestWelcome),
            _ => None,
        };
        content.unwrap_or_else(|| MessageContent::Unknown {
            type_name: kind.to_owned(),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TextWire {
    #[serde(deserialize_with = "lenient::text")]
    body: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ButtonWire {
    #[serde(deserialize_with = "lenient::string")]
    payload: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    text: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KindWire {
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    kind: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RevokeWire {
    #[serde(deserialize_with = "lenient::string")]
    original_message_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EditWire {
    #[serde(deserialize_with = "lenient::string")]
    original_message_id: Option<String>,
    message: serde_json::Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InteractiveWire {
    #[serde(rename = "type", deserialize_with = "lenient::text")]
    kind: String,
    button_reply: Option<Box<RawValue>>,
    list_reply: Option<Box<RawValue>>,
    nfm_reply: Option<Box<RawValue>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ReplyWire {
    #[serde(deserialize_with = "lenient::string")]
    id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    title: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NfmWire {
    #[serde(deserialize_with = "lenient::string")]
    name: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    body: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    response_json: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SystemWire {
    #[serde(deserialize_with = "lenient::string")]
    body: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient::string")]
    kind: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    wa_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    new_wa_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    customer: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    user_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    parent_user_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    previous_user_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    previous_parent_user_id: Option<String>,
    #[serde(deserialize_with = "lenient::object")]
    identity: Option<Identity>,
}

impl SystemWire {
    fn into_system(self, message_identity: Option<Identity>) -> System {
        System {
            body: self.body,
            kind: self.kind,
            wa_id: self.wa_id.or(self.new_wa_id),
            customer: self.customer,
            user_id: self.user_id,
            parent_user_id: self.parent_user_id,
            previous_user_id: self.previous_user_id,
            previous_parent_user_id: self.previous_parent_user_id,
            identity: self.identity.or(message_identity),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ContactWire {
    #[serde(deserialize_with = "lenient::object")]
    profile: Option<ProfileWire>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProfileWire {
    #[serde(deserialize_with = "lenient::string")]
    name: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    username: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(extra: &str) -> InboundMessage {
        let item =
            format!(r#"{{"from":"16505551234","id":"wamid.A","timestamp":"1749416383"{extra}}}"#);
        InboundMessage::parse(&item, None).unwrap()
    }

    #[test]
    fn id_and_timestamp_are_all_that_is_required() {
        let m = InboundMessage::parse(r#"{"id":"wamid.A","timestamp":1749416383}"#, None).unwrap();
        assert_eq!(m.timestamp, 1_749_416_383);
        assert_eq!(m.from, None);
        assert_eq!(
            m.content,
            MessageContent::Unknown {
                type_name: String::new()
            }
        );
        assert!(m.opens_window());

        for (item, field) in [
            (r#"{"timestamp":"1"}"#, "id"),
            (r#"{"id":"","timestamp":"1"}"#, "id"),
            (r#"{"id":"wamid.A"}"#, "timestamp"),
            (r#"{"id":"wamid.A","timestamp":"yesterday"}"#, "timestamp"),
        ] {
            match InboundMessage::parse(item, None) {
                Err(ModelError::Missing(f)) => assert_eq!(f, field, "{item}"),
                other => panic!("{item}: {other:?}"),
            }
        }
        assert!(matches!(
            InboundMessage::parse("[]", None),
            Err(ModelError::Json(_))
        ));
        assert!(matches!(
            InboundMessage::parse("{", None),
            Err(ModelError::Json(_))
        ));
    }

    #[test]
    fn unknown_types_are_kept_by_name() {
        let m = msg(r#","type":"poll_creation","poll_creation":{"q":"?"}"#);
        assert_eq!(m.type_name(), "poll_creation");
        assert!(!m.content.is_malformed());
        assert!(m.opens_window());
        assert_eq!(m.consent_text(), None);
    }

    #[test]
    fn a_missing_or_malformed_type_object_maps_to_unknown() {
        for extra in [
            r#","type":"image""#,
            r#","type":"image","image":"oops""#,
            r#","type":"image","image":["x"]"#,
            r#","type":"image","image":null"#,
        ] {
            let m = msg(extra);
            assert_eq!(
                m.content,
                MessageContent::Unknown {
                    type_name: "image".into()
                },
                "{extra}"
            );
            assert!(m.content.is_malformed());
            assert_eq!(m.type_name(), "image");
        }
        // A malformed system message still does not open the window.
        let m = msg(r#","type":"system","system":42"#);
        assert!(m.content.is_malformed());
        assert!(!m.opens_window());
        assert_eq!(m.identity_change(), None);
        // Contacts must be an array.
        assert!(
            msg(r#","type":"contacts","contacts":{"name":{}}"#)
                .content
                .is_malformed()
        );
    }

    #[test]
    fn odd_field_shapes_do_not_fail_the_message() {
        let m = msg(
            r#","from_user_id":17,"context":"nope","referral":[1],"errors":[{"title":"no code"},{"code":1}],"type":"audio","audio":{"id":987,"voice":"true","mime_type":null}"#,
        );
        assert_eq!(m.from_user_id.as_deref(), Some("17"));
        assert_eq!(m.context, None);
        assert!(!m.from_referral());
        assert_eq!(m.errors.len(), 1);
        let media = m.content.media().unwrap();
        assert_eq!(media.id.as_deref(), Some("987"));
        assert!(media.voice);
        assert_eq!(media.mime_type, None);
    }

    #[test]
    fn text_and_profile_come_through() {
        let item = r#"{"from":"1","id":"wamid.A","timestamp":"5","type":"text","text":{"body":"STOP"},"context":{"from":"1555","id":"wamid.B","referred_product":{"catalog_id":"c","product_retailer_id":"p"}}}"#;
        let contact = r#"{"profile":{"name":"Sheena","username":"@sheena"},"wa_id":"1"}"#;
        let m = InboundMessage::parse(item, Some(contact)).unwrap();
        assert_eq!(m.consent_text(), Some(ConsentText::Typed("STOP")));
        assert_eq!(m.profile_name.as_deref(), Some("Sheena"));
        assert_eq!(m.username.as_deref(), Some("@sheena"));
        let ctx = m.context.unwrap();
        assert_eq!(ctx.id.as_deref(), Some("wamid.B"));
        assert_eq!(
            ctx.referred_product.unwrap().product_retailer_id.as_deref(),
            Some("p")
        );
        // A broken contact is ignored, not an error.
        let m = InboundMessage::parse(item, Some("not json")).unwrap();
        assert_eq!(m.profile_name, None);
        // A text object without a body is an empty text.
        assert_eq!(
            msg(r#","type":"text","text":{}"#).content,
            MessageContent::Text {
                body: String::new()
            }
        );
    }

    #[test]
    fn reactions_without_emoji_are_removals() {
        let r = |extra: &str| match msg(extra).content {
            MessageContent::Reaction(r) => r,
            other => panic!("{other:?}"),
        };
        assert!(
            !r(r#","type":"reaction","reaction":{"message_id":"m","emoji":"👍"}"#).is_removal()
        );
        assert!(r(r#","type":"reaction","reaction":{"message_id":"m","emoji":""}"#).is_removal());
        assert!(r(r#","type":"reaction","reaction":{"message_id":"m"}"#).is_removal());
        assert!(r(r#","type":"reaction","reaction":{"message_id":"m","emoji":null}"#).is_removal());
        assert!(msg(r#","type":"reaction","reaction":{"emoji":""}"#).opens_window());
    }

    #[test]
    fn consent_text_is_typed_text_or_a_template_button_never_an_interactive_reply() {
        let button = |text, payload| Some(ConsentText::TemplateButton { text, payload });
        let m =
            msg(r#","type":"button","button":{"payload":"Unsubscribe","text":"Stop promotions"}"#);
        assert_eq!(
            m.consent_text(),
            button(Some("Stop promotions"), Some("Unsubscribe"))
        );
        let m = msg(r#","type":"button","button":{"payload":"Unsubscribe","text":" "}"#);
        assert_eq!(m.consent_text(), button(None, Some("Unsubscribe")));
        let m = msg(r#","type":"button","button":{"payload":"STOP"}"#);
        assert_eq!(m.consent_text(), button(None, Some("STOP")));
        let m = msg(r#","type":"button","button":{"text":"Parar promoções","payload":""}"#);
        assert_eq!(m.consent_text(), button(Some("Parar promoções"), None));
        assert_eq!(
            msg(r#","type":"button","button":{}"#).consent_text(),
            None,
            "a button with neither text nor payload says nothing"
        );
        // Button and list replies are the business's own menu: their titles are not the
        // customer's words.
        let m = msg(
            r#","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"r1","title":"Opt out","description":"d"}}"#,
        );
        assert_eq!(m.consent_text(), None);
        let MessageContent::Interactive(i) = &m.content else {
            panic!()
        };
        assert_eq!(i.reply_id(), Some("r1"));
        assert_eq!(i.reply_title(), Some("Opt out"));
        assert_eq!(i.kind(), "list_reply");
        let m = msg(
            r#","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"stop","title":"STOP"}}"#,
        );
        assert_eq!(m.consent_text(), None);
        let m = msg(r#","type":"image","image":{"id":"1","caption":"STOP"}"#);
        assert_eq!(m.consent_text(), None, "captions are not keywords");
    }

    #[test]
    fn interactive_replies_are_typed_and_others_kept_raw() {
        let m = msg(
            r#","type":"interactive","interactive":{"type":"nfm_reply","nfm_reply":{"name":"flow","body":"Sent","response_json":"{\"a\":1}"}}"#,
        );
        assert_eq!(
            m.content,
            MessageContent::Interactive(Interactive::NfmReply {
                name: Some("flow".into()),
                body: Some("Sent".into()),
                response_json: r#"{"a":1}"#.into()
            })
        );
        let m = msg(
            r#","type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"accept"}}"#,
        );
        let MessageContent::Interactive(Interactive::Other { kind, raw }) = &m.content else {
            panic!("{:?}", m.content)
        };
        assert_eq!(kind, "call_permission_reply");
        assert!(raw.contains(r#""response":"accept""#));
        assert_eq!(m.consent_text(), None);
        // A known interactive type without its reply object is kept as Other.
        let m = msg(r#","type":"interactive","interactive":{"type":"button_reply"}"#);
        assert!(matches!(
            m.content,
            MessageContent::Interactive(Interactive::Other { .. })
        ));
    }

    #[test]
    fn order_prices_keep_their_decimals() {
        let m = msg(
            r#","type":"order","order":{"catalog_id":"1","product_items":[{"product_retailer_id":"A","quantity":"2","item_price":12.99,"currency":"USD"},{"product_retailer_id":"B","quantity":1,"item_price":30,"currency":"USD"},{"product_retailer_id":"C","item_price":0.10}]}"#,
        );
        let MessageContent::Order(o) = m.content else {
            panic!()
        };
        let prices: Vec<_> = o
            .product_items
            .iter()
            .map(|i| i.item_price.as_deref())
            .collect();
        assert_eq!(prices, [Some("12.99"), Some("30"), Some("0.10")]);
        assert_eq!(o.product_items[0].quantity, Some(2));
        assert_eq!(o.text, None);
    }

    #[test]
    fn system_messages_report_identity_changes_and_do_not_open_the_window() {
        let m = msg(
            r#","type":"system","system":{"body":"changed","wa_id":"12195555358","type":"user_changed_number","previous_user_id":"US.1","user_id":"US.2"}"#,
        );
        assert!(!m.opens_window());
        assert_eq!(
            m.identity_change(),
            Some(IdentityChange::Number {
                new_wa_id: "12195555358".into(),
                previous_wa_id: Some("16505551234".into()),
                new_user_id: Some("US.2".into()),
                previous_user_id: Some("US.1".into()),
            })
        );
        // Older API versions: new_wa_id and customer.
        let m = msg(
            r#","type":"system","system":{"new_wa_id":"999","customer":"111","type":"customer_changed_number"}"#,
        );
        assert_eq!(
            m.identity_change(),
            Some(IdentityChange::Number {
                new_wa_id: "999".into(),
                previous_wa_id: Some("111".into()),
                new_user_id: None,
                previous_user_id: None,
            })
        );
        // A number change without the new number is no usable change.
        let m = msg(r#","type":"system","system":{"type":"user_changed_number"}"#);
        assert_eq!(m.identity_change(), None);
    }

    #[test]
    fn user_id_changes_give_the_new_bsuid() {
        let m = msg(
            r#","type":"system","system":{"type":"user_changed_user_id","user_id":"US.NEW","previous_user_id":"US.OLD"}"#,
        );
        assert_eq!(
            m.identity_change(),
            Some(IdentityChange::UserId {
                new_user_id: "US.NEW".into(),
                previous_user_id: Some("US.OLD".into())
            })
        );
        // Without system.user_id, the sender's BSUID counts only if it differs from the old one.
        let m = msg(
            r#","from_user_id":"US.NEW","type":"system","system":{"type":"user_changed_user_id","previous_user_id":"US.OLD"}"#,
        );
        assert!(
            matches!(m.identity_change(), Some(IdentityChange::UserId { new_user_id, .. }) if new_user_id == "US.NEW")
        );
        let m = msg(
            r#","from_user_id":"US.OLD","type":"system","system":{"type":"user_changed_user_id","previous_user_id":"US.OLD"}"#,
        );
        assert_eq!(m.identity_change(), None);
        let m = msg(
            r#","from_user_id":"US.X","type":"system","system":{"type":"user_changed_user_id"}"#,
        );
        assert_eq!(m.identity_change(), None);
    }

    #[test]
    fn identity_is_read_from_the_message_or_the_system_object() {
        let m = msg(
            r#","identity":{"acknowledged":true,"created_timestamp":"1697044706","hash":"h"},"type":"system","system":{"type":"customer_identity_changed"}"#,
        );
        let MessageContent::System(s) = &m.content else {
            panic!()
        };
        assert_eq!(
            s.identity,
            Some(Identity {
                acknowledged: Some(true),
                created_timestamp: Some(1_697_044_706),
                hash: Some("h".into())
            })
        );
        assert_eq!(m.identity_change(), None);
        let m = msg(
            r#","type":"system","system":{"type":"customer_identity_changed","identity":{"hash":"in"}}"#,
        );
        let MessageContent::System(s) = &m.content else {
            panic!()
        };
        assert_eq!(s.identity.as_ref().unwrap().hash.as_deref(), Some("in"));
    }

    #[test]
    fn revoke_edit_unsupported_and_welcome() {
        let m = msg(r#","type":"revoke","revoke":{"original_message_id":"wamid.O"}"#);
        assert!(!m.opens_window());
        assert_eq!(
            m.content,
            MessageContent::Revoke {
                original_message_id: Some("wamid.O".into())
            }
        );
        let m = msg(
            r#","type":"edit","edit":{"original_message_id":"wamid.O","message":{"type":"text","text":{"body":"new"}}}"#,
        );
        assert!(m.opens_window());
        let MessageContent::Edit { message, .. } = &m.content else {
            panic!()
        };
        assert_eq!(message["text"]["body"], "new");
        let m = msg(r#","type":"unsupported""#);
        assert_eq!(
            m.content,
            MessageContent::Unsupported {
                unsupported_type: None
            }
        );
        assert!(m.opens_window());
        let m = msg(r#","type":"request_welcome""#);
        assert_eq!(m.content, MessageContent::RequestWelcome);
        assert_eq!(m.type_name(), "request_welcome");
    }

    #[test]
    fn shared_contacts_are_all_optional() {
        let m = msg(
            r#","type":"contacts","contacts":[{"name":{"formatted_name":"Lucía Gómez"},"phones":[{"phone":"+1 555","wa_id":"1555","type":"MOBILE"}],"emails":[{"email":"a@b.c","type":"WORK"}],"org":{"company":"G"},"urls":[{"url":"https://x"}],"addresses":[{"city":"Menlo Park","country_code":"US"}],"birthday":"2000-01-01"},{}]"#,
        );
        let MessageContent::Contacts(cs) = &m.content else {
            panic!()
        };
        assert_eq!(cs.len(), 2);
        assert_eq!(
            cs[0].name.as_ref().unwrap().formatted_name.as_deref(),
            Some("Lucía Gómez")
        );
        assert_eq!(cs[0].phones[0].kind.as_deref(), Some("MOBILE"));
        assert_eq!(cs[0].emails[0].email.as_deref(), Some("a@b.c"));
        assert_eq!(cs[0].addresses[0].city.as_deref(), Some("Menlo Park"));
        assert_eq!(cs[1], SharedContact::default());
    }
}
