//! Why a send request is refused, and the Cloud API error shape Ventana answers with.

use serde_json::{Value, json};

/// Why a body posted to `/{version}/{phone_number_id}/messages` cannot be sent.
///
/// Every variant that is about one field names it with a JSON-path-like string
/// (`text.body`, `interactive.action.buttons[3]`), so a client can fix its request.
/// [`SendError::cloud_api_code`] gives the Cloud API error code Meta uses for the problem.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The body is not JSON at all.
    #[error("the body is not valid JSON")]
    NotJson(#[source] serde_json::Error),
    /// The body is JSON, but not a JSON object.
    #[error("the body must be a JSON object")]
    NotAnObject,
    /// A required field is absent (or `null`).
    #[error("{field}: required parameter is missing")]
    Missing {
        /// The field, e.g. `template.language.code`.
        field: String,
    },
    /// A field is present but breaks one of Meta's rules.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, e.g. `interactive.action.buttons[3]`.
        field: String,
        /// What is wrong with it, e.g. `must be at most 20 characters (got 21)`.
        reason: String,
    },
    /// The message `type` (or `interactive.type`) is not one Ventana can send.
    #[error("{field}: unsupported message type `{value}`")]
    UnsupportedType {
        /// `type` or `interactive.type`.
        field: String,
        /// The value the client sent.
        value: String,
    },
    /// The body is a valid request for the same endpoint that sends no message: a read
    /// receipt, possibly with a typing indicator (`{"status":"read","message_id":…}`).
    #[error("the body marks a message as read; it sends no message")]
    NotAMessage,
    /// A template send that does not fit the template registry (unknown, not approved, or
    /// parameters and buttons that do not match the template); its code is Meta's (132000,
    /// 132001, 132012, 132015, 132016).
    #[error(transparent)]
    Template(#[from] crate::templates::TemplateRefusal),
}

impl SendError {
    /// The Cloud API error code Meta answers with for this kind of problem:
    /// 131008 (required parameter missing) for an absent field, 131009 (parameter value is
    /// not valid) for a field that breaks a rule, and 100 (invalid parameter) for a body that
    /// is not a JSON object, an unknown type, or a read receipt where a send was expected.
    pub fn cloud_api_code(&self) -> i64 {
        match self {
            SendError::Missing { .. } => 131_008,
            SendError::Invalid { .. } => 131_009,
            SendError::NotJson(_)
            | SendError::NotAnObject
            | SendError::UnsupportedType { .. }
            | SendError::NotAMessage => 100,
            SendError::Template(t) => t.kind.code(),
        }
    }

    /// Meta's own message text for [`SendError::cloud_api_code`], e.g.
    /// `(#131009) Parameter value is not valid`.
    pub fn cloud_api_message(&self) -> &'static str {
        if let SendError::Template(t) = self {
            return t.kind.message();
        }
        match self.cloud_api_code() {
            131_008 => "(#131008) Required parameter is missing",
            131_009 => "(#131009) Parameter value is not valid",
            _ => "(#100) Invalid parameter",
        }
    }

    /// The field the error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            SendError::Missing { field }
            | SendError::Invalid { field, .. }
            | SendError::UnsupportedType { field, .. } => Some(field),
            SendError::NotJson(_)
            | SendError::NotAnObject
            | SendError::NotAMessage
            | SendError::Template(_) => None,
        }
    }

    /// The whole Cloud API error body for this error: code, Meta's message, this error's
    /// text (which names the field) as `error_data.details`, and `fbtrace_id` (Ventana puts
    /// its request id there).
    pub fn to_cloud_api_error(&self, fbtrace_id: &str) -> Value {
        cloud_api_error_body(
            self.cloud_api_code(),
            self.cloud_api_message(),
            &self.to_string(),
            fbtrace_id,
        )
    }

    pub(crate) fn missing(field: impl Into<String>) -> Self {
        SendError::Missing {
            field: field.into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SendError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A Cloud API error body, the shape Meta answers failed sends with (architecture §4):
/// `{"error":{"message","type":"OAuthException","code","error_data":{"messaging_product":
/// "whatsapp","details"},"fbtrace_id"}}`. SDKs branch on `code` and show `details`.
pub fn cloud_api_error_body(code: i64, message: &str, details: &str, fbtrace_id: &str) -> Value {
    json!({
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": details,
            },
            "fbtrace_id": fbtrace_id,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_cloud_api_shape() {
        let body = cloud_api_error_body(131_047, "(#131047) Re-engagement message", "late", "t1");
        assert_eq!(
            body,
            json!({"error": {"message": "(#131047) Re-engagement message", "type": "OAuthException",
                   "code": 131047, "error_data": {"messaging_product": "whatsapp", "details": "late"},
                   "fbtrace_id": "t1"}})
        );
    }

    #[test]
    fn each_error_kind_maps_to_metas_code() {
        assert_eq!(SendError::missing("to").cloud_api_code(), 131_008);
        assert_eq!(
            SendError::invalid("text.body", "x").cloud_api_code(),
            131_009
        );
        assert_eq!(SendError::NotAnObject.cloud_api_code(), 100);
        assert_eq!(SendError::NotAMessage.cloud_api_code(), 100);
        let e = SendError::UnsupportedType {
            field: "type".into(),
            value: "poll".into(),
        };
        assert_eq!(e.cloud_api_code(), 100);
        assert_eq!(e.field(), Some("type"));
    }

    #[test]
    fn template_refusals_keep_metas_code_and_message() {
        let e = SendError::from(crate::templates::TemplateRefusal::unknown("promo", "es"));
        let body = e.to_cloud_api_error("t");
        assert_eq!(body["error"]["code"], 132_001);
        assert_eq!(
            body["error"]["message"],
            "(#132001) Template name does not exist in the translation"
        );
        assert!(
            body["error"]["error_data"]["details"]
                .as_str()
                .unwrap()
                .starts_with("template promo (es) is not known")
        );
    }

    #[test]
    fn error_body_details_name_the_field() {
        let e = SendError::invalid("text.body", "must be at most 4096 characters (got 4097)");
        let body = e.to_cloud_api_error("req-1");
        assert_eq!(body["error"]["code"], 131_009);
        assert_eq!(
            body["error"]["error_data"]["details"],
            "text.body: must be at most 4096 characters (got 4097)"
        );
        assert_eq!(body["error"]["fbtrace_id"], "req-1");
    }
}
