use serde_json::{Value, json};

use super::*;
use crate::templates::{TemplateCategory, parse_listing};

fn registry() -> Vec<TemplateDef> {
    let mut all = Vec::new();
    for page in [
        include_str!("fixtures/listing_page1.json"),
        include_str!("fixtures/listing_page2.json"),
    ] {
        all.extend(parse_listing("WABA1", page.as_bytes()).unwrap().templates);
    }
    all.push(TemplateDef {
        waba_id: "WABA1".into(),
        name: "login_code".into(),
        language: "en".into(),
        id: None,
        status: TemplateStatus::Approved,
        category: TemplateCategory::Authentication,
        components: json!([
            {"type": "BODY", "text": "*{{1}}* is your verification code."},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}]}
        ]),
        quality: None,
        updated_at: 0,
    });
    all.push(TemplateDef {
        waba_id: "WABA1".into(),
        name: "store_visit".into(),
        language: "en".into(),
        id: None,
        status: TemplateStatus::Approved,
        category: TemplateCategory::Marketing,
        components: json!([
            {"type": "HEADER", "format": "LOCATION"},
            {"type": "BODY", "text": "See you soon"},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Site", "url": "https://shop.example"}]}
        ]),
        quality: None,
        updated_at: 0,
    });
    all
}

fn def(name: &str) -> TemplateDef {
    registry().into_iter().find(|t| t.name == name).unwrap()
}

fn text(s: &str) -> Value {
    json!({"type": "text", "text": s})
}

fn named(name: &str, s: &str) -> Value {
    json!({"type": "text", "text": s, "parameter_name": name})
}

fn order_update(components: Value) -> Value {
    json!({"name": "order_update", "language": {"code": "es"}, "components": components})
}

fn summer_sale(components: Value) -> Value {
    json!({"name": "summer_sale", "language": {"code": "en_US"}, "components": components})
}

fn image() -> Value {
    json!({"type": "image", "image": {"link": "https://x.example/a.jpg"}})
}

/// (case, template, send, expected: Ok or (code, details))
type Case = (
    &'static str,
    &'static str,
    Value,
    Result<(), (i64, &'static str)>,
);

fn cases() -> Vec<Case> {
    let ou_ok = json!([
        {"type": "header", "parameters": [text("#4512")]},
        {"type": "body", "parameters": [text("Pablo"), {"type": "date_time", "date_time": {"fallback_value": "martes"}}]},
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [text("4512")]}
    ]);
    vec![
        (
            "positional fits",
            "order_update",
            order_update(ou_ok),
            Ok(()),
        ),
        (
            "body one short",
            "order_update",
            order_update(json!([
                {"type": "header", "parameters": [text("#4512")]},
                {"type": "body", "parameters": [text("Pablo")]},
                {"type": "button", "sub_type": "url", "index": 0, "parameters": [text("4512")]}
            ])),
            Err((
                132_000,
                "template order_update (es) body expects 2 parameters, got 1",
            )),
        ),
        (
            "no components at all",
            "order_update",
            json!({"name": "order_update", "language": {"code": "es"}}),
            Err((
                132_000,
                "template order_update (es) header expects 1 parameter, got 0",
            )),
        ),
        (
            "body parameter of the wrong kind",
            "order_update",
            order_update(json!([
                {"type": "header", "parameters": [text("#4512")]},
                {"type": "body", "parameters": [text("Pablo"), image()]},
                {"type": "button", "sub_type": "url", "index": "0", "parameters": [text("4512")]}
            ])),
            Err((
                132_012,
                "template order_update (es) body parameter 2 must be text, currency or date_time, got image",
            )),
        ),
        (
            "dynamic URL button without its suffix",
            "order_update",
            order_update(json!([
                {"type": "header", "parameters": [text("#4512")]},
                {"type": "body", "parameters": [text("Pablo"), text("martes")]}
            ])),
            Err((
                132_000,
                "template order_update (es) button 0 (URL) expects a text parameter, but the send has no button component with index 0",
            )),
        ),
        (
            "URL button addressed as quick reply",
            "order_update",
            order_update(json!([
                {"type": "header", "parameters": [text("#4512")]},
                {"type": "body", "parameters": [text("Pablo"), text("martes")]},
                {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "x"}]}
            ])),
            Err((
                132_012,
                "template order_update (es) button 0 is a URL button and needs sub_type url, got sub_type quick_reply",
            )),
        ),
        (
            "a button the template does not have",
            "order_update",
            order_update(json!([
                {"type": "header", "parameters": [text("#4512")]},
                {"type": "body", "parameters": [text("Pablo"), text("martes")]},
                {"type": "button", "sub_type": "url", "index": "0", "parameters": [text("4512")]},
                {"type": "button", "sub_type": "quick_reply", "index": "1", "parameters": [{"type": "payload", "payload": "x"}]}
            ])),
            Err((
                132_000,
                "template order_update (es) has no button at index 1 (it has 1 button)",
            )),
        ),
        (
            "named fits, quick replies optional",
            "summer_sale",
            summer_sale(json!([
                {"type": "header", "parameters": [image()]},
                {"type": "body", "parameters": [named("code", "SUN20"), named("first_name", "Ana")]},
                {"type": "button", "sub_type": "quick_reply", "index": 1, "parameters": [{"type": "payload", "payload": "STOP"}]}
            ])),
            Ok(()),
        ),
        (
            "named parameter without its name",
            "summer_sale",
            summer_sale(json!([
                {"type": "header", "parameters": [image()]},
                {"type": "body", "parameters": [text("Ana"), named("code", "SUN20")]}
            ])),
            Err((
                132_000,
                "template summer_sale (en_US) body parameter 1 needs a parameter_name (one of first_name, code)",
            )),
        ),
        (
            "named parameter the template lacks",
            "summer_sale",
            summer_sale(json!([
                {"type": "header", "parameters": [image()]},
                {"type": "body", "parameters": [named("name", "Ana"), named("code", "SUN20")]}
            ])),
            Err((
                132_000,
                "template summer_sale (en_US) body has no parameter named name (it has first_name, code)",
            )),
        ),
        (
            "named parameter twice",
            "summer_sale",
            summer_sale(json!([
                {"type": "header", "parameters": [image()]},
                {"type": "body", "parameters": [named("code", "A"), named("code", "B")]}
            ])),
            Err((
                132_000,
                "template summer_sale (en_US) body names a parameter twice; it expects each of first_name, code once",
            )),
        ),
        (
            "image header missing",
            "summer_sale",
            summer_sale(json!([
                {"type": "body", "parameters": [named("first_name", "Ana"), named("code", "SUN20")]}
            ])),
            Err((
                132_000,
                "template summer_sale (en_US) header expects a image parameter, got none",
            )),
        ),
        (
            "video where the header is an image",
            "summer_sale",
            summer_sale(json!([
                {"type": "header", "parameters": [{"type": "video", "video": {"id": "1"}}]},
                {"type": "body", "parameters": [named("first_name", "Ana"), named("code", "SUN20")]}
            ])),
            Err((
                132_012,
                "template summer_sale (en_US) header expects a image parameter, got video",
            )),
        ),
        (
            "quick reply with a text parameter",
            "summer_sale",
            summer_sale(json!([
                {"type": "header", "parameters": [image()]},
                {"type": "body", "parameters": [named("first_name", "Ana"), named("code", "SUN20")]},
                {"type": "button", "sub_type": "quick_reply", "index": 0, "parameters": [text("x")]}
            ])),
            Err((
                132_012,
                "template summer_sale (en_US) button 0 (QUICK_REPLY) expects a payload parameter, got text",
            )),
        ),
        (
            "paused",
            "welcome_back",
            json!({"name": "welcome_back", "language": {"code": "en"}}),
            Err((
                132_015,
                "template welcome_back (en) is PAUSED for low quality",
            )),
        ),
        (
            "authentication code fits",
            "login_code",
            json!({"name": "login_code", "language": {"code": "en"}, "components": [
                {"type": "body", "parameters": [text("123456")]},
                {"type": "button", "sub_type": "url", "index": "0", "parameters": [text("123456")]}
            ]}),
            Ok(()),
        ),
        (
            "authentication code without the button",
            "login_code",
            json!({"name": "login_code", "language": {"code": "en"}, "components": [
                {"type": "body", "parameters": [text("123456")]}
            ]}),
            Err((
                132_000,
                "template login_code (en) button 0 (OTP) expects a text parameter, but the send has no button component with index 0",
            )),
        ),
        (
            "location header fits, fixed URL button untouched",
            "store_visit",
            json!({"name": "store_visit", "language": {"code": "en"}, "components": [
                {"type": "header", "parameters": [{"type": "location", "location": {"latitude": 1.0, "longitude": 2.0}}]}
            ]}),
            Ok(()),
        ),
        (
            "fixed URL button given a suffix",
            "store_visit",
            json!({"name": "store_visit", "language": {"code": "en"}, "components": [
                {"type": "header", "parameters": [{"type": "location", "location": {"latitude": 1.0, "longitude": 2.0}}]},
                {"type": "button", "sub_type": "url", "index": "0", "parameters": [text("x")]}
            ]}),
            Err((
                132_000,
                "template store_visit (en) button 0 has a fixed URL and takes no parameter, got 1",
            )),
        ),
        (
            "body parameters for a body without placeholders",
            "store_visit",
            json!({"name": "store_visit", "language": {"code": "en"}, "components": [
                {"type": "header", "parameters": [{"type": "location", "location": {"latitude": 1.0, "longitude": 2.0}}]},
                {"type": "body", "parameters": [text("x")]}
            ]}),
            Err((
                132_000,
                "template store_visit (en) body expects 0 parameters, got 1",
            )),
        ),
    ]
}

#[test]
fn sends_are_checked_against_the_template() {
    for (case, name, send, expected) in cases() {
        let got = check(&send, &def(name)).map_err(|r| (r.kind.code(), r.details));
        let expected = expected.map_err(|(c, d)| (c, d.to_owned()));
        assert_eq!(got, expected, "{case}");
    }
}

#[test]
fn only_approved_templates_are_sendable_each_with_metas_code() {
    let send = json!({"name": "order_update", "language": {"code": "es"}});
    for (status, code, details) in [
        (
            "PAUSED",
            132_015,
            "template order_update (es) is PAUSED for low quality",
        ),
        (
            "DISABLED",
            132_016,
            "template order_update (es) is DISABLED",
        ),
        (
            "PENDING",
            132_001,
            "template order_update (es) is PENDING, not APPROVED",
        ),
        (
            "REJECTED",
            132_001,
            "template order_update (es) is REJECTED, not APPROVED",
        ),
        (
            "DELETED",
            132_001,
            "template order_update (es) is DELETED, not APPROVED",
        ),
    ] {
        let mut d = def("order_update");
        d.status = TemplateStatus::from(status.to_owned());
        let r = check(&send, &d).unwrap_err();
        assert_eq!(
            (r.kind.code(), r.details.as_str()),
            (code, details),
            "{status}"
        );
        assert!(r.kind.message().starts_with(&format!("(#{code})")));
    }
}

#[test]
fn a_template_known_only_from_a_webhook_is_checked_for_status_only() {
    let mut d = def("order_update");
    d.components = Value::Null;
    let bare = json!({"name": "order_update", "language": {"code": "es"}});
    assert_eq!(check(&bare, &d), Ok(()));
    d.status = TemplateStatus::Paused;
    assert_eq!(check(&bare, &d).unwrap_err().kind, RefusalKind::Paused);
}
