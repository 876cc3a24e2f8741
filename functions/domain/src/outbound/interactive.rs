//! Interactive messages: reply buttons, lists and call-to-action URLs are validated against
//! all of Meta's limits; the other interactive types get shape checks only (a known type, a
//! body where one is needed, an `action` object with a `name`), and Meta judges the rest.

use std::collections::HashSet;

use serde_json::Value;

use super::check::{
    Caption, Obj, Res, as_object, at, check_http_url, check_len, media, nth, opt_object, opt_text,
    req_array, req_object, req_str, req_text,
};
use super::error::SendError;

/// The kind of an interactive message (`interactive.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InteractiveKind {
    /// Up to three reply buttons (`button`).
    Button,
    /// A list of rows in sections behind one button (`list`).
    List,
    /// A button that opens a URL (`cta_url`).
    CtaUrl,
    /// A WhatsApp Flow (`flow`).
    Flow,
    /// One catalog product (`product`).
    Product,
    /// Several catalog products in sections (`product_list`).
    ProductList,
    /// The business's catalog (`catalog_message`).
    CatalogMessage,
    /// Asks the user to share their location (`location_request_message`).
    LocationRequestMessage,
    /// Asks the user for a delivery address (`address_message`).
    AddressMessage,
    /// Asks the user for permission to call them (`call_permission_request`).
    CallPermissionRequest,
    /// WhatsApp Payments order with a pay button (`order_details`; India, Brazil, Singapore).
    OrderDetails,
    /// WhatsApp Payments order update (`order_status`).
    OrderStatus,
}

impl InteractiveKind {
    /// Every kind Ventana sends, for error messages and tests.
    pub const ALL: [InteractiveKind; 12] = [
        InteractiveKind::Button,
        InteractiveKind::List,
        InteractiveKind::CtaUrl,
        InteractiveKind::Flow,
        InteractiveKind::Product,
        InteractiveKind::ProductList,
        InteractiveKind::CatalogMessage,
        InteractiveKind::LocationRequestMessage,
        InteractiveKind::AddressMessage,
        InteractiveKind::CallPermissionRequest,
        InteractiveKind::OrderDetails,
        InteractiveKind::OrderStatus,
    ];

    /// The wire name (`button`, `list`, `cta_url`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            InteractiveKind::Button => "button",
            InteractiveKind::List => "list",
            InteractiveKind::CtaUrl => "cta_url",
            InteractiveKind::Flow => "flow",
            InteractiveKind::Product => "product",
            InteractiveKind::ProductList => "product_list",
            InteractiveKind::CatalogMessage => "catalog_message",
            InteractiveKind::LocationRequestMessage => "location_request_message",
            InteractiveKind::AddressMessage => "address_message",
            InteractiveKind::CallPermissionRequest => "call_permission_request",
            InteractiveKind::OrderDetails => "order_details",
            InteractiveKind::OrderStatus => "order_status",
        }
    }

    /// Parses a wire name; `None` for a kind Ventana does not send.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether Meta requires a `body` for this kind (a single product and a call permission
    /// request can go without).
    fn needs_body(self) -> bool {
        !matches!(
            self,
            InteractiveKind::Product | InteractiveKind::CallPermissionRequest
        )
    }
}

/// Header text and footer text: at most 60 characters.
pub const HEADER_TEXT_MAX: usize = 60;
/// Footer text: at most 60 characters.
pub const FOOTER_MAX: usize = 60;
/// Interactive body text: at most 1,024 characters.
pub const BODY_MAX: usize = 1024;
/// A list message's body may be longer: 4,096 characters (Meta's list-message page).
pub const LIST_BODY_MAX: usize = 4096;
/// Reply buttons: at most 3.
pub const BUTTONS_MAX: usize = 3;
/// Reply button title: at most 20 characters.
pub const BUTTON_TITLE_MAX: usize = 20;
/// Reply button id: at most 256 characters.
pub const BUTTON_ID_MAX: usize = 256;
/// List button label: at most 20 characters.
pub const LIST_BUTTON_MAX: usize = 20;
/// List sections: at most 10.
pub const SECTIONS_MAX: usize = 10;
/// List rows, counted over all sections: at most 10.
pub const ROWS_MAX: usize = 10;
/// List row id: at most 200 characters.
pub const ROW_ID_MAX: usize = 200;
/// List row title: at most 24 characters.
pub const ROW_TITLE_MAX: usize = 24;
/// List row description: at most 72 characters.
pub const ROW_DESCRIPTION_MAX: usize = 72;
/// Section title: at most 24 characters.
pub const SECTION_TITLE_MAX: usize = 24;
/// Call-to-action button text: at most 20 characters.
pub const CTA_DISPLAY_TEXT_MAX: usize = 20;
/// Flow button text: at most 30 characters.
pub const FLOW_CTA_MAX: usize = 30;
/// Products in a multi-product message, over all sections: at most 30.
pub const PRODUCTS_MAX: usize = 30;

const PATH: &str = "interactive";
const ACTION: &str = "interactive.action";

/// Validates the `interactive` object and tells its kind.
pub(super) fn validate(obj: &Obj) -> Res<InteractiveKind> {
    let ty = req_str(obj, PATH, "type")?;
    let kind = InteractiveKind::from_wire(ty).ok_or_else(|| SendError::UnsupportedType {
        field: at(PATH, "type"),
        value: ty.to_owned(),
    })?;

    match opt_object(obj, PATH, "header")? {
        Some(h) => header(h, kind)?,
        None if kind == InteractiveKind::ProductList => {
            return Err(SendError::missing(at(PATH, "header")));
        }
        None => {}
    }

    let body_max = if kind == InteractiveKind::List {
        LIST_BODY_MAX
    } else {
        BODY_MAX
    };
    let body = if kind.needs_body() {
        Some(req_object(obj, PATH, "body")?)
    } else {
        opt_object(obj, PATH, "body")?
    };
    if let Some(body) = body {
        req_text(body, "interactive.body", "text", 1, body_max)?;
    }

    if let Some(footer) = opt_object(obj, PATH, "footer")? {
        req_text(footer, "interactive.footer", "text", 1, FOOTER_MAX)?;
    }

    let action = req_object(obj, PATH, "action")?;
    match kind {
        InteractiveKind::Button => buttons(action)?,
        InteractiveKind::List => list(action)?,
        InteractiveKind::CtaUrl => cta_url(action)?,
        InteractiveKind::Flow => flow(action)?,
        InteractiveKind::Product => {
            req_text(action, ACTION, "catalog_id", 1, usize::MAX)?;
            req_text(action, ACTION, "product_retailer_id", 1, usize::MAX)?;
        }
        InteractiveKind::ProductList => product_list(action)?,
        InteractiveKind::CatalogMessage
        | InteractiveKind::LocationRequestMessage
        | InteractiveKind::AddressMessage
        | InteractiveKind::CallPermissionRequest
        | InteractiveKind::OrderDetails
        | InteractiveKind::OrderStatus => {
            req_text(action, ACTION, "name", 1, usize::MAX)?;
            opt_object(action, ACTION, "parameters")?;
        }
    }
    Ok(kind)
}

fn header(h: &Obj, kind: InteractiveKind) -> Res<()> {
    const H: &str = "interactive.header";
    if kind == InteractiveKind::Product {
        return Err(SendError::invalid(
            H,
            "a single-product message takes no header",
        ));
    }
    let ty = req_str(h, H, "type")?;
    let text_only = matches!(kind, InteractiveKind::List | InteractiveKind::ProductList);
    match ty {
        "text" => {
            req_text(h, H, "text", 1, HEADER_TEXT_MAX)?;
        }
        "image" | "video" | "document" if !text_only => {
            media(req_object(h, H, ty)?, &at(H, ty), Caption::Ignored)?;
        }
        "image" | "video" | "document" => {
            return Err(SendError::invalid(
                at(H, "type"),
                format!("a {} message takes a text header only", kind.as_str()),
            ));
        }
        _ => {
            return Err(SendError::invalid(
                at(H, "type"),
                "must be one of text, image, video, document",
            ));
        }
    }
    opt_text(h, H, "sub_text", 0, HEADER_TEXT_MAX)?;
    Ok(())
}

/// Refuses the element at `limit` of an over-long array by its own path, so the client
/// sees which element is one too many (`interactive.action.buttons[3]`).
fn at_most(items: &[Value], path: &str, limit: usize, what: &str) -> Res<()> {
    if items.is_empty() {
        return Err(SendError::invalid(
            path,
            format!("must have at least 1 {what}"),
        ));
    }
    if items.len() > limit {
        return Err(SendError::invalid(
            nth(path, limit),
            format!("at most {limit} {what}s are allowed (got {})", items.len()),
        ));
    }
    Ok(())
}

fn buttons(action: &Obj) -> Res<()> {
    let path = at(ACTION, "buttons");
    let items = req_array(action, ACTION, "buttons")?;
    at_most(items, &path, BUTTONS_MAX, "reply button")?;
    let mut ids = HashSet::new();
    let mut titles = HashSet::new();
    for (i, b) in items.iter().enumerate() {
        let bp = nth(&path, i);
        let b = as_object(b, &bp)?;
        let ty = req_str(b, &bp, "type")?;
        if ty != "reply" {
            return Err(SendError::invalid(at(&bp, "type"), "must be `reply`"));
        }
        let rp = at(&bp, "reply");
        let reply = req_object(b, &bp, "reply")?;
        let id = req_text(reply, &rp, "id", 1, BUTTON_ID_MAX)?;
        let title = req_text(reply, &rp, "title", 1, BUTTON_TITLE_MAX)?;
        if !ids.insert(id) {
            return Err(SendError::invalid(
                at(&rp, "id"),
                "button ids must be unique",
            ));
        }
        if !titles.insert(title) {
            return Err(SendError::invalid(
                at(&rp, "title"),
                "button titles must be unique",
            ));
        }
    }
    Ok(())
}

/// A section's title: required as soon as there is more than one section (lists and product
/// lists alike), at most [`SECTION_TITLE_MAX`] characters.
fn section_title(section: &Obj, path: &str, several: bool) -> Res<()> {
    if several {
        req_text(section, path, "title", 1, SECTION_TITLE_MAX)?;
    } else {
        opt_text(section, path, "title", 1, SECTION_TITLE_MAX)?;
    }
    Ok(())
}

fn list(action: &Obj) -> Res<()> {
    req_text(action, ACTION, "button", 1, LIST_BUTTON_MAX)?;
    let path = at(ACTION, "sections");
    let sections = req_array(action, ACTION, "sections")?;
    at_most(sections, &path, SECTIONS_MAX, "section")?;
    let several = sections.len() > 1;
    let mut rows_seen = 0usize;
    let mut ids = HashSet::new();
    for (i, s) in sections.iter().enumerate() {
        let sp = nth(&path, i);
        let s = as_object(s, &sp)?;
        section_title(s, &sp, several)?;
        let rows_path = at(&sp, "rows");
        let rows = req_array(s, &sp, "rows")?;
        if rows.is_empty() {
            return Err(SendError::invalid(rows_path, "must have at least 1 row"));
        }
        for (j, r) in rows.iter().enumerate() {
            let rp = nth(&rows_path, j);
            rows_seen += 1;
            if rows_seen > ROWS_MAX {
                return Err(SendError::invalid(
                    rp,
                    format!("at most {ROWS_MAX} rows are allowed over all sections"),
                ));
            }
            let r = as_object(r, &rp)?;
            let id = req_text(r, &rp, "id", 1, ROW_ID_MAX)?;
            if !ids.insert(id) {
                return Err(SendError::invalid(at(&rp, "id"), "row ids must be unique"));
            }
            req_text(r, &rp, "title", 1, ROW_TITLE_MAX)?;
            opt_text(r, &rp, "description", 0, ROW_DESCRIPTION_MAX)?;
        }
    }
    Ok(())
}

fn named(action: &Obj, name: &str) -> Res<()> {
    let got = req_str(action, ACTION, "name")?;
    if got != name {
        return Err(SendError::invalid(
            at(ACTION, "name"),
            format!("must be `{name}`"),
        ));
    }
    Ok(())
}

fn cta_url(action: &Obj) -> Res<()> {
    named(action, "cta_url")?;
    let pp = at(ACTION, "parameters");
    let p = req_object(action, ACTION, "parameters")?;
    req_text(p, &pp, "display_text", 1, CTA_DISPLAY_TEXT_MAX)?;
    let url = req_str(p, &pp, "url")?;
    check_http_url(url, &at(&pp, "url"))
}

fn flow(action: &Obj) -> Res<()> {
    named(action, "flow")?;
    let pp = at(ACTION, "parameters");
    let p = req_object(action, ACTION, "parameters")?;
    match p.get("flow_message_version") {
        Some(Value::String(v)) => check_len(v, &at(&pp, "flow_message_version"), 1, 8)?,
        Some(Value::Number(_)) => {}
        _ => return Err(SendError::missing(at(&pp, "flow_message_version"))),
    }
    req_text(p, &pp, "flow_cta", 1, FLOW_CTA_MAX)?;
    let id = opt_text(p, &pp, "flow_id", 1, usize::MAX)?;
    let name = opt_text(p, &pp, "flow_name", 1, usize::MAX)?;
    if id.is_none() && name.is_none() {
        return Err(SendError::missing(at(&pp, "flow_id")));
    }
    Ok(())
}

fn product_list(action: &Obj) -> Res<()> {
    req_text(action, ACTION, "catalog_id", 1, usize::MAX)?;
    let path = at(ACTION, "sections");
    let sections = req_array(action, ACTION, "sections")?;
    at_most(sections, &path, SECTIONS_MAX, "section")?;
    let several = sections.len() > 1;
    let mut seen = 0usize;
    for (i, s) in sections.iter().enumerate() {
        let sp = nth(&path, i);
        let s = as_object(s, &sp)?;
        section_title(s, &sp, several)?;
        let ip = at(&sp, "product_items");
        let items = req_array(s, &sp, "product_items")?;
        if items.is_empty() {
            return Err(SendError::invalid(ip, "must have at least 1 product"));
        }
        for (j, item) in items.iter().enumerate() {
            let itp = nth(&ip, j);
            seen += 1;
            if seen > PRODUCTS_MAX {
                return Err(SendError::invalid(
                    itp,
                    format!("at most {PRODUCTS_MAX} products are allowed over all sections"),
                ));
            }
            req_text(
                as_object(item, &itp)?,
                &itp,
                "product_retailer_id",
                1,
                usize::MAX,
            )?;
        }
    }
    Ok(())
}
