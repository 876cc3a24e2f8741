//! Template sends: the template's name and language, and the components that fill it in
//! (header, body and button parameters). Meta checks the parameters against the approved
//! template at send time; Ventana checks what can be known without it.

use std::collections::HashSet;

use serde_json::Value;

use super::check::{
    Caption, Obj, Res, as_object, at, coordinate, media, nth, opt_array, opt_str, req_object,
    req_str, req_text, wrong_kind,
};
use super::error::SendError;

/// Longest template name Meta allows.
pub const NAME_MAX: usize = 512;
/// Longest coupon code a `copy_code` button takes (since December 2025).
pub const COUPON_CODE_MAX: usize = 20;
/// Highest button index: buttons are numbered 0 to 9.
pub const BUTTON_INDEX_MAX: u64 = 9;

/// Button sub-types Meta documents (`quick_reply`, `url`, `copy_code`, `flow`, `catalog`) and
/// those client libraries send (`mpm`, `voice_call`).
const BUTTON_SUB_TYPES: [&str; 7] = [
    "quick_reply",
    "url",
    "copy_code",
    "flow",
    "catalog",
    "mpm",
    "voice_call",
];

/// Parameter types a component may carry.
const PARAMETER_TYPES: [&str; 13] = [
    "text",
    "currency",
    "date_time",
    "image",
    "video",
    "document",
    "location",
    "payload",
    "coupon_code",
    "action",
    "product",
    "limited_time_offer",
    "tap_target_configuration",
];

const PATH: &str = "template";

/// Validates the `template` object; gives its name and language code.
pub(super) fn validate(obj: &Obj) -> Res<(String, String)> {
    let name = req_str(obj, PATH, "name")?;
    check_name(name)?;
    let language = req_object(obj, PATH, "language")?;
    let code = req_text(language, "template.language", "code", 1, 32)?;
    opt_str(language, "template.language", "policy")?;

    if let Some(components) = opt_array(obj, PATH, "components")? {
        let cp = at(PATH, "components");
        let mut header = false;
        let mut body = false;
        let mut indexes = HashSet::new();
        for (i, c) in components.iter().enumerate() {
            let p = nth(&cp, i);
            let c = as_object(c, &p)?;
            // Meta's own examples write types in either case (`CATALOG`), so compare
            // case-insensitively.
            let ty = req_str(c, &p, "type")?.to_ascii_lowercase();
            match ty.as_str() {
                "header" | "body" => {
                    let seen = if ty == "header" {
                        &mut header
                    } else {
                        &mut body
                    };
                    if std::mem::replace(seen, true) {
                        return Err(SendError::invalid(
                            p,
                            format!("at most one {ty} component is allowed"),
                        ));
                    }
                }
                "button" => {
                    let sub = req_str(c, &p, "sub_type")?.to_ascii_lowercase();
                    if !BUTTON_SUB_TYPES.contains(&sub.as_str()) {
                        return Err(SendError::invalid(
                            at(&p, "sub_type"),
                            format!("must be one of {}", BUTTON_SUB_TYPES.join(", ")),
                        ));
                    }
                    let index = button_index(c, &p)?;
                    if !indexes.insert(index) {
                        return Err(SendError::invalid(
                            at(&p, "index"),
                            "button indexes must be unique",
                        ));
                    }
                }
                // Carousel cards and limited-time offers carry their own structures; Meta
                // checks them against the approved template.
                "carousel" | "limited_time_offer" => {}
                _ => {
                    return Err(SendError::invalid(
                        at(&p, "type"),
                        "must be one of header, body, button, carousel, limited_time_offer",
                    ));
                }
            }
            if let Some(params) = opt_array(c, &p, "parameters")? {
                let pp = at(&p, "parameters");
                for (j, param) in params.iter().enumerate() {
                    let path = nth(&pp, j);
                    parameter(as_object(param, &path)?, &path)?;
                }
            }
        }
    }
    Ok((name.to_owned(), code.to_owned()))
}

/// `^[a-z0-9_]{1,512}$`: the only names Meta lets a template have.
fn check_name(name: &str) -> Res<()> {
    let field = at(PATH, "name");
    if name.is_empty() {
        return Err(SendError::invalid(field, "must not be empty"));
    }
    if name.len() > NAME_MAX {
        return Err(SendError::invalid(
            field,
            format!("must be at most {NAME_MAX} characters"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(SendError::invalid(
            field,
            "may only contain lower-case letters, digits and underscores",
        ));
    }
    Ok(())
}

/// A button's `index`: 0 to 9, as a string (`"0"`) or a number (`0`).
fn button_index(c: &Obj, path: &str) -> Res<u64> {
    let field = at(path, "index");
    let index = match c.get("index") {
        None | Some(Value::Null) => return Err(SendError::missing(field)),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u64>().ok()
        }
        Some(Value::String(_)) => None,
        Some(v) => return Err(wrong_kind(field, "a string or a number", v)),
    };
    match index {
        Some(i) if i <= BUTTON_INDEX_MAX => Ok(i),
        _ => Err(SendError::invalid(
            field,
            format!("must be a button position from 0 to {BUTTON_INDEX_MAX}"),
        )),
    }
}

fn parameter(p: &Obj, path: &str) -> Res<()> {
    let ty = req_str(p, path, "type")?.to_ascii_lowercase();
    if !PARAMETER_TYPES.contains(&ty.as_str()) {
        return Err(SendError::invalid(
            at(path, "type"),
            format!("must be one of {}", PARAMETER_TYPES.join(", ")),
        ));
    }
    opt_str(p, path, "parameter_name")?;
    match ty.as_str() {
        "text" => {
            req_text(p, path, "text", 1, usize::MAX)?;
        }
        "payload" => {
            req_text(p, path, "payload", 1, usize::MAX)?;
        }
        "coupon_code" => {
            req_text(p, path, "coupon_code", 1, COUPON_CODE_MAX)?;
        }
        "currency" => {
            let cp = at(path, "currency");
            let c = req_object(p, path, "currency")?;
            req_text(c, &cp, "fallback_value", 1, usize::MAX)?;
            req_text(c, &cp, "code", 1, 8)?;
            match c.get("amount_1000") {
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
                None | Some(Value::Null) => {
                    return Err(SendError::missing(at(&cp, "amount_1000")));
                }
                Some(_) => {
                    return Err(SendError::invalid(
                        at(&cp, "amount_1000"),
                        "must be an integer (the amount times 1000)",
                    ));
                }
            }
        }
        "date_time" => {
            let dp = at(path, "date_time");
            req_text(
                req_object(p, path, "date_time")?,
                &dp,
                "fallback_value",
                1,
                usize::MAX,
            )?;
        }
        "image" | "video" | "document" => {
            media(req_object(p, path, &ty)?, &at(path, &ty), Caption::Ignored)?;
        }
        "location" => {
            let lp = at(path, "location");
            let l = req_object(p, path, "location")?;
            coordinate(l, &lp, "latitude", 90.0)?;
            coordinate(l, &lp, "longitude", 180.0)?;
        }
        // action, product, limited_time_offer, tap_target_configuration: a value named after
        // the type must be there; its inside is Meta's to judge.
        _ => {
            if p.get(ty.as_str()).is_none_or(Value::is_null) {
                return Err(SendError::missing(at(path, &ty)));
            }
        }
    }
    Ok(())
}
