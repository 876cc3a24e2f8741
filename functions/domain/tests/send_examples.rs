//! Send bodies as existing clients write them, and Meta's limits as reject lists.
//!
//! 1. Every send example in Meta's OpenAPI spec (`tests/fixtures/meta-sends/examples.json`,
//!    see `tests/fixtures/README.md`) parses and validates unchanged, except the few that
//!    Meta itself would refuse; each of those is listed in `SPEC_BUGS` with the exact error
//!    and the reason, then fixed minimally and accepted.
//! 2. Every 200 response example gives its wamid.
//! 3. Reject lists (zero2prod style): one test per limit, each asserting the field named.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use serde_json::{Map, Value, json};
use wa_domain::customer::CustomerRef;
use wa_domain::outbound::{
    GraphOutcome, InteractiveKind, MessageKind, MessagesRequest, Recipient, SendError, SendRequest,
    TransportFailure, classify, limits,
};

const EXAMPLES: &str = include_str!("../../../tests/fixtures/meta-sends/examples.json");
const RESPONSES: &str = include_str!("../../../tests/fixtures/meta-sends/responses.json");

const PHONE: &str = "+16505551234";

fn fixture(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap()
}

/// The spec's bodies carry Postman collection variables for the recipient
/// (`{{Recipient-Phone-Number}}`), which the client substitutes before it sends; this does
/// the same and nothing else.
fn as_sent(body: &Value) -> String {
    body.to_string()
        .replace("{{Recipient-Phone-Number}}", PHONE)
        .replace("{{Recipient-WA-Phone-Number}}", PHONE)
}

/// An example Meta itself would refuse, the error Ventana gives, and a minimal fix.
struct SpecBug {
    name: &'static str,
    field: &'static str,
    code: i64,
    fix: fn(&mut Value),
}

/// Media links in these examples are `<http(s)://audio-url>` or `http(s)://image-url`:
/// placeholders, not URLs, which Meta could not fetch (131053 at best).
fn fix_links(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                if k == "link" {
                    *v = json!("https://example.com/media");
                } else {
                    fix_links(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(fix_links),
        _ => {}
    }
}

/// Template names `template-name` and `<TEMPLATE_NAME>` break Meta's naming rule
/// (`^[a-z0-9_]+$`), so no approved template can have them (Meta: 132001).
fn fix_template_name(v: &mut Value) {
    v["template"]["name"] = json!("sample_template");
    fix_links(v);
}

fn link_bug(name: &'static str, field: &'static str) -> SpecBug {
    SpecBug {
        name,
        field,
        code: 131_009,
        fix: fix_links,
    }
}

fn name_bug(name: &'static str) -> SpecBug {
    SpecBug {
        name,
        field: "template.name",
        code: 131_009,
        fix: fix_template_name,
    }
}

fn spec_bugs() -> Vec<SpecBug> {
    vec![
        link_bug("Send Audio Message by URL", "audio.link"),
        link_bug("Send Reply to Audio Message by URL", "audio.link"),
        link_bug("Send Document Message by URL", "document.link"),
        link_bug("Send Reply to Document Message by URL", "document.link"),
        link_bug("Send Image Message by URL", "image.link"),
        link_bug("Send Reply to Image Message by URL", "image.link"),
        link_bug("Send Sticker Message by URL", "sticker.link"),
        link_bug("Send Reply to Sticker Message by URL", "sticker.link"),
        link_bug("Send Video Message by URL", "video.link"),
        link_bug("Send Reply to Video Message by URL", "video.link"),
        name_bug("Send Flow Template Message"),
        // These two also have `http(s)://the-image-url` header links; the name comes first.
        name_bug("Send Message Template Interactive"),
        name_bug("Send Message Template Media"),
        name_bug("Send Message Template Text"),
        name_bug("Send Sample Shipping Confirmation Template"),
        name_bug("Send Sample Text Message"),
        // The header type is left as the placeholder `<HEADER_TYPE>`; a multi-product message
        // needs a text header.
        SpecBug {
            name: "Send Multi-Product Message",
            field: "interactive.header.type",
            code: 131_009,
            fix: |v| v["interactive"]["header"]["type"] = json!("text"),
        },
        // No `type`, so Meta takes it as `text` (its default) and finds no `text` object:
        // the example forgot `"type": "interactive"`.
        SpecBug {
            name: "Send Reply to List Message",
            field: "text",
            code: 131_008,
            fix: |v| v["type"] = json!("interactive"),
        },
        // Quick-reply button parameters given as `{"type":"text","text":true}`: a boolean
        // where Meta wants a string (and a `payload` for a quick reply).
        SpecBug {
            name: "Send Sample Issue Resolution Template",
            field: "template.components[1].parameters[0].text",
            code: 131_009,
            fix: |v| {
                for i in [1, 2] {
                    v["template"]["components"][i]["parameters"][0] =
                        json!({"type": "payload", "payload": format!("answer_{i}")});
                }
            },
        },
    ]
}

/// The read receipt is not a send: its own variant, and a specific error from
/// `SendRequest::parse`.
const READ_RECEIPT: &str = "Send typing indicator and read receipt";

fn expected_type(body: &Value) -> &str {
    body.get("type").and_then(Value::as_str).unwrap_or("text")
}

#[test]
fn the_fixture_holds_all_fifty_send_examples() {
    assert_eq!(fixture(EXAMPLES).len(), 50);
    assert_eq!(fixture(RESPONSES).len(), 44);
}

#[test]
fn every_send_example_is_accepted_unchanged_unless_meta_would_refuse_it() {
    let bugs = spec_bugs();
    for (name, body) in fixture(EXAMPLES) {
        if name == READ_RECEIPT || bugs.iter().any(|b| b.name == name) {
            continue;
        }
        let sent = as_sent(&body);
        let request =
            SendRequest::parse(sent.as_bytes()).unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        assert_eq!(request.kind().as_str(), expected_type(&body), "{name}");
        assert_eq!(request.raw_json(), sent, "{name}: raw body kept unchanged");
        assert_eq!(request.to_input(), Some(PHONE), "{name}");
        let mut forwarded = serde_json::from_str::<Value>(&sent).unwrap();
        forwarded["biz_opaque_callback_data"] = json!("ventana-1");
        assert_eq!(request.graph_body("ventana-1"), forwarded, "{name}");
    }
}

#[test]
fn spec_examples_meta_would_refuse_are_refused_naming_the_field() {
    let examples = fixture(EXAMPLES);
    for bug in spec_bugs() {
        let body = examples
            .get(bug.name)
            .unwrap_or_else(|| panic!("{}", bug.name));
        let err = SendRequest::parse(as_sent(body).as_bytes()).unwrap_err();
        assert_eq!(
            (err.field(), err.cloud_api_code()),
            (Some(bug.field), bug.code),
            "{}: {err}",
            bug.name
        );
        let mut fixed = body.clone();
        (bug.fix)(&mut fixed);
        let request = SendRequest::parse(as_sent(&fixed).as_bytes())
            .unwrap_or_else(|e| panic!("{} (fixed): {e}", bug.name));
        assert_eq!(
            request.kind().as_str(),
            expected_type(&fixed),
            "{}",
            bug.name
        );
    }
}

#[test]
fn unsubstituted_postman_variables_are_refused_as_to() {
    let mut seen = 0;
    for (name, body) in fixture(EXAMPLES) {
        if body["to"].as_str().is_some_and(|t| t.starts_with("{{")) {
            let err = MessagesRequest::parse(body.to_string().as_bytes()).unwrap_err();
            assert_eq!(err.field(), Some("to"), "{name}: {err}");
            seen += 1;
        }
    }
    assert_eq!(seen, 45);
}

#[test]
fn read_receipt_example_is_a_read_receipt_not_a_send() {
    let body = fixture(EXAMPLES)[READ_RECEIPT].to_string();
    match MessagesRequest::parse(body.as_bytes()).unwrap() {
        MessagesRequest::Read(r) => {
            assert_eq!(
                r.message_id,
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUYzMjEzNDM2RTZGQ0MzMDJBRgA="
            );
            assert_eq!(r.typing_indicator.as_deref(), Some("text"));
        }
        MessagesRequest::Send(s) => panic!("taken as a send: {s:?}"),
    }
    let err = SendRequest::parse(body.as_bytes()).unwrap_err();
    assert!(matches!(err, SendError::NotAMessage), "{err}");
    assert_eq!(err.cloud_api_code(), 100);
}

#[test]
fn interactive_examples_have_the_expected_kinds() {
    let examples = fixture(EXAMPLES);
    for (name, kind) in [
        ("Send Reply Button", InteractiveKind::Button),
        ("Send List Message", InteractiveKind::List),
        ("Send Published Flow by ID", InteractiveKind::Flow),
        ("Send Draft Flow by Name", InteractiveKind::Flow),
        ("Send Single Product Message", InteractiveKind::Product),
        ("Send Catalog Message", InteractiveKind::CatalogMessage),
        ("Send Order Details Message", InteractiveKind::OrderDetails),
        ("Send Order Status Message", InteractiveKind::OrderStatus),
    ] {
        let r = SendRequest::parse(as_sent(&examples[name]).as_bytes()).unwrap();
        assert_eq!(r.kind(), MessageKind::Interactive(kind), "{name}");
        assert!(r.is_session_message(), "{name}");
    }
}

#[test]
fn template_examples_give_name_and_language() {
    let examples = fixture(EXAMPLES);
    let r = SendRequest::parse(as_sent(&examples["Send Test Message"]).as_bytes()).unwrap();
    assert!(!r.is_session_message());
    assert_eq!(r.template_name_language(), Some(("hello_world", "en_US")));
    let r =
        SendRequest::parse(as_sent(&examples["Send Catalog Template Message"]).as_bytes()).unwrap();
    assert_eq!(
        r.template_name_language(),
        Some(("intro_catalog_offer", "en_US"))
    );
}

#[test]
fn every_200_response_example_gives_its_wamid() {
    for (name, body) in fixture(RESPONSES) {
        let outcome = GraphOutcome::from_response(200, body.to_string().as_bytes(), None);
        if name == READ_RECEIPT {
            // `{"success": true}`: the answer to a read receipt, which has no wamid.
            assert_eq!(outcome, GraphOutcome::Transport(TransportFailure::Other));
            continue;
        }
        let want = body["messages"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            classify(&outcome),
            wa_domain::outbound::Disposition::Delivered { wamid: want },
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Reject lists: one test per limit, each naming the field.

fn text(body: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": PHONE, "type": "text", "text": {"body": body}})
}

fn parse(v: &Value) -> Result<SendRequest, SendError> {
    SendRequest::parse(v.to_string().as_bytes())
}

#[track_caller]
fn accepted(v: &Value) -> SendRequest {
    parse(v).unwrap_or_else(|e| panic!("refused: {e}\n{v}"))
}

/// Asserts the body is refused, naming `field`, with a 131008/131009 code.
#[track_caller]
fn refused(v: &Value, field: &str) -> SendError {
    let err = match parse(v) {
        Ok(r) => panic!("accepted, expected `{field}` refused: {r:?}"),
        Err(e) => e,
    };
    assert_eq!(err.field(), Some(field), "{err}");
    assert!(
        [131_008, 131_009].contains(&err.cloud_api_code()),
        "{err}: {}",
        err.cloud_api_code()
    );
    assert!(err.to_string().starts_with(field), "{err}");
    err
}

fn with(mut base: Value, path: &[&str], value: Value) -> Value {
    let mut at = &mut base;
    for key in path {
        at = match key.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[*key],
        };
    }
    *at = value;
    base
}

fn buttons(n: usize) -> Value {
    let buttons: Vec<Value> = (0..n)
        .map(|i| json!({"type": "reply", "reply": {"id": format!("b{i}"), "title": format!("B{i}")}}))
        .collect();
    json!({"messaging_product": "whatsapp", "to": PHONE, "type": "interactive",
           "interactive": {"type": "button", "body": {"text": "Pick one"},
                           "action": {"buttons": buttons}}})
}

/// A list with `per_section` rows in each of `sections` sections.
fn list(sections: usize, per_section: usize) -> Value {
    let mut n = 0;
    let sections: Vec<Value> = (0..sections)
        .map(|s| {
            let rows: Vec<Value> = (0..per_section)
                .map(|_| {
                    n += 1;
                    json!({"id": format!("r{n}"), "title": format!("Row {n}"), "description": "d"})
                })
                .collect();
            json!({"title": format!("Section {s}"), "rows": rows})
        })
        .collect();
    json!({"messaging_product": "whatsapp", "to": PHONE, "type": "interactive",
           "interactive": {"type": "list", "header": {"type": "text", "text": "Shipping"},
                           "body": {"text": "Which one?"}, "footer": {"text": "Lucky Shrub"},
                           "action": {"button": "Options", "sections": sections}}})
}

fn media(kind: &str, media: Value) -> Value {
    json!({"messaging_product": "whatsapp", "to": PHONE, "type": kind, kind: media})
}

fn template(components: Value) -> Value {
    json!({"messaging_product": "whatsapp", "to": PHONE, "type": "template",
           "template": {"name": "order_update", "language": {"code": "en_US"},
                        "components": components}})
}

fn cta(display_text: &str, url: &str) -> Value {
    json!({"messaging_product": "whatsapp", "to": PHONE, "type": "interactive",
           "interactive": {"type": "cta_url", "body": {"text": "See it"},
                           "action": {"name": "cta_url",
                                      "parameters": {"display_text": display_text, "url": url}}}})
}

#[test]
fn body_that_is_not_json_is_refused_with_100() {
    let err = SendRequest::parse(b"{not json").unwrap_err();
    assert!(matches!(err, SendError::NotJson(_)));
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps the serde error"
    );
    assert_eq!(err.cloud_api_code(), 100);
    let err = SendRequest::parse(b"[1]").unwrap_err();
    assert!(matches!(err, SendError::NotAnObject));
}

#[test]
fn messaging_product_must_be_whatsapp() {
    refused(
        &with(text("hi"), &["messaging_product"], json!("messenger")),
        "messaging_product",
    );
    let mut v = text("hi");
    v.as_object_mut().unwrap().remove("messaging_product");
    let err = refused(&v, "messaging_product");
    assert_eq!(err.cloud_api_code(), 131_008);
}

#[test]
fn recipient_type_is_individual_or_group() {
    refused(
        &with(text("hi"), &["recipient_type"], json!("broadcast")),
        "recipient_type",
    );
    let r = accepted(&with(text("hi"), &["recipient_type"], json!("group")));
    assert_eq!(
        r.recipient(),
        &Recipient::Group {
            group_id: PHONE.into()
        }
    );
    assert_eq!(r.customer(), None);
}

#[test]
fn to_must_be_a_phone_number() {
    for bad in [
        "hello",
        "12",
        "+1 650 555 1234 ext 5",
        "",
        "1".repeat(21).as_str(),
    ] {
        refused(&with(text("hi"), &["to"], json!(bad)), "to");
    }
    refused(&with(text("hi"), &["to"], json!(16505551234u64)), "to");
}

#[test]
fn a_recipient_is_required() {
    let mut v = text("hi");
    v.as_object_mut().unwrap().remove("to");
    let err = refused(&v, "to");
    assert_eq!(err.cloud_api_code(), 131_008);
}

#[test]
fn recipient_must_be_a_bsuid() {
    let v = with(text("hi"), &["recipient"], json!("16505551234"));
    refused(&v, "recipient");
}

#[test]
fn phone_and_bsuid_name_one_customer() {
    let r = accepted(&with(text("hi"), &["to"], json!("+1 (650) 555-1234")));
    assert_eq!(
        r.customer(),
        CustomerRef::new(None, Some("16505551234")).as_ref()
    );
    assert_eq!(r.to_input(), Some("+1 (650) 555-1234"));
    let response = r.response_body("ventana-1");
    assert_eq!(response["contacts"][0]["input"], "+1 (650) 555-1234");
    assert_eq!(response["contacts"][0]["wa_id"], "16505551234");
    assert_eq!(response["messages"][0]["id"], "ventana-1");

    let mut v = text("hi");
    v.as_object_mut().unwrap().remove("to");
    v["recipient"] = json!("US.13491208655302741918");
    let r = accepted(&v);
    assert_eq!(
        r.customer(),
        CustomerRef::new(Some("US.13491208655302741918"), None).as_ref()
    );
    assert_eq!(r.to_input(), None);

    v["to"] = json!(PHONE);
    let r = accepted(&v);
    assert_eq!(
        r.customer(),
        CustomerRef::new(Some("US.13491208655302741918"), Some("16505551234")).as_ref()
    );
}

#[test]
fn type_defaults_to_text_and_unknown_types_are_unsupported() {
    let mut v = text("hi");
    v.as_object_mut().unwrap().remove("type");
    assert_eq!(accepted(&v).kind(), MessageKind::Text);

    let err = parse(&with(text("hi"), &["type"], json!("poll"))).unwrap_err();
    assert!(matches!(err, SendError::UnsupportedType { .. }), "{err}");
    assert_eq!((err.field(), err.cloud_api_code()), (Some("type"), 100));

    let err = parse(&with(
        buttons(1),
        &["interactive", "type"],
        json!("carousel_x"),
    ))
    .unwrap_err();
    assert!(matches!(err, SendError::UnsupportedType { .. }), "{err}");
    assert_eq!(err.field(), Some("interactive.type"));
}

#[test]
fn type_object_is_required() {
    let v = json!({"messaging_product": "whatsapp", "to": PHONE, "type": "image"});
    let err = refused(&v, "image");
    assert_eq!(err.cloud_api_code(), 131_008);
}

#[test]
fn text_body_is_1_to_4096_characters() {
    accepted(&text(&"a".repeat(limits::TEXT_BODY_MAX)));
    // Characters, not bytes: 4,096 emoji are 16 KiB and still fine.
    accepted(&text(&"😀".repeat(limits::TEXT_BODY_MAX)));
    refused(&text(&"a".repeat(limits::TEXT_BODY_MAX + 1)), "text.body");
    refused(&text(""), "text.body");
    refused(&with(text("x"), &["text", "body"], json!(5)), "text.body");
    refused(
        &with(text("x"), &["text", "preview_url"], json!("yes")),
        "text.preview_url",
    );
}

#[test]
fn caption_is_at_most_1024_characters_on_image_video_document() {
    for kind in ["image", "video", "document"] {
        accepted(&media(
            kind,
            json!({"id": "1", "caption": "c".repeat(limits::CAPTION_MAX)}),
        ));
        refused(
            &media(
                kind,
                json!({"id": "1", "caption": "c".repeat(limits::CAPTION_MAX + 1)}),
            ),
            &format!("{kind}.caption"),
        );
    }
}

#[test]
fn audio_and_sticker_take_no_caption() {
    for kind in ["audio", "sticker"] {
        accepted(&media(kind, json!({"id": "1"})));
        refused(
            &media(kind, json!({"id": "1", "caption": "c"})),
            &format!("{kind}.caption"),
        );
    }
}

#[test]
fn media_is_by_exactly_one_of_id_or_link() {
    refused(
        &media("image", json!({"id": "1", "link": "https://x.test/a.jpg"})),
        "image",
    );
    let err = refused(&media("image", json!({"caption": "c"})), "image.id");
    assert_eq!(err.cloud_api_code(), 131_008);
    refused(&media("image", json!({"id": ""})), "image.id");
}

#[test]
fn media_links_are_http_or_https() {
    accepted(&media("image", json!({"link": "https://x.test/a.jpg"})));
    accepted(&media(
        "document",
        json!({"link": "http://x.test/a.pdf", "filename": "a.pdf"}),
    ));
    for bad in [
        "ftp://x.test/a.jpg",
        "x.test/a.jpg",
        "data:image/png;base64,AAAA",
        "https://",
    ] {
        refused(&media("image", json!({"link": bad})), "image.link");
    }
}

#[test]
fn reply_buttons_are_1_to_3() {
    accepted(&buttons(3));
    refused(&buttons(4), "interactive.action.buttons[3]");
    refused(&buttons(0), "interactive.action.buttons");
}

#[test]
fn reply_button_title_is_1_to_20_characters() {
    let title = ["interactive", "action", "buttons", "0", "reply", "title"];
    accepted(&with(
        buttons(1),
        &title,
        json!("t".repeat(limits::BUTTON_TITLE_MAX)),
    ));
    refused(
        &with(
            buttons(1),
            &title,
            json!("t".repeat(limits::BUTTON_TITLE_MAX + 1)),
        ),
        "interactive.action.buttons[0].reply.title",
    );
    refused(
        &with(buttons(1), &title, json!("")),
        "interactive.action.buttons[0].reply.title",
    );
}

#[test]
fn reply_button_id_is_1_to_256_characters() {
    let id = ["interactive", "action", "buttons", "0", "reply", "id"];
    accepted(&with(
        buttons(1),
        &id,
        json!("i".repeat(limits::BUTTON_ID_MAX)),
    ));
    refused(
        &with(
            buttons(1),
            &id,
            json!("i".repeat(limits::BUTTON_ID_MAX + 1)),
        ),
        "interactive.action.buttons[0].reply.id",
    );
}

#[test]
fn reply_button_ids_are_unique() {
    let v = with(
        buttons(2),
        &["interactive", "action", "buttons", "1", "reply", "id"],
        json!("b0"),
    );
    refused(&v, "interactive.action.buttons[1].reply.id");
}

#[test]
fn reply_button_type_is_reply() {
    let v = with(
        buttons(1),
        &["interactive", "action", "buttons", "0", "type"],
        json!("url"),
    );
    refused(&v, "interactive.action.buttons[0].type");
}

#[test]
fn interactive_body_is_at_most_1024_characters() {
    let body = ["interactive", "body", "text"];
    accepted(&with(
        buttons(1),
        &body,
        json!("b".repeat(limits::BODY_MAX)),
    ));
    refused(
        &with(buttons(1), &body, json!("b".repeat(limits::BODY_MAX + 1))),
        "interactive.body.text",
    );
    let mut v = buttons(1);
    v["interactive"].as_object_mut().unwrap().remove("body");
    refused(&v, "interactive.body");
}

#[test]
fn list_body_is_at_most_4096_characters() {
    let body = ["interactive", "body", "text"];
    accepted(&with(
        list(1, 1),
        &body,
        json!("b".repeat(limits::LIST_BODY_MAX)),
    ));
    refused(
        &with(
            list(1, 1),
            &body,
            json!("b".repeat(limits::LIST_BODY_MAX + 1)),
        ),
        "interactive.body.text",
    );
}

#[test]
fn interactive_header_text_is_at_most_60_characters() {
    let header = ["interactive", "header"];
    let ok = json!({"type": "text", "text": "h".repeat(limits::HEADER_TEXT_MAX)});
    accepted(&with(buttons(1), &header, ok));
    let long = json!({"type": "text", "text": "h".repeat(limits::HEADER_TEXT_MAX + 1)});
    refused(&with(buttons(1), &header, long), "interactive.header.text");
    let image = json!({"type": "image", "image": {"link": "https://x.test/a.png"}});
    accepted(&with(buttons(1), &header, image.clone()));
    refused(&with(list(1, 1), &header, image), "interactive.header.type");
}

#[test]
fn interactive_footer_is_at_most_60_characters() {
    let footer = ["interactive", "footer", "text"];
    accepted(&with(
        buttons(1),
        &footer,
        json!("f".repeat(limits::FOOTER_MAX)),
    ));
    refused(
        &with(
            buttons(1),
            &footer,
            json!("f".repeat(limits::FOOTER_MAX + 1)),
        ),
        "interactive.footer.text",
    );
}

#[test]
fn list_button_label_is_1_to_20_characters() {
    let button = ["interactive", "action", "button"];
    accepted(&with(
        list(1, 1),
        &button,
        json!("b".repeat(limits::LIST_BUTTON_MAX)),
    ));
    refused(
        &with(
            list(1, 1),
            &button,
            json!("b".repeat(limits::LIST_BUTTON_MAX + 1)),
        ),
        "interactive.action.button",
    );
    refused(
        &with(list(1, 1), &button, json!("")),
        "interactive.action.button",
    );
}

#[test]
fn list_sections_are_1_to_10() {
    accepted(&list(10, 1));
    refused(&list(11, 0), "interactive.action.sections[10]");
    refused(&list(0, 0), "interactive.action.sections");
}

#[test]
fn list_rows_are_1_to_10_over_all_sections() {
    accepted(&list(2, 5));
    accepted(&list(1, 10));
    refused(&list(2, 6), "interactive.action.sections[1].rows[4]");
    refused(&list(1, 11), "interactive.action.sections[0].rows[10]");
    refused(&list(1, 0), "interactive.action.sections[0].rows");
}

#[test]
fn list_row_id_is_at_most_200_characters_and_unique() {
    let id = ["interactive", "action", "sections", "0", "rows", "0", "id"];
    accepted(&with(
        list(1, 2),
        &id,
        json!("i".repeat(limits::ROW_ID_MAX)),
    ));
    refused(
        &with(list(1, 2), &id, json!("i".repeat(limits::ROW_ID_MAX + 1))),
        "interactive.action.sections[0].rows[0].id",
    );
    let dup = with(
        list(2, 1),
        &["interactive", "action", "sections", "1", "rows", "0", "id"],
        json!("r1"),
    );
    refused(&dup, "interactive.action.sections[1].rows[0].id");
}

#[test]
fn list_row_title_is_at_most_24_characters() {
    let title = [
        "interactive",
        "action",
        "sections",
        "0",
        "rows",
        "0",
        "title",
    ];
    accepted(&with(
        list(1, 1),
        &title,
        json!("t".repeat(limits::ROW_TITLE_MAX)),
    ));
    refused(
        &with(
            list(1, 1),
            &title,
            json!("t".repeat(limits::ROW_TITLE_MAX + 1)),
        ),
        "interactive.action.sections[0].rows[0].title",
    );
}

#[test]
fn list_row_description_is_at_most_72_characters() {
    let d = [
        "interactive",
        "action",
        "sections",
        "0",
        "rows",
        "0",
        "description",
    ];
    accepted(&with(
        list(1, 1),
        &d,
        json!("d".repeat(limits::ROW_DESCRIPTION_MAX)),
    ));
    refused(
        &with(
            list(1, 1),
            &d,
            json!("d".repeat(limits::ROW_DESCRIPTION_MAX + 1)),
        ),
        "interactive.action.sections[0].rows[0].description",
    );
}

#[test]
fn list_section_title_is_at_most_24_characters() {
    let t = ["interactive", "action", "sections", "0", "title"];
    accepted(&with(
        list(1, 1),
        &t,
        json!("s".repeat(limits::SECTION_TITLE_MAX)),
    ));
    refused(
        &with(
            list(1, 1),
            &t,
            json!("s".repeat(limits::SECTION_TITLE_MAX + 1)),
        ),
        "interactive.action.sections[0].title",
    );
}

#[test]
fn list_section_title_is_required_with_several_sections() {
    let mut one = list(1, 1);
    one["interactive"]["action"]["sections"][0]
        .as_object_mut()
        .unwrap()
        .remove("title");
    accepted(&one);
    let mut two = list(2, 1);
    two["interactive"]["action"]["sections"][1]
        .as_object_mut()
        .unwrap()
        .remove("title");
    let err = refused(&two, "interactive.action.sections[1].title");
    assert_eq!(err.cloud_api_code(), 131_008);
}

#[test]
fn cta_url_display_text_is_at_most_20_characters() {
    accepted(&cta(
        &"d".repeat(limits::CTA_DISPLAY_TEXT_MAX),
        "https://x.test",
    ));
    refused(
        &cta(
            &"d".repeat(limits::CTA_DISPLAY_TEXT_MAX + 1),
            "https://x.test",
        ),
        "interactive.action.parameters.display_text",
    );
}

#[test]
fn cta_url_url_is_http_or_https() {
    accepted(&cta("Open", "http://x.test/a?b=c"));
    refused(
        &cta("Open", "javascript:alert(1)"),
        "interactive.action.parameters.url",
    );
}

#[test]
fn flow_cta_is_at_most_30_characters() {
    let flow = |cta: &str| {
        json!({"messaging_product": "whatsapp", "to": PHONE, "type": "interactive",
               "interactive": {"type": "flow", "body": {"text": "Go"},
                               "action": {"name": "flow", "parameters": {
                                   "flow_message_version": "3", "flow_id": "1", "flow_cta": cta}}}})
    };
    accepted(&flow(&"c".repeat(limits::FLOW_CTA_MAX)));
    refused(
        &flow(&"c".repeat(limits::FLOW_CTA_MAX + 1)),
        "interactive.action.parameters.flow_cta",
    );
}

#[test]
fn location_latitude_and_longitude_are_in_range() {
    let loc = |lat: Value, lon: Value| {
        json!({"messaging_product": "whatsapp", "to": PHONE, "type": "location",
               "location": {"latitude": lat, "longitude": lon}})
    };
    accepted(&loc(json!(-90), json!(180)));
    accepted(&loc(json!("37.48"), json!("-122.14")));
    refused(&loc(json!(90.5), json!(0)), "location.latitude");
    refused(&loc(json!(0), json!(-180.5)), "location.longitude");
    refused(&loc(json!("north"), json!(0)), "location.latitude");
}

#[test]
fn contacts_need_a_formatted_name() {
    let v = json!({"messaging_product": "whatsapp", "to": PHONE, "type": "contacts",
                   "contacts": [{"name": {"formatted_name": "Ana"}}, {"name": {"first_name": "B"}}]});
    let err = refused(&v, "contacts[1].name.formatted_name");
    assert_eq!(err.cloud_api_code(), 131_008);
    refused(&with(v, &["contacts"], json!([])), "contacts");
}

#[test]
fn reaction_needs_a_message_id_and_may_remove_with_an_empty_emoji() {
    let r = |v: Value| json!({"messaging_product": "whatsapp", "to": PHONE, "type": "reaction", "reaction": v});
    accepted(&r(json!({"message_id": "wamid.X", "emoji": ""})));
    accepted(&r(json!({"message_id": "wamid.X", "emoji": "\u{1F600}"})));
    refused(&r(json!({"emoji": "👍"})), "reaction.message_id");
}

#[test]
fn template_name_is_lowercase_digits_underscores_up_to_512() {
    let name = ["template", "name"];
    accepted(&with(
        template(json!([])),
        &name,
        json!("a".repeat(limits::TEMPLATE_NAME_MAX)),
    ));
    for bad in ["Order_Update", "order-update", "", "ordér"] {
        refused(
            &with(template(json!([])), &name, json!(bad)),
            "template.name",
        );
    }
    refused(
        &with(
            template(json!([])),
            &name,
            json!("a".repeat(limits::TEMPLATE_NAME_MAX + 1)),
        ),
        "template.name",
    );
}

#[test]
fn template_language_code_is_required() {
    let err = refused(
        &with(template(json!([])), &["template", "language"], json!({})),
        "template.language.code",
    );
    assert_eq!(err.cloud_api_code(), 131_008);
}

#[test]
fn template_has_at_most_one_header_and_one_body() {
    let body = json!({"type": "body", "parameters": [{"type": "text", "text": "Pablo"}]});
    let header = json!({"type": "header", "parameters": [{"type": "image", "image": {"id": "1"}}]});
    accepted(&template(json!([header, body])));
    refused(&template(json!([body, body])), "template.components[1]");
    refused(
        &template(json!([header, body, header])),
        "template.components[2]",
    );
}

#[test]
fn template_button_sub_type_is_known() {
    for sub in [
        "quick_reply",
        "url",
        "copy_code",
        "flow",
        "catalog",
        "mpm",
        "voice_call",
        "URL",
    ] {
        accepted(&template(
            json!([{"type": "button", "sub_type": sub, "index": "0"}]),
        ));
    }
    refused(
        &template(json!([{"type": "button", "sub_type": "phone_number", "index": "0"}])),
        "template.components[0].sub_type",
    );
}

#[test]
fn template_button_index_is_0_to_9_string_or_number() {
    let b = |index: Value| {
        template(json!([{"type": "button", "sub_type": "url", "index": index,
                                           "parameters": [{"type": "text", "text": "860198"}]}]))
    };
    accepted(&b(json!("9")));
    accepted(&b(json!(0)));
    for bad in [json!("10"), json!(10), json!("-1"), json!("a"), json!(1.5)] {
        refused(&b(bad), "template.components[0].index");
    }
    let err = refused(
        &template(json!([{"type": "button", "sub_type": "url"}])),
        "template.components[0].index",
    );
    assert_eq!(err.cloud_api_code(), 131_008);
    refused(
        &template(json!([{"type": "button", "sub_type": "url", "index": 1},
                         {"type": "button", "sub_type": "quick_reply", "index": "1"}])),
        "template.components[1].index",
    );
}

#[test]
fn template_parameters_are_of_known_types() {
    let body = |p: Value| template(json!([{"type": "body", "parameters": [p]}]));
    for ok in [
        json!({"type": "text", "text": "Pablo", "parameter_name": "first_name"}),
        json!({"type": "currency", "currency": {"fallback_value": "$1", "code": "USD", "amount_1000": 1000}}),
        json!({"type": "date_time", "date_time": {"fallback_value": "February 25, 1977"}}),
        json!({"type": "image", "image": {"link": "https://x.test/a.png"}}),
        json!({"type": "document", "document": {"id": "1", "filename": "a.pdf"}}),
        json!({"type": "location", "location": {"latitude": 1, "longitude": 2}}),
        json!({"type": "payload", "payload": "OK"}),
        json!({"type": "coupon_code", "coupon_code": "SAVE20"}),
        json!({"type": "action", "action": {"thumbnail_product_retailer_id": "x"}}),
    ] {
        accepted(&body(ok));
    }
    refused(
        &body(json!({"type": "emoji", "emoji": "x"})),
        "template.components[0].parameters[0].type",
    );
    refused(
        &body(json!({"type": "text", "text": 5})),
        "template.components[0].parameters[0].text",
    );
    refused(
        &body(json!({"type": "text"})),
        "template.components[0].parameters[0].text",
    );
    refused(
        &body(
            json!({"type": "currency", "currency": {"fallback_value": "$1", "code": "USD", "amount_1000": 1.5}}),
        ),
        "template.components[0].parameters[0].currency.amount_1000",
    );
    refused(
        &body(json!({"type": "image", "image": {"link": "ftp://x.test/a.png"}})),
        "template.components[0].parameters[0].image.link",
    );
    refused(
        &body(
            json!({"type": "coupon_code", "coupon_code": "c".repeat(limits::COUPON_CODE_MAX + 1)}),
        ),
        "template.components[0].parameters[0].coupon_code",
    );
    refused(
        &body(json!({"type": "action"})),
        "template.components[0].parameters[0].action",
    );
}

#[test]
fn template_component_type_is_known() {
    refused(
        &template(json!([{"type": "footer"}])),
        "template.components[0].type",
    );
}

#[test]
fn biz_opaque_callback_data_is_at_most_512_characters() {
    let key = ["biz_opaque_callback_data"];
    let r = accepted(&with(
        text("hi"),
        &key,
        json!("c".repeat(limits::CALLBACK_DATA_MAX)),
    ));
    assert_eq!(
        r.client_callback_data().map(str::len),
        Some(limits::CALLBACK_DATA_MAX)
    );
    refused(
        &with(
            text("hi"),
            &key,
            json!("c".repeat(limits::CALLBACK_DATA_MAX + 1)),
        ),
        "biz_opaque_callback_data",
    );
}

#[test]
fn context_message_id_must_not_be_empty() {
    let r = accepted(&with(
        text("hi"),
        &["context"],
        json!({"message_id": "wamid.A"}),
    ));
    assert_eq!(r.context_message_id(), Some("wamid.A"));
    refused(
        &with(text("hi"), &["context"], json!({"message_id": ""})),
        "context.message_id",
    );
    refused(
        &with(text("hi"), &["context"], json!({})),
        "context.message_id",
    );
}

#[test]
fn graph_body_replaces_the_clients_callback_data_but_keeps_it() {
    let r = accepted(&with(
        text("hi"),
        &["biz_opaque_callback_data"],
        json!("client-7"),
    ));
    assert_eq!(
        r.graph_body("ventana-1")["biz_opaque_callback_data"],
        "ventana-1"
    );
    assert_eq!(r.client_callback_data(), Some("client-7"));
}
