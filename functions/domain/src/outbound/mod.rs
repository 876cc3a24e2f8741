//! Outbound messages: what a client asks Ventana to send, and what came of sending it.
//!
//! - [`SendRequest::parse`] takes a Cloud API `POST /{version}/{phone_number_id}/messages`
//!   body unchanged and validates it against Meta's limits (reference digest §7, §9.7), so a
//!   request that Meta would refuse is refused before it is recorded or queued, with the field
//!   named ([`SendError`]) and a Cloud API error body ([`cloud_api_error_body`]).
//! - [`GraphOutcome`] is what a Graph API attempt came to, and [`classify`] decides what to do
//!   next from Meta's error-code table ([`CODE_TABLE`], digest §8.2): done, retry, hold the
//!   recipient, refuse for good, or reconcile a send that may have gone out.
//!
//! - [`send::SendRecord`] is a send from acceptance to its last status; [`accept::accept`] is
//!   send-api's use case and [`deliver::Deliverer`] the deliver-worker's, both over ports.
//!
//! Everything here is pure or generic over ports: the HTTP client lives in `wa-graph`.

pub mod accept;
mod check;
pub mod deliver;
mod error;
mod interactive;
mod outcome;
pub mod policy;
mod request;
pub mod send;
mod template;

pub use error::{SendError, cloud_api_error_body};
pub use interactive::InteractiveKind;
pub use outcome::{
    Action, Advice, CODE_TABLE, CodeRule, Disposition, GraphOutcome, PAIR_BACKOFF_CAP_SECS,
    TransportFailure, classify, code_rule, pair_backoff_secs,
};
pub use request::{
    CALLBACK_DATA_MAX, MessageKind, MessagesRequest, ReadReceipt, Recipient, SendRequest,
    TEXT_BODY_MAX,
};
pub use send::{
    IDEMPOTENCY_SECS, Idempotency, SEND_ID_PREFIX, SendFailure, SendId, SendKind, SendRecord,
    SendState, StatusEffect, StoredAnswer, idempotency_hash, public_status,
};

/// Meta's limits that [`SendRequest::parse`] enforces, in characters (not bytes) unless
/// said otherwise.
pub mod limits {
    pub use super::check::CAPTION_MAX;
    pub use super::interactive::{
        BODY_MAX, BUTTON_ID_MAX, BUTTON_TITLE_MAX, BUTTONS_MAX, CTA_DISPLAY_TEXT_MAX, FLOW_CTA_MAX,
        FOOTER_MAX, HEADER_TEXT_MAX, LIST_BODY_MAX, LIST_BUTTON_MAX, PRODUCTS_MAX,
        ROW_DESCRIPTION_MAX, ROW_ID_MAX, ROW_TITLE_MAX, ROWS_MAX, SECTION_TITLE_MAX, SECTIONS_MAX,
    };
    pub use super::request::{CALLBACK_DATA_MAX, TEXT_BODY_MAX};
    pub use super::template::{BUTTON_INDEX_MAX, COUPON_CODE_MAX, NAME_MAX as TEMPLATE_NAME_MAX};
}
