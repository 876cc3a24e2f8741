//! Checking a template send against the registry: the template is approved in that language,
//! and the send's parameters and buttons fit its placeholders and buttons. What Meta would
//! refuse later with 132000 / 132001 / 132012 / 132015 / 132016 is refused before it is
//! queued, naming what is wrong.

use std::collections::BTreeMap;

use serde_json::Value;

use super::shape::{ButtonShape, HeaderShape, Placeholders, TemplateShape};
use super::{TemplateDef, TemplateStatus};

/// Why a template send does not fit the registry, with Meta's code for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// No such template in that language (132001).
    Unknown,
    /// Known but not approved (pending, rejected, deleted, …) (132001).
    NotApproved,
    /// Paused for low quality (132015).
    Paused,
    /// Disabled (132016).
    Disabled,
    /// Parameters or buttons do not match in number or name (132000).
    ParameterCount,
    /// A parameter of the wrong kind (132012).
    ParameterFormat,
}

impl RefusalKind {
    /// The Cloud API error code Meta answers with.
    pub fn code(self) -> i64 {
        match self {
            RefusalKind::Unknown | RefusalKind::NotApproved => 132_001,
            RefusalKind::Paused => 132_015,
            RefusalKind::Disabled => 132_016,
            RefusalKind::ParameterCount => 132_000,
            RefusalKind::ParameterFormat => 132_012,
        }
    }

    /// Meta's message for the code.
    pub fn message(self) -> &'static str {
        match self {
            RefusalKind::Unknown | RefusalKind::NotApproved => {
                "(#132001) Template name does not exist in the translation"
            }
            RefusalKind::Paused => "(#132015) Template is Paused",
            RefusalKind::Disabled => "(#132016) Template is Disabled",
            RefusalKind::ParameterCount => {
                "(#132000) Number of parameters does not match the expected number of params"
            }
            RefusalKind::ParameterFormat => {
                "(#132012) Parameter format does not match format in the created template"
            }
        }
    }
}

/// A template send the registry refuses: what kind of problem, and the details for the
/// client (`template order_update (es) body expects 2 parameters, got 1`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{details}")]
pub struct TemplateRefusal {
    /// The kind, which gives the code.
    pub kind: RefusalKind,
    /// What is wrong, naming the template and the part.
    pub details: String,
}

impl TemplateRefusal {
    fn new(kind: RefusalKind, details: String) -> Self {
        Self { kind, details }
    }

    /// The refusal of a template the registry does not have in that language.
    pub fn unknown(name: &str, language: &str) -> Self {
        Self::new(
            RefusalKind::Unknown,
            format!(
                "template {name} ({language}) is not known for this number's WhatsApp Business Account (sync the templates if it was just created)"
            ),
        )
    }
}

/// The template's name and language code from a send's `template` object.
pub fn name_and_language(template: &Value) -> Option<(&str, &str)> {
    let name = template.get("name")?.as_str()?;
    let code = template.get("language")?.get("code")?.as_str()?;
    Some((name, code))
}

/// Body and header text parameter types.
const TEXT_TYPES: [&str; 3] = ["text", "currency", "date_time"];

/// Checks the `template` object of a send (already validated by the request parser) against
/// the registry's `def`. A definition known only from a webhook (`components` null) is
/// checked for its status only.
pub fn check(template: &Value, def: &TemplateDef) -> Result<(), TemplateRefusal> {
    if let Some(r) = status_refusal(def) {
        return Err(r);
    }
    let label = format!("template {} ({})", def.name, def.language);
    if def.components.is_null() {
        return Ok(());
    }
    let shape = TemplateShape::of(&def.components);
    let sent = Sent::of(template);
    check_header(&label, shape.header.as_ref(), sent.header)?;
    check_text("body", &label, &shape.body, sent.body.unwrap_or(&[]))?;
    check_buttons(&label, &shape.buttons, &sent.buttons)
}

/// Why `def` cannot be sent at all, whatever the parameters: it is not APPROVED.
pub fn status_refusal(def: &TemplateDef) -> Option<TemplateRefusal> {
    let label = format!("template {} ({})", def.name, def.language);
    match &def.status {
        TemplateStatus::Approved => None,
        TemplateStatus::Paused => Some(TemplateRefusal::new(
            RefusalKind::Paused,
            format!("{label} is PAUSED for low quality"),
        )),
        TemplateStatus::Disabled => Some(TemplateRefusal::new(
            RefusalKind::Disabled,
            format!("{label} is DISABLED"),
        )),
        other => Some(TemplateRefusal::new(
            RefusalKind::NotApproved,
            format!("{label} is {}, not APPROVED", other.as_str()),
        )),
    }
}

/// The parts of a send's `components`.
#[derive(Default)]
struct Sent<'a> {
    header: Option<&'a [Value]>,
    body: Option<&'a [Value]>,
    /// index → (sub_type, parameters)
    buttons: BTreeMap<u64, (String, &'a [Value])>,
}

impl<'a> Sent<'a> {
    fn of(template: &'a Value) -> Self {
        let mut sent = Sent::default();
        let list = template
            .get("components")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for c in list {
            let params = c
                .get("parameters")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            match lower(c.get("type")).as_str() {
                "header" => sent.header = Some(params),
                "body" => sent.body = Some(params),
                "button" => {
                    let index = match c.get("index") {
                        Some(Value::Number(n)) => n.as_u64(),
                        Some(Value::String(s)) => s.parse().ok(),
                        _ => None,
                    };
                    if let Some(i) = index {
                        sent.buttons.insert(i, (lower(c.get("sub_type")), params));
                    }
                }
                _ => {}
            }
        }
        sent
    }
}

fn lower(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or("").to_ascii_lowercase()
}

fn param_type(p: &Value) -> String {
    lower(p.get("type"))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "parameter" } else { "parameters" }
}

/// Header or body text parameters against the placeholders: number, kind, and (for named
/// placeholders) names.
fn check_text(
    part: &str,
    label: &str,
    want: &Placeholders,
    got: &[Value],
) -> Result<(), TemplateRefusal> {
    if got.len() != want.count() {
        return Err(TemplateRefusal::new(
            RefusalKind::ParameterCount,
            format!(
                "{label} {part} expects {} {}, got {}",
                want.count(),
                plural(want.count()),
                got.len()
            ),
        ));
    }
    for (i, p) in got.iter().enumerate() {
        let ty = param_type(p);
        if !TEXT_TYPES.contains(&ty.as_str()) {
            return Err(TemplateRefusal::new(
                RefusalKind::ParameterFormat,
                format!(
                    "{label} {part} parameter {} must be text, currency or date_time, got {ty}",
                    i + 1
                ),
            ));
        }
    }
    if want.named() {
        for (i, p) in got.iter().enumerate() {
            let name = p.get("parameter_name").and_then(Value::as_str);
            match name {
                Some(n) if want.names.iter().any(|w| w == n) => {}
                Some(n) => {
                    return Err(TemplateRefusal::new(
                        RefusalKind::ParameterCount,
                        format!(
                            "{label} {part} has no parameter named {n} (it has {})",
                            want.names.join(", ")
                        ),
                    ));
                }
                None => {
                    return Err(TemplateRefusal::new(
                        RefusalKind::ParameterCount,
                        format!(
                            "{label} {part} parameter {} needs a parameter_name (one of {})",
                            i + 1,
                            want.names.join(", ")
                        ),
                    ));
                }
            }
        }
        let mut names: Vec<&str> = got
            .iter()
            .filter_map(|p| p.get("parameter_name").and_then(Value::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        if names.len() != want.count() {
            return Err(TemplateRefusal::new(
                RefusalKind::ParameterCount,
                format!(
                    "{label} {part} names a parameter twice; it expects each of {} once",
                    want.names.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn check_header(
    label: &str,
    want: Option<&HeaderShape>,
    got: Option<&[Value]>,
) -> Result<(), TemplateRefusal> {
    let got = got.unwrap_or(&[]);
    let media = |kind: &str| -> Result<(), TemplateRefusal> {
        match got {
            [] => Err(TemplateRefusal::new(
                RefusalKind::ParameterCount,
                format!("{label} header expects a {kind} parameter, got none"),
            )),
            [p] if param_type(p) == kind => Ok(()),
            [p] => Err(TemplateRefusal::new(
                RefusalKind::ParameterFormat,
                format!(
                    "{label} header expects a {kind} parameter, got {}",
                    param_type(p)
                ),
            )),
            _ => Err(TemplateRefusal::new(
                RefusalKind::ParameterCount,
                format!(
                    "{label} header expects 1 {kind} parameter, got {}",
                    got.len()
                ),
            )),
        }
    };
    match want {
        None => check_text("header", label, &Placeholders::default(), got),
        Some(HeaderShape::Text(p)) => check_text("header", label, p, got),
        Some(HeaderShape::Media(kind)) => media(kind),
        Some(HeaderShape::Location) => media("location"),
        Some(HeaderShape::Other(_)) => Ok(()),
    }
}

fn check_buttons(
    label: &str,
    want: &[ButtonShape],
    got: &BTreeMap<u64, (String, &[Value])>,
) -> Result<(), TemplateRefusal> {
    for (&index, (sub_type, params)) in got {
        let Some(button) = usize::try_from(index).ok().and_then(|i| want.get(i)) else {
            return Err(TemplateRefusal::new(
                RefusalKind::ParameterCount,
                format!(
                    "{label} has no button at index {index} (it has {} button{})",
                    want.len(),
                    if want.len() == 1 { "" } else { "s" }
                ),
            ));
        };
        let kinds = button.sub_types();
        if !kinds.contains(&sub_type.as_str()) {
            let expected = if kinds.is_empty() {
                "takes no parameters".to_owned()
            } else {
                format!("needs sub_type {}", kinds.join(" or "))
            };
            return Err(TemplateRefusal::new(
                RefusalKind::ParameterFormat,
                format!(
                    "{label} button {index} is a {} button and {expected}, got sub_type {sub_type}",
                    button.kind
                ),
            ));
        }
        match button.required_parameter() {
            Some(ty) => match *params {
                [p] if param_type(p) == ty => {}
                [p] => {
                    return Err(TemplateRefusal::new(
                        RefusalKind::ParameterFormat,
                        format!(
                            "{label} button {index} ({}) expects a {ty} parameter, got {}",
                            button.kind,
                            param_type(p)
                        ),
                    ));
                }
                _ => {
                    return Err(TemplateRefusal::new(
                        RefusalKind::ParameterCount,
                        format!(
                            "{label} button {index} ({}) expects 1 {ty} parameter, got {}",
                            button.kind,
                            params.len()
                        ),
                    ));
                }
            },
            None if button.kind == "QUICK_REPLY" => {
                if params.len() > 1 {
                    return Err(TemplateRefusal::new(
                        RefusalKind::ParameterCount,
                        format!(
                            "{label} button {index} (QUICK_REPLY) takes at most 1 payload parameter, got {}",
                            params.len()
                        ),
                    ));
                }
                if let Some(p) = params.first()
                    && param_type(p) != "payload"
                {
                    return Err(TemplateRefusal::new(
                        RefusalKind::ParameterFormat,
                        format!(
                            "{label} button {index} (QUICK_REPLY) expects a payload parameter, got {}",
                            param_type(p)
                        ),
                    ));
                }
            }
            None if button.kind == "URL" && !params.is_empty() => {
                return Err(TemplateRefusal::new(
                    RefusalKind::ParameterCount,
                    format!(
                        "{label} button {index} has a fixed URL and takes no parameter, got {}",
                        params.len()
                    ),
                ));
            }
            // Flows, catalogs and the like carry structures Meta checks.
            None => {}
        }
    }
    for (i, button) in want.iter().enumerate() {
        if let Some(ty) = button.required_parameter()
            && !got.contains_key(&(i as u64))
        {
            return Err(TemplateRefusal::new(
                RefusalKind::ParameterCount,
                format!(
                    "{label} button {i} ({}) expects a {ty} parameter, but the send has no button component with index {i}",
                    button.kind
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
