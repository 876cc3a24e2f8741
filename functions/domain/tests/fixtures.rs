//! Every real payload in `tests/fixtures/` goes through the webhook split and the typed models.
//!
//! For each example: the payload is re-serialised to bytes, split into events, and every event
//! is parsed with its model (messages, statuses, preferences, field updates, errors; `calls[]`
//! and `message_echoes[]` items are kept raw). No parse may fail, no event may be lost (the
//! per-file totals below are checked against both a fixed table and a count taken from the
//! payload itself), and each file has assertions on the values that matter to Ventana.
//! Provenance of the fixtures: `tests/fixtures/README.md`.

use std::collections::BTreeMap;

use serde_json::Value;
use wa_domain::event::{EventKind, InboundEvent};
use wa_domain::model::{
    ApiError, ConsentText, FieldUpdate, IdentityChange, InboundMessage, Interactive,
    MessageContent, PreferenceValue, StatusReport, StatusValue, UserPreference,
};
use wa_domain::optout::{ConsentChange, Keywords};
use wa_domain::ports::Consent;
use wa_domain::status::DeliveryStatus;
use wa_domain::webhook;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");

/// An event and what its model made of it.
#[derive(Debug)]
enum Parsed {
    Message(Box<InboundMessage>),
    Status(StatusReport),
    Preference(UserPreference),
    Field(FieldUpdate),
    Error(ApiError),
    /// An `Item` event (`calls[]`, `message_echoes[]`): kept raw, no model.
    Item(String),
}

#[derive(Debug)]
struct Example {
    events: Vec<InboundEvent>,
    parsed: Vec<Parsed>,
}

/// Loads every example of a fixture file (name → whole webhook payload), splits each and
/// parses every event; panics, naming the example, on any failure or lost event.
fn load(rel: &str) -> BTreeMap<String, Example> {
    let path = format!("{FIXTURES}/{rel}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let examples: BTreeMap<String, Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(!examples.is_empty(), "{rel} has no examples");
    examples
        .into_iter()
        .map(|(name, payload)| {
            let ctx = format!("{rel} / {name}");
            let body = serde_json::to_vec(&payload).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let events = webhook::split(&body).unwrap_or_else(|e| panic!("{ctx}: split: {e}"));
            assert_eq!(
                events.len(),
                independent_count(&payload),
                "{ctx}: events lost or invented by split"
            );
            let parsed = events.iter().map(|e| parse(&ctx, e)).collect();
            (name, Example { events, parsed })
        })
        .collect()
}

fn parse(ctx: &str, e: &InboundEvent) -> Parsed {
    let item = e.item.get();
    let fail = |err: &dyn std::fmt::Debug| -> ! {
        panic!("{ctx}: {:?} event did not parse: {err:?}\n{item}", e.kind)
    };
    match e.kind {
        EventKind::Message => {
            let contact = e.contact.as_ref().map(|c| c.get());
            Parsed::Message(Box::new(
                InboundMessage::parse(item, contact).unwrap_or_else(|x| fail(&x)),
            ))
        }
        EventKind::Status => Parsed::Status(StatusReport::parse(item).unwrap_or_else(|x| fail(&x))),
        EventKind::Preference => {
            Parsed::Preference(UserPreference::parse(item).unwrap_or_else(|x| fail(&x)))
        }
        EventKind::Error => Parsed::Error(ApiError::parse(item).unwrap_or_else(|x| fail(&x))),
        EventKind::Field => Parsed::Field(FieldUpdate::parse(&e.field, item)),
        EventKind::Item => Parsed::Item(item.to_owned()),
    }
}

/// How many events a payload should give, counted from the payload itself: one per element of
/// the split arrays of each change, or one for a change with none.
fn independent_count(payload: &Value) -> usize {
    const SPLIT: [&str; 6] = [
        "messages",
        "statuses",
        "errors",
        "user_preferences",
        "calls",
        "message_echoes",
    ];
    let mut n = 0;
    for entry in payload["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            let value = &change["value"];
            if value.is_null() {
                continue;
            }
            let items: usize = SPLIT
                .iter()
                .map(|k| value[*k].as_array().map_or(0, Vec::len))
                .sum();
            n += items.max(1);
        }
    }
    n
}

/// Events per kind over a whole file.
fn counts(examples: &BTreeMap<String, Example>) -> BTreeMap<&'static str, usize> {
    let mut c = BTreeMap::new();
    for ex in examples.values() {
        for e in &ex.events {
            *c.entry(e.kind.as_str()).or_default() += 1;
        }
    }
    c
}

fn the<'a>(examples: &'a BTreeMap<String, Example>, name: &str) -> &'a Example {
    examples
        .get(name)
        .unwrap_or_else(|| panic!("no example {name}"))
}

/// The single parsed event of an example.
fn one<'a>(examples: &'a BTreeMap<String, Example>, name: &str) -> &'a Parsed {
    let ex = the(examples, name);
    assert_eq!(ex.parsed.len(), 1, "{name}: {:?}", ex.parsed);
    &ex.parsed[0]
}

fn message<'a>(examples: &'a BTreeMap<String, Example>, name: &str) -> &'a InboundMessage {
    match the(examples, name).parsed.iter().find_map(|p| match p {
        Parsed::Message(m) => Some(m),
        _ => None,
    }) {
        Some(m) => m,
        None => panic!("{name}: no message"),
    }
}

fn status<'a>(examples: &'a BTreeMap<String, Example>, name: &str) -> &'a StatusReport {
    match one(examples, name) {
        Parsed::Status(s) => s,
        other => panic!("{name}: {other:?}"),
    }
}

fn field<'a>(examples: &'a BTreeMap<String, Example>, name: &str) -> &'a FieldUpdate {
    match one(examples, name) {
        Parsed::Field(f) => f,
        other => panic!("{name}: {other:?}"),
    }
}

// ---- totals: every file, every event ----------------------------------------------------------

/// Events per kind for every pywa fixture file. A file added to the folder without a row here
/// fails the test, as does any lost event.
const PYWA_TOTALS: &[(&str, &[(&str, usize)])] = &[
    ("account_update.json", &[("field", 17)]),
    ("call_connect.json", &[("item", 2)]),
    ("call_permission_update.json", &[("message", 2)]),
    ("call_status.json", &[("status", 1)]),
    ("call_terminate.json", &[("error", 1), ("item", 1)]),
    ("callback_button.json", &[("message", 3)]),
    ("callback_selection.json", &[("message", 2)]),
    ("deleted_message.json", &[("message", 1)]),
    ("edited_message.json", &[("message", 1)]),
    ("flow_completion.json", &[("message", 2)]),
    ("message.json", &[("error", 1), ("message", 23)]),
    ("message_status.json", &[("status", 7)]),
    ("outgoing_message.json", &[("item", 3)]),
    ("system.json", &[("message", 2)]),
    ("template_category_update.json", &[("field", 1)]),
    ("template_components_update.json", &[("field", 1)]),
    ("template_quality_update.json", &[("field", 1)]),
    ("template_status_update.json", &[("field", 2)]),
    ("user_marketing_preferences.json", &[("preference", 2)]),
];

#[test]
fn every_pywa_example_parses_and_no_event_is_lost() {
    let mut files: Vec<String> = std::fs::read_dir(format!("{FIXTURES}/pywa-updates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    let listed: Vec<&str> = PYWA_TOTALS.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, listed, "fixture files and the totals table differ");

    let mut grand_total = 0;
    for (file, expected) in PYWA_TOTALS {
        let examples = load(&format!("pywa-updates/{file}"));
        let expected: BTreeMap<&str, usize> = expected.iter().copied().collect();
        assert_eq!(counts(&examples), expected, "{file}");
        grand_total += expected.values().sum::<usize>();
    }
    assert_eq!(grand_total, 76);
}

// ---- message.json ---------------------------------------------------------------------------

#[test]
fn pywa_messages() {
    let ex = load("pywa-updates/message.json");
    assert_eq!(ex.len(), 23);

    let m = message(&ex, "text");
    assert_eq!(m.id, "wamid.xyzxyz");
    assert_eq!(m.timestamp, 1_697_043_223);
    assert_eq!(m.from.as_deref(), Some("972987654321"));
    assert_eq!(m.profile_name.as_deref(), Some("Test Name"));
    assert_eq!(m.consent_text(), Some(ConsentText::Typed("Body Text")));
    assert!(m.opens_window());
    assert!(!m.from_referral());

    let MessageContent::Image(img) = &message(&ex, "image").content else {
        panic!()
    };
    assert_eq!(img.id.as_deref(), Some("65463453"));
    assert_eq!(img.url, None);
    let MessageContent::Image(img) = &message(&ex, "media_with_url").content else {
        panic!()
    };
    assert!(
        img.url
            .as_deref()
            .unwrap()
            .starts_with("https://lookaside.fbsbx.com/")
    );

    let v = message(&ex, "video");
    assert!(v.context.as_ref().unwrap().forwarded);
    assert_eq!(
        v.content.media().unwrap().caption.as_deref(),
        Some("caption")
    );
    assert!(matches!(&v.content, MessageContent::Video(_)));
    let MessageContent::Document(d) = &message(&ex, "document").content else {
        panic!()
    };
    assert_eq!(d.filename.as_deref(), Some("filename.pdf"));

    let MessageContent::Audio(a) = &message(&ex, "audio").content else {
        panic!()
    };
    assert!(!a.voice);
    let MessageContent::Audio(a) = &message(&ex, "voice").content else {
        panic!()
    };
    assert!(a.voice);
    assert_eq!(a.mime_type.as_deref(), Some("audio/ogg; codecs=opus"));

    let MessageContent::Sticker(s) = &message(&ex, "static_sticker").content else {
        panic!()
    };
    assert!(!s.animated);
    let MessageContent::Sticker(s) = &message(&ex, "animated_sticker").content else {
        panic!()
    };
    assert!(s.animated);

    let MessageContent::Reaction(r) = &message(&ex, "reaction").content else {
        panic!()
    };
    assert_eq!(r.emoji.as_deref(), Some("😮"));
    assert_eq!(r.message_id.as_deref(), Some("wamid.yzxyzx="));
    assert!(!r.is_removal());
    for name in ["unreaction_empty", "unreaction_no_emoji"] {
        let m = message(&ex, name);
        let MessageContent::Reaction(r) = &m.content else {
            panic!("{name}")
        };
        assert!(r.is_removal(), "{name}");
        assert!(m.opens_window(), "{name}");
    }

    let MessageContent::Location(l) = &message(&ex, "current_location").content else {
        panic!()
    };
    assert_eq!((l.latitude, l.longitude), (Some(12.25089), Some(43.90539)));
    assert_eq!(l.name, None);
    let MessageContent::Location(l) = &message(&ex, "chosen_location").content else {
        panic!()
    };
    assert_eq!(l.name.as_deref(), Some("Facebook HQ"));
    assert_eq!(l.longitude, Some(-122.2164385));

    let MessageContent::Contacts(cs) = &message(&ex, "contacts").content else {
        panic!()
    };
    assert_eq!(cs.len(), 3);
    let name = cs[0].name.as_ref().unwrap();
    assert_eq!(name.formatted_name.as_deref(), Some("Chandler Bing"));
    assert_eq!(name.last_name.as_deref(), Some("Bing"));
    assert_eq!(cs[0].phones[0].kind.as_deref(), Some("CELL"));
    assert_eq!(cs[1].name.as_ref().unwrap().last_name, None);

    let MessageContent::Order(o) = &message(&ex, "order").content else {
        panic!()
    };
    assert_eq!(o.catalog_id.as_deref(), Some("354160437058781"));
    assert_eq!(o.text.as_deref(), Some(""));
    let lines: Vec<_> = o
        .product_items
        .iter()
        .map(|i| {
            (
                i.product_retailer_id.as_deref().unwrap(),
                i.quantity.unwrap(),
                i.item_price.as_deref().unwrap(),
                i.currency.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("HAMBURGER", 3, "30", "ILS"),
            ("FRENCH_FRIES", 2, "35", "ILS"),
            ("SODA", 2, "10", "ILS")
        ]
    );

    let m = message(&ex, "unsupported");
    assert_eq!(
        m.content,
        MessageContent::Unsupported {
            unsupported_type: None
        }
    );
    assert_eq!(m.errors[0].code, 131_051);
    assert_eq!(
        m.errors[0].details.as_deref(),
        Some("Message type is currently not supported.")
    );
    assert!(m.opens_window());
    let m = message(&ex, "unsupported_with_type");
    assert_eq!(
        m.content,
        MessageContent::Unsupported {
            unsupported_type: Some("pool".into())
        }
    );

    let ctx = message(&ex, "reply").context.clone().unwrap();
    assert_eq!(ctx.id.as_deref(), Some("wamid.xyzxyz=="));
    assert_eq!(ctx.from.as_deref(), Some("972123456789"));
    assert!(!ctx.forwarded);
    let ctx = message(&ex, "forwarded").context.clone().unwrap();
    assert!(ctx.forwarded && !ctx.frequently_forwarded);
    let ctx = message(&ex, "forwarded_many_times")
        .context
        .clone()
        .unwrap();
    assert!(ctx.frequently_forwarded);

    // An interactive message without its `interactive` object, plus a value-level error: the
    // message is kept (as a malformed Unknown) and the error is its own event.
    let ex_err = the(&ex, "interactive_message_with_err");
    assert_eq!(ex_err.parsed.len(), 2);
    let m = message(&ex, "interactive_message_with_err");
    assert_eq!(
        m.content,
        MessageContent::Unknown {
            type_name: "interactive".into()
        }
    );
    assert!(m.content.is_malformed());
    assert!(m.opens_window());
    assert!(
        matches!(&ex_err.parsed[1], Parsed::Error(e) if e.code == 131_000
        && e.details.as_deref() == Some("Unsupported webhook payload"))
    );

    let m = message(&ex, "referral");
    assert!(m.from_referral());
    let r = m.referral.as_ref().unwrap();
    assert_eq!(r.ctwa_clid.as_deref(), Some("CTWA_CLID"));
    assert_eq!(r.source_id.as_deref(), Some("ADID"));
    assert_eq!(r.thumbnail_url.as_deref(), Some("RAW_THUMBNAIL_URL"));
    assert_eq!(r.welcome_message, None);
}

// ---- interactive replies, buttons, flows ---------------------------------------------------

#[test]
fn pywa_buttons_lists_and_flows() {
    let ex = load("pywa-updates/callback_button.json");
    let m = message(&ex, "button");
    assert_eq!(
        m.content,
        MessageContent::Interactive(Interactive::ButtonReply {
            id: Some("callback_data".into()),
            title: Some("title".into())
        })
    );
    assert_eq!(
        m.consent_text(),
        None,
        "a reply button's title is the business's own words"
    );
    let m = message(&ex, "quick_reply");
    assert_eq!(
        m.content,
        MessageContent::Button {
            payload: Some("callback_data".into()),
            text: Some("title".into())
        }
    );
    assert_eq!(
        m.consent_text(),
        Some(ConsentText::TemplateButton {
            text: Some("title"),
            payload: Some("callback_data")
        })
    );
    assert!(m.context.is_some());
    let m = message(&ex, "quick_reply_without_context");
    assert_eq!(m.from_user_id.as_deref(), Some("US.13491208655302741918"));
    assert_eq!(m.context, None);
    assert_eq!(m.type_name(), "button");

    let ex = load("pywa-updates/callback_selection.json");
    let MessageContent::Interactive(i) = &message(&ex, "description").content else {
        panic!()
    };
    assert_eq!(
        *i,
        Interactive::ListReply {
            id: Some("callback_data".into()),
            title: Some("title".into()),
            description: Some("description".into())
        }
    );
    let MessageContent::Interactive(i) = &message(&ex, "callback").content else {
        panic!()
    };
    assert!(matches!(
        i,
        Interactive::ListReply {
            description: None,
            ..
        }
    ));

    let ex = load("pywa-updates/flow_completion.json");
    for (name, has_token) in [("completion", true), ("without_flow_token", false)] {
        let MessageContent::Interactive(Interactive::NfmReply {
            name: flow,
            body,
            response_json,
        }) = &message(&ex, name).content
        else {
            panic!("{name}")
        };
        assert_eq!(flow.as_deref(), Some("flow"));
        assert_eq!(body.as_deref(), Some("Sent"));
        let answers: Value = serde_json::from_str(response_json).unwrap();
        assert_eq!(answers["delivery_rating"], "4");
        assert_eq!(answers.get("flow_token").is_some(), has_token, "{name}");
    }
}

// ---- system, revoke, edit, echoes -----------------------------------------------------------

#[test]
fn pywa_system_revoke_edit_and_echoes() {
    let ex = load("pywa-updates/system.json");
    let m = message(&ex, "phone_number_change");
    assert!(!m.opens_window());
    assert_eq!(m.profile_name, None, "system messages carry no contacts");
    assert_eq!(
        m.identity_change(),
        Some(IdentityChange::Number {
            new_wa_id: "972912345678".into(),
            previous_wa_id: Some("972987654321".into()),
            new_user_id: None,
            previous_user_id: None,
        })
    );
    let m = message(&ex, "identity_change");
    let MessageContent::System(s) = &m.content else {
        panic!()
    };
    assert_eq!(s.kind.as_deref(), Some("customer_identity_changed"));
    let id = s.identity.as_ref().unwrap();
    assert_eq!(id.hash.as_deref(), Some("xyzxyz"));
    assert_eq!(id.acknowledged, Some(true));
    assert_eq!(id.created_timestamp, Some(1_697_044_706));
    assert_eq!(m.identity_change(), None);
    assert!(!m.opens_window());

    let ex = load("pywa-updates/deleted_message.json");
    let m = message(&ex, "revoke");
    assert_eq!(
        m.content,
        MessageContent::Revoke {
            original_message_id: Some("<ORIGINAL_WHATSAPP_MESSAGE_ID>".into())
        }
    );
    assert!(!m.opens_window());

    let ex = load("pywa-updates/edited_message.json");
    let m = message(&ex, "image");
    let MessageContent::Edit {
        original_message_id,
        message: edited,
    } = &m.content
    else {
        panic!()
    };
    assert!(
        original_message_id
            .as_deref()
            .unwrap()
            .starts_with("wamid.")
    );
    assert_eq!(edited["image"]["caption"], "Updated image caption");
    assert!(m.opens_window());

    // Echoes of what the business sent from the WhatsApp Business app: kept raw, whole.
    let ex = load("pywa-updates/outgoing_message.json");
    for (name, needle) in [
        ("text", "Test message"),
        ("delete", "wamid.zzzzzz"),
        ("edit", "Text was edited"),
    ] {
        let e = &the(&ex, name).events[0];
        assert_eq!(e.field, "smb_message_echoes");
        assert!(
            matches!(one(&ex, name), Parsed::Item(raw) if raw.contains(needle)),
            "{name}"
        );
    }
}

// ---- statuses -------------------------------------------------------------------------------

#[test]
fn pywa_statuses() {
    let ex = load("pywa-updates/message_status.json");
    for (name, expected) in [
        ("sent", DeliveryStatus::Sent),
        ("delivered", DeliveryStatus::Delivered),
        ("read", DeliveryStatus::Read),
        ("played", DeliveryStatus::Played),
        ("failed", DeliveryStatus::Failed),
        ("with_tracker", DeliveryStatus::Sent),
        ("group", DeliveryStatus::Read),
    ] {
        assert_eq!(
            status(&ex, name).status,
            StatusValue::Delivery(expected),
            "{name}"
        );
    }

    let s = status(&ex, "sent");
    assert_eq!(s.id, "wamid.xyzxyz");
    assert_eq!(s.timestamp, 1_698_266_945);
    assert_eq!(s.recipient_id.as_deref(), Some("972987654321"));
    let c = s.conversation.as_ref().unwrap();
    assert_eq!(c.origin_type.as_deref(), Some("service"));
    assert_eq!(c.expiration_timestamp, Some(1_698_339_900));
    let p = s.pricing.as_ref().unwrap();
    assert_eq!(
        p.pricing_model.as_deref(),
        Some("CBP"),
        "pre-July-2025 pricing"
    );
    assert_eq!(p.kind, None);
    assert_eq!(p.billable, Some(true));
    assert!(
        s.pricing_raw
            .as_deref()
            .unwrap()
            .contains(r#""pricing_model":"CBP""#)
    );
    assert_eq!(
        status(&ex, "delivered")
            .conversation
            .as_ref()
            .unwrap()
            .expiration_timestamp,
        None
    );

    let s = status(&ex, "failed");
    assert_eq!(s.errors.len(), 1);
    assert_eq!(s.errors[0].code, 130_472);
    assert_eq!(
        s.errors[0].title.as_deref(),
        Some("User's number is part of an experiment")
    );
    assert!(s.pricing.is_none() && s.pricing_raw.is_none());

    assert_eq!(
        status(&ex, "with_tracker")
            .biz_opaque_callback_data
            .as_deref(),
        Some("some data")
    );

    let s = status(&ex, "group");
    assert_eq!(s.recipient_type.as_deref(), Some("group"));
    assert!(s.is_group());
    assert_eq!(
        s.recipient_participant_user_id.as_deref(),
        Some("US.123456")
    );
    assert_eq!(
        s.recipient_participant_parent_user_id.as_deref(),
        Some("<PARENT_BSUID>")
    );
    assert_eq!(
        the(&ex, "group").events[0].customer,
        None,
        "a group is no customer"
    );
}

// ---- calls ----------------------------------------------------------------------------------

#[test]
fn pywa_calls_are_kept_whole() {
    let ex = load("pywa-updates/call_connect.json");
    for name in ["business_initiated", "user_initiated"] {
        let e = &the(&ex, name).events[0];
        assert_eq!(
            (e.kind, e.field.as_str()),
            (EventKind::Item, "calls"),
            "{name}"
        );
        assert!(matches!(one(&ex, name), Parsed::Item(raw) if raw.contains("wacid.xxxx=")));
    }

    let ex = load("pywa-updates/call_permission_update.json");
    for (name, response) in [("accept", "accept"), ("reject", "reject")] {
        let m = message(&ex, name);
        let MessageContent::Interactive(Interactive::Other { kind, raw }) = &m.content else {
            panic!("{name}: {:?}", m.content)
        };
        assert_eq!(kind, "call_permission_reply");
        assert!(raw.contains(&format!(r#""response":"{response}""#)));
        assert_eq!(m.consent_text(), None);
        assert!(m.opens_window());
    }

    // A call status arrives as a status on the `calls` field, with an uppercase status.
    let ex = load("pywa-updates/call_status.json");
    assert_eq!(the(&ex, "call_status").events[0].field, "calls");
    let s = status(&ex, "call_status");
    assert_eq!(s.status, StatusValue::Other("RINGING".into()));
    assert_eq!(s.status.delivery(), None);
    assert_eq!(s.kind.as_deref(), Some("call"));
    assert_eq!(s.biz_opaque_callback_data.as_deref(), Some("random_string"));

    let ex = load("pywa-updates/call_terminate.json");
    let parsed = &the(&ex, "call_terminate").parsed;
    assert!(matches!(&parsed[0], Parsed::Error(e) if e.code == 12_455));
    assert!(matches!(&parsed[1], Parsed::Item(raw) if raw.contains(r#""event":"terminate""#)));
}

// ---- preferences ----------------------------------------------------------------------------

#[test]
fn pywa_marketing_preferences() {
    let ex = load("pywa-updates/user_marketing_preferences.json");
    let Parsed::Preference(p) = one(&ex, "resume") else {
        panic!()
    };
    assert_eq!(p.value, PreferenceValue::Resume);
    assert_eq!(p.wa_id.as_deref(), Some("16505551234"));
    assert_eq!(p.category.as_deref(), Some("marketing_messages"));
    assert_eq!(p.timestamp, Some(1_731_705_721));
    let Parsed::Preference(p) = one(&ex, "signup") else {
        panic!()
    };
    assert_eq!(p.value, PreferenceValue::Other("signup".into()));
    assert_eq!(p.signup_id.as_deref(), Some("13176843987434774"));
}

// ---- templates ------------------------------------------------------------------------------

#[test]
fn pywa_template_updates() {
    let ex = load("pywa-updates/template_status_update.json");
    let FieldUpdate::TemplateStatus(t) = field(&ex, "approved") else {
        panic!()
    };
    assert_eq!(t.event, "APPROVED");
    assert_eq!(t.template_id.as_deref(), Some("1689556908129832"));
    assert_eq!(t.name.as_deref(), Some("order_confirmation"));
    assert_eq!(t.language.as_deref(), Some("en_US"));
    assert_eq!(t.category.as_deref(), Some("UTILITY"));
    assert_eq!(t.reason.as_deref(), Some("NONE"));
    assert_eq!(t.rejection_info, None);
    assert_eq!(
        the(&ex, "approved").events[0].entry_time,
        Some(1_751_247_548)
    );
    let FieldUpdate::TemplateStatus(t) = field(&ex, "rejected") else {
        panic!()
    };
    assert_eq!(t.event, "REJECTED");
    assert_eq!(t.template_id.as_deref(), Some("1689556908129835"));
    assert_eq!(t.reason.as_deref(), Some("INVALID_FORMAT"));
    assert!(
        t.rejection_info
            .as_ref()
            .unwrap()
            .recommendation
            .as_deref()
            .unwrap()
            .starts_with("Separate parameters")
    );

    let ex = load("pywa-updates/template_category_update.json");
    let FieldUpdate::TemplateCategory(c) = field(&ex, "marketing") else {
        panic!()
    };
    assert_eq!(c.template_id.as_deref(), Some("12345678"));
    assert_eq!(c.language.as_deref(), Some("he"));
    assert_eq!(c.new_category.as_deref(), Some("MARKETING"));
    assert_eq!(
        (
            c.previous_category.as_deref(),
            c.correct_category.as_deref()
        ),
        (None, None)
    );

    let ex = load("pywa-updates/template_components_update.json");
    let FieldUpdate::TemplateComponents(c) = field(&ex, "element") else {
        panic!()
    };
    assert_eq!(c.template_id.as_deref(), Some("12345678"));
    assert_eq!(c.name.as_deref(), Some("my_message_template"));

    let ex = load("pywa-updates/template_quality_update.json");
    let FieldUpdate::TemplateQuality(q) = field(&ex, "yellow") else {
        panic!()
    };
    assert_eq!(q.template_id.as_deref(), Some("806312974732579"));
    assert_eq!(q.previous_quality_score.as_deref(), Some("GREEN"));
    assert_eq!(q.new_quality_score.as_deref(), Some("YELLOW"));
}

// ---- account updates ------------------------------------------------------------------------

#[test]
fn pywa_account_updates() {
    let ex = load("pywa-updates/account_update.json");
    let events = [
        ("account_deleted", "ACCOUNT_DELETED"),
        ("account_restriction", "ACCOUNT_RESTRICTION"),
        ("account_violation", "ACCOUNT_VIOLATION"),
        ("ad_account_linked", "AD_ACCOUNT_LINKED"),
        (
            "authentication_international_eligibility",
            "AUTH_INTL_PRICE_ELIGIBILITY_UPDATE",
        ),
        ("account_disabled", "DISABLED_UPDATE"),
        ("mm_api_for_wa_terms_of_service", "MM_LITE_TERMS_SIGNED"),
        ("partner_added", "PARTNER_ADDED"),
        ("partner_app_installed", "PARTNER_APP_INSTALLED"),
        ("partner_app_uninstalled", "PARTNER_APP_UNINSTALLED"),
        (
            "partner_led_business_verification_status",
            "PARTNER_CLIENT_CERTIFICATION_STATUS_UPDATE",
        ),
        ("partner_removed", "PARTNER_REMOVED"),
        ("partner_removed_wa_app_disconnection", "PARTNER_REMOVED"),
        (
            "primary_business_location_set",
            "BUSINESS_PRIMARY_LOCATION_COUNTRY_UPDATE",
        ),
        ("pricing_tiering_update", "VOLUME_BASED_PRICING_TIER_UPDATE"),
        ("account_offboarded", "ACCOUNT_OFFBOARDED"),
        ("account_reconnected", "ACCOUNT_RECONNECTED"),
    ];
    assert_eq!(ex.len(), events.len());
    let account = |name: &str| match field(&ex, name) {
        FieldUpdate::AccountUpdate(a) => a.clone(),
        other => panic!("{name}: {other:?}"),
    };
    for (name, event) in events {
        assert_eq!(account(name).event, event, "{name}");
        assert!(the(&ex, name).events[0].entry_time.is_some(), "{name}");
    }

    let a = account("account_restriction");
    let types: Vec<_> = a
        .restrictions
        .iter()
        .map(|r| r.restriction_type.as_deref().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "RESTRICTED_BIZ_INITIATED_MESSAGING",
            "RESTRICTED_ADD_PHONE_NUMBER_ACTION"
        ]
    );
    assert_eq!(a.restrictions[0].expiration, Some(1_641_330_498));
    assert_eq!(
        account("account_violation").violation_type.as_deref(),
        Some("ADULT")
    );
    let a = account("account_disabled");
    assert_eq!(a.ban_state.as_deref(), Some("REINSTATE"));
    assert_eq!(a.ban_date.as_deref(), Some("April 17, 2025"));
    assert_eq!(
        account("ad_account_linked").waba_id.as_deref(),
        Some("980198427658004")
    );
    assert_eq!(
        account("partner_added").owner_business_id.as_deref(),
        Some("2329417887457253")
    );
    let tier = account("pricing_tiering_update").volume_tier.unwrap();
    assert_eq!(tier.tier.as_deref(), Some("25000001:50000000"));
    assert_eq!(tier.tier_update_time, Some(1_743_451_903));
    assert_eq!(tier.effective_month.as_deref(), Some("2025-11"));
    assert_eq!(
        account("primary_business_location_set").country.as_deref(),
        Some("IN")
    );
    assert_eq!(account("account_deleted").waba_id, None);
}

// ---- Meta's own examples (facebook/openapi, v23.0) ------------------------------------------

#[test]
fn meta_openapi_webhook_examples() {
    let ex = load("meta-webhooks/examples.json");
    let names: Vec<&str> = ex.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "Button Message",
            "Contact Sharing Message",
            "Group Create Message",
            "Group Remove Participants",
            "Group Settings Update",
            "Image Message",
            "Interactive Button Reply Message",
            "Interactive List Reply Message",
            "Location Message",
            "Order Message",
            "Reaction Message",
            "System Message",
            "Text Message",
            "Text Message from Click to WhatsApp Ad",
            "Text Message with Context (Product Inquiry)",
            "Unsupported Message",
        ]
    );
    let expected: BTreeMap<&str, usize> = [("field", 3), ("message", 13)].into();
    assert_eq!(counts(&ex), expected);

    let m = message(&ex, "Text Message");
    assert_eq!(
        m.consent_text(),
        Some(ConsentText::Typed("Does it come in another color?"))
    );
    assert_eq!(
        m.timestamp, 1_749_416_383,
        "v23 sends timestamps as strings"
    );
    assert_eq!(m.profile_name.as_deref(), Some("Sheena Nelson"));
    assert_eq!(m.from_user_id, None, "v23 has no BSUIDs");

    let ctx = message(&ex, "Text Message with Context (Product Inquiry)")
        .context
        .clone()
        .unwrap();
    let product = ctx.referred_product.unwrap();
    assert_eq!(product.catalog_id.as_deref(), Some("194836987003835"));
    assert_eq!(product.product_retailer_id.as_deref(), Some("di9ozbzfi4"));

    let m = message(&ex, "Text Message from Click to WhatsApp Ad");
    assert!(m.from_referral());
    let r = m.referral.as_ref().unwrap();
    assert_eq!(r.source_type.as_deref(), Some("ad"));
    assert_eq!(
        r.welcome_message.as_ref().unwrap().text.as_deref(),
        Some("Hi there! Let us know how we can help!")
    );

    let MessageContent::Reaction(r) = &message(&ex, "Reaction Message").content else {
        panic!()
    };
    assert_eq!(r.emoji.as_deref(), Some("👍"));

    let m = message(&ex, "Image Message");
    assert_eq!(
        m.content.media().unwrap().caption.as_deref(),
        Some("Taj Mahal")
    );

    let MessageContent::Location(l) = &message(&ex, "Location Message").content else {
        panic!()
    };
    assert_eq!(l.name.as_deref(), Some("Philz Coffee"));
    assert_eq!(l.latitude, Some(37.44221496582));

    let MessageContent::Contacts(cs) = &message(&ex, "Contact Sharing Message").content else {
        panic!()
    };
    assert_eq!(
        cs[0].name.as_ref().unwrap().formatted_name.as_deref(),
        Some("Lucía Gómez")
    );
    assert_eq!(
        cs[0].org.as_ref().unwrap().company.as_deref(),
        Some("Google")
    );
    assert_eq!(cs[0].phones[0].wa_id.as_deref(), Some("19835552319"));

    let m = message(&ex, "Unsupported Message");
    assert!(matches!(m.content, MessageContent::Unsupported { .. }));
    assert_eq!(m.errors[0].code, 131_051);

    // Meta's template quick-reply "Unsubscribe" is an opt-out button: marketing only.
    let keywords = Keywords::default();
    let m = message(&ex, "Button Message");
    assert!(
        matches!(&m.content, MessageContent::Button { payload, .. } if payload.as_deref() == Some("Unsubscribe"))
    );
    assert_eq!(
        m.consent_text().and_then(|t| keywords.consent_change(t)),
        Some(ConsentChange {
            scope: "marketing",
            consent: Consent::OptedOut
        })
    );

    let MessageContent::Interactive(i) = &message(&ex, "Interactive List Reply Message").content
    else {
        panic!()
    };
    assert_eq!(i.reply_id(), Some("priority_express"));
    // Meta's reply button {"id":"cancel-button","title":"Cancel"} is the business's own menu:
    // tapping it is no opt-out, though typed "Cancel" is.
    let m = message(&ex, "Interactive Button Reply Message");
    let MessageContent::Interactive(i) = &m.content else {
        panic!("{:?}", m.content)
    };
    assert_eq!(
        (i.reply_id(), i.reply_title()),
        (Some("cancel-button"), Some("Cancel"))
    );
    assert_eq!(m.consent_text(), None);
    assert_eq!(
        keywords.consent_change(ConsentText::Typed("Cancel")),
        Some(ConsentChange {
            scope: "all",
            consent: Consent::OptedOut
        })
    );

    let MessageContent::Order(o) = &message(&ex, "Order Message").content else {
        panic!()
    };
    let prices: Vec<_> = o
        .product_items
        .iter()
        .map(|i| {
            (
                i.item_price.as_deref().unwrap(),
                i.currency.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(prices, [("30", "USD"), ("25", "USD")]);

    let m = message(&ex, "System Message");
    assert!(!m.opens_window());
    assert!(matches!(
        m.identity_change(),
        Some(IdentityChange::Number { new_wa_id, previous_wa_id: Some(old), .. })
            if new_wa_id == "12195555358" && old == "16505551234"
    ));

    // Group lifecycle fields are not split (no `messages`-style arrays): whole-value events,
    // not modelled yet.
    for (name, group_field) in [
        ("Group Create Message", "group_lifecycle_update"),
        ("Group Settings Update", "group_settings_update"),
        ("Group Remove Participants", "group_participants_update"),
    ] {
        let e = &the(&ex, name).events[0];
        assert_eq!((e.kind, e.field.as_str()), (EventKind::Field, group_field));
        assert_eq!(
            field(&ex, name),
            &FieldUpdate::Other {
                field: group_field.into()
            }
        );
        assert!(
            e.item
                .get()
                .contains("Y2FwaV9ncm91cDoxODA1NTU1MDE3MjoxMjAzNjMyMjI3NzE5NjMwNjcZD")
        );
    }
}
