//! What a template's `components` (as the Graph listing gives them) ask of a send: the
//! placeholders of its header and body, and its buttons.

use serde_json::Value;

/// The placeholders of one text (`{{1}}`, `{{2}}` positional, or `{{first_name}}` named), each
/// once, in order of first appearance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placeholders {
    /// The placeholder names (`"1"`, `"first_name"`).
    pub names: Vec<String>,
}

impl Placeholders {
    /// The placeholders in `text`.
    pub fn of(text: &str) -> Self {
        let mut names: Vec<String> = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else { break };
            let name = after[..close].trim();
            if !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_owned());
            }
            rest = &after[close + 2..];
        }
        Self { names }
    }

    /// How many parameters fill them in.
    pub fn count(&self) -> usize {
        self.names.len()
    }

    /// Whether they are named (`{{first_name}}`) rather than positional (`{{1}}`).
    pub fn named(&self) -> bool {
        self.names
            .iter()
            .any(|n| !n.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// A template's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderShape {
    /// `format: TEXT`, with its placeholders (at most one, by Meta's rules).
    Text(Placeholders),
    /// `IMAGE`, `VIDEO` or `DOCUMENT`: the send gives the media, a parameter of this type
    /// (`image`, `video`, `document`).
    Media(String),
    /// `LOCATION`: the send gives a `location` parameter.
    Location,
    /// A format this code does not check (`GIF`, `PRODUCT`, …).
    Other(String),
}

/// One of a template's buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonShape {
    /// Meta's button type, upper case: `QUICK_REPLY`, `URL`, `PHONE_NUMBER`, `COPY_CODE`,
    /// `OTP`, `FLOW`, `CATALOG`, `MPM`, `VOICE_CALL`, …
    pub kind: String,
    /// For `URL`: whether the URL has a placeholder (its suffix is a send parameter).
    pub dynamic: bool,
}

impl ButtonShape {
    /// The send `sub_type`s that may address this button.
    pub fn sub_types(&self) -> &'static [&'static str] {
        match self.kind.as_str() {
            "QUICK_REPLY" => &["quick_reply"],
            "URL" => &["url"],
            "COPY_CODE" => &["copy_code"],
            // Authentication one-time-password buttons take the code as a `url` parameter.
            "OTP" => &["url", "copy_code"],
            "FLOW" => &["flow"],
            "CATALOG" => &["catalog"],
            "MPM" => &["mpm"],
            "VOICE_CALL" => &["voice_call"],
            _ => &[],
        }
    }

    /// The parameter a send must give for this button, if one is required: `text` for a
    /// dynamic URL and a one-time password, `coupon_code` for a copy-code button.
    pub fn required_parameter(&self) -> Option<&'static str> {
        match self.kind.as_str() {
            "URL" if self.dynamic => Some("text"),
            "OTP" => Some("text"),
            "COPY_CODE" => Some("coupon_code"),
            _ => None,
        }
    }
}

/// What a template's components ask of a send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateShape {
    /// The header, if the template has one.
    pub header: Option<HeaderShape>,
    /// The body's placeholders.
    pub body: Placeholders,
    /// The buttons, by index.
    pub buttons: Vec<ButtonShape>,
}

impl TemplateShape {
    /// The shape of a listing's `components` array (anything else gives an empty shape).
    pub fn of(components: &Value) -> Self {
        let mut shape = TemplateShape::default();
        let Some(list) = components.as_array() else {
            return shape;
        };
        for c in list {
            let ty = upper(c.get("type"));
            let text = c.get("text").and_then(Value::as_str).unwrap_or("");
            match ty.as_str() {
                "HEADER" => {
                    let format = upper(c.get("format"));
                    shape.header = Some(match format.as_str() {
                        "" | "TEXT" => HeaderShape::Text(Placeholders::of(text)),
                        "IMAGE" | "VIDEO" | "DOCUMENT" => {
                            HeaderShape::Media(format.to_ascii_lowercase())
                        }
                        "LOCATION" => HeaderShape::Location,
                        _ => HeaderShape::Other(format),
                    });
                }
                "BODY" => shape.body = Placeholders::of(text),
                "BUTTONS" => {
                    for b in c
                        .get("buttons")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let kind = upper(b.get("type"));
                        let dynamic = kind == "URL"
                            && b.get("url")
                                .and_then(Value::as_str)
                                .is_some_and(|u| Placeholders::of(u).count() > 0);
                        shape.buttons.push(ButtonShape { kind, dynamic });
                    }
                }
                _ => {}
            }
        }
        shape
    }
}

fn upper(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or("").to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_counted_once_in_order() {
        let cases: [(&str, &[&str], bool); 6] = [
            ("no variables", &[], false),
            ("Hi {{1}}, code {{2}}; again {{1}}", &["1", "2"], false),
            (
                "Hi {{ first_name }}, order {{order_id}}",
                &["first_name", "order_id"],
                true,
            ),
            ("broken {{1", &[], false),
            ("{{}} and {{a b}}", &[], false),
            ("{{2}}{{1}}", &["2", "1"], false),
        ];
        for (text, names, named) in cases {
            let p = Placeholders::of(text);
            assert_eq!(p.names, names, "{text}");
            assert_eq!(p.named(), named, "{text}");
        }
    }

    #[test]
    fn shape_reads_header_body_and_buttons() {
        let components = json!([
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::x"]}},
            {"type": "BODY", "text": "Order {{1}} ships {{2}}"},
            {"type": "FOOTER", "text": "Thanks"},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Stop"},
                {"type": "URL", "text": "Track", "url": "https://x.example/t/{{1}}"},
                {"type": "URL", "text": "Help", "url": "https://x.example/help"},
                {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550001111"}
            ]}
        ]);
        let s = TemplateShape::of(&components);
        assert_eq!(s.header, Some(HeaderShape::Media("image".into())));
        assert_eq!(s.body.count(), 2);
        let kinds: Vec<(&str, bool)> = s
            .buttons
            .iter()
            .map(|b| (b.kind.as_str(), b.dynamic))
            .collect();
        assert_eq!(
            kinds,
            [
                ("QUICK_REPLY", false),
                ("URL", true),
                ("URL", false),
                ("PHONE_NUMBER", false)
            ]
        );
        assert_eq!(TemplateShape::of(&Value::Null), TemplateShape::default());
    }
}
