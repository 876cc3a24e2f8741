//! What Meta's answers look like: error bodies, ids, and JSON escaped the way Meta escapes it.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// One Cloud API error as the sandbox reports it, synchronously or in a `failed` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetaError {
    /// The HTTP status of a synchronous answer.
    pub http_status: u16,
    /// Meta's error code.
    pub code: i64,
    /// `error_subcode`, when Meta gives one.
    pub subcode: Option<i64>,
    /// The short title of a webhook error.
    pub title: &'static str,
    /// `message` of a synchronous error (Meta prefixes the code).
    pub message: &'static str,
    /// `error_data.details`.
    pub details: &'static str,
}

/// Meta's wording for the codes the sandbox can be told to fail with (paraphrased from the
/// Cloud API error-code page); unknown codes get a generic wording and HTTP 400.
pub(crate) fn meta_error(code: i64) -> MetaError {
    let (http_status, subcode, title, message, details) = match code {
        130429 => (
            400,
            Some(2494055),
            "Rate limit hit",
            "(#130429) Rate limit hit",
            "Cloud API message throughput has been reached.",
        ),
        131047 => (
            400,
            Some(2494010),
            "Re-engagement message",
            "(#131047) Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        ),
        131056 => (
            400,
            Some(2494081),
            "(Business Account, Consumer Account) pair rate limit hit",
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
        ),
        131050 => (
            400,
            None,
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business",
            "(#131050) Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business",
            "The recipient has opted out of marketing messages from this business.",
        ),
        131026 => (
            400,
            None,
            "Message undeliverable",
            "(#131026) Message undeliverable",
            "Message Undeliverable.",
        ),
        131049 => (
            400,
            None,
            "This message was not delivered to maintain healthy ecosystem engagement.",
            "(#131049) This message was not delivered to maintain healthy ecosystem engagement.",
            "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
        ),
        130472 => (
            400,
            None,
            "User's number is part of an experiment",
            "(#130472) User's number is part of an experiment",
            "Failed to send message because this user's phone number is part of an experiment",
        ),
        190 => (
            401,
            Some(463),
            "Error validating access token",
            "Error validating access token: Session has expired.",
            "The access token has expired.",
        ),
        131000 => (
            500,
            None,
            "Something went wrong",
            "(#131000) Something went wrong",
            "Something went wrong. Please try again later.",
        ),
        _ => (
            400,
            None,
            "Message failed to send",
            "Message failed to send",
            "The sandbox Graph API was told to fail this message.",
        ),
    };
    MetaError {
        http_status,
        code,
        subcode,
        title,
        message,
        details,
    }
}

/// A synchronous Cloud API error body:
/// `{"error":{"message","type":"OAuthException","code","error_data","error_subcode","fbtrace_id"}}`.
pub(crate) fn sync_error_body(e: &MetaError, fbtrace_id: &str) -> Value {
    let mut error = json!({
        "message": e.message,
        "type": "OAuthException",
        "code": e.code,
        "error_data": {"messaging_product": "whatsapp", "details": e.details},
        "fbtrace_id": fbtrace_id,
    });
    if let (Some(sub), Some(obj)) = (e.subcode, error.as_object_mut()) {
        obj.insert("error_subcode".into(), json!(sub));
    }
    json!({ "error": error })
}

/// A Cloud API error body with a message of the sandbox's own (code 100, 190, 131059).
pub(crate) fn plain_error_body(code: i64, message: &str, fbtrace_id: &str) -> Value {
    json!({"error": {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": fbtrace_id,
    }})
}

/// An error of a `failed` status webhook: `{code, title, message, error_data.details, href}`.
pub(crate) fn webhook_error(code: i64) -> Value {
    let e = meta_error(code);
    json!({
        "code": code,
        "title": e.title,
        "message": e.title,
        "error_data": {"details": e.details},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    })
}

/// A fresh `fbtrace_id`: 23 characters of URL-safe base64, as Meta's look.
pub(crate) fn fbtrace_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 17]>())
}

/// A fresh wamid, shaped like Meta's: `wamid.` + base64 of a small record holding the
/// recipient, then 24 hex digits (16 random, 8 from the sandbox's sequence), so wamids are
/// unique within a run and across runs.
pub(crate) fn wamid(recipient: &str, seq: u64) -> String {
    let recipient = &recipient.as_bytes()[..recipient.len().min(64)];
    let mut raw = Vec::with_capacity(recipient.len() + 40);
    raw.extend_from_slice(&[0x1c, 0x18]);
    raw.push(u8::try_from(recipient.len()).unwrap_or(u8::MAX));
    raw.extend_from_slice(recipient);
    raw.extend_from_slice(&[0x15, 0x02, 0x00, 0x11, 0x18, 0x18]);
    raw.extend_from_slice(format!("{:016X}{:08X}", rand::random::<u64>(), seq as u32).as_bytes());
    raw.push(0x00);
    format!("wamid.{}", STANDARD.encode(raw))
}

/// Serialises `value` the way Meta writes webhook bodies: every non-ASCII character as a
/// `\uXXXX` escape (surrogate pairs above U+FFFF) and `/` as `\/`. Both only occur inside
/// strings in JSON, so rewriting them everywhere keeps the document equal. This makes a
/// receiver that re-serialises the body before checking the signature fail, as it would with
/// Meta.
pub(crate) fn meta_json(value: &Value) -> Vec<u8> {
    let plain = value.to_string();
    let mut out = String::with_capacity(plain.len() + 16);
    let mut units = [0u16; 2];
    for c in plain.chars() {
        if c == '/' {
            out.push_str("\\/");
        } else if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.into_bytes()
}

/// The digits of a phone number as given in `to` (`+1 (650) 555-1234` → `16505551234`).
pub(crate) fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_json_escapes_non_ascii_and_slashes_but_means_the_same() {
        let v = json!({"name": "Lucía 😀", "path": "a/b", "n": 1});
        let bytes = meta_json(&v);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.is_ascii(), "{text}");
        assert!(text.contains(r"Luc\u00eda \ud83d\ude00"), "{text}");
        assert!(text.contains(r"a\/b"), "{text}");
        assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), v);
    }

    #[test]
    fn wamids_are_unique_and_look_like_meta() {
        let a = wamid("16505551234", 1);
        let b = wamid("16505551234", 1);
        assert!(a.starts_with("wamid.HBgL"), "{a}");
        assert_ne!(a, b);
        assert!(wamid("US.13491208655302741918", 2).starts_with("wamid.HBgX"));
    }

    #[test]
    fn fbtrace_ids_look_like_meta() {
        let id = fbtrace_id();
        assert_eq!(id.len(), 23);
        assert_ne!(id, fbtrace_id());
    }

    #[test]
    fn sync_errors_have_the_cloud_api_shape() {
        let body = sync_error_body(&meta_error(130429), "T");
        assert_eq!(body["error"]["code"], 130429);
        assert_eq!(body["error"]["type"], "OAuthException");
        assert_eq!(body["error"]["error_subcode"], 2494055);
        assert_eq!(body["error"]["fbtrace_id"], "T");
        assert_eq!(
            body["error"]["error_data"]["details"],
            "Cloud API message throughput has been reached."
        );
        assert_eq!(meta_error(131000).http_status, 500);
        let expired = meta_error(190);
        assert_eq!((expired.http_status, expired.subcode), (401, Some(463)));
    }

    #[test]
    fn digits_drop_formatting() {
        assert_eq!(digits("+1 (650) 555-1234"), "16505551234");
        assert_eq!(digits("US.1349"), "1349");
    }
}
