//! One page of the Graph listing `GET /{version}/{waba_id}/message_templates`, read into
//! [`TemplateDef`]s.

use serde::Deserialize;
use serde_json::Value;

use super::{TemplateCategory, TemplateDef, TemplateStatus};

/// One page of a WhatsApp Business Account's templates.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePage {
    /// The templates on the page (`updated_at` 0: the caller says when the listing was true).
    pub templates: Vec<TemplateDef>,
    /// The cursor of the next page, when there is one (`paging.cursors.after`, given only
    /// when the page has a `paging.next` link).
    pub after: Option<String>,
    /// Entries without a name or a language, passed over.
    pub skipped: usize,
}

/// A listing page that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("the template listing is not the Graph API's shape")]
pub struct ListingError(#[source] pub serde_json::Error);

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    data: Vec<WireTemplate>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct WireTemplate {
    name: Option<String>,
    language: Option<String>,
    status: Option<String>,
    category: Option<String>,
    id: Option<Value>,
    #[serde(default)]
    components: Value,
    quality_score: Option<Quality>,
}

#[derive(Deserialize)]
struct Quality {
    score: Option<String>,
}

#[derive(Deserialize)]
struct Paging {
    cursors: Option<Cursors>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursors {
    after: Option<String>,
}

/// Reads one listing page of `waba_id`'s templates.
pub fn parse_listing(waba_id: &str, body: &[u8]) -> Result<TemplatePage, ListingError> {
    let wire: Wire = serde_json::from_slice(body).map_err(ListingError)?;
    let mut skipped = 0;
    let mut templates = Vec::with_capacity(wire.data.len());
    for t in wire.data {
        let (Some(name), Some(language)) = (t.name, t.language) else {
            skipped += 1;
            continue;
        };
        templates.push(TemplateDef {
            waba_id: waba_id.to_owned(),
            name,
            language,
            id: t.id.and_then(|v| match v {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }),
            status: TemplateStatus::from(t.status.unwrap_or_else(|| "UNKNOWN".into())),
            category: TemplateCategory::from(t.category.unwrap_or_else(|| "UNKNOWN".into())),
            components: t.components,
            quality: t.quality_score.and_then(|q| q.score),
            updated_at: 0,
        });
    }
    let after = wire
        .paging
        .filter(|p| p.next.is_some())
        .and_then(|p| p.cursors)
        .and_then(|c| c.after);
    Ok(TemplatePage {
        templates,
        after,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = include_str!("fixtures/listing_page1.json");
    const LAST: &str = include_str!("fixtures/listing_page2.json");
    /// The example response of `GET /{WABA-ID}/message_templates` in Meta's OpenAPI file
    /// (business-messaging-api_v23.0.yaml), as JSON.
    const META_EXAMPLE: &str = include_str!("fixtures/listing_meta_example.json");

    #[test]
    fn a_page_gives_its_templates_and_the_next_cursor() {
        let page = parse_listing("WABA1", PAGE.as_bytes()).unwrap();
        assert_eq!(page.after.as_deref(), Some("MQ"));
        let names: Vec<(&str, &str, &str, &str)> = page
            .templates
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.language.as_str(),
                    t.status.as_str(),
                    t.category.as_str(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("order_update", "es", "APPROVED", "UTILITY"),
                ("summer_sale", "en_US", "APPROVED", "MARKETING"),
            ]
        );
        let t = &page.templates[0];
        assert_eq!(t.waba_id, "WABA1");
        assert_eq!(t.id.as_deref(), Some("1000000000000001"));
        assert_eq!(t.quality.as_deref(), Some("GREEN"));
        assert!(t.components.is_array());
    }

    #[test]
    fn the_last_page_has_no_cursor_and_odd_entries_are_read_safely() {
        let page = parse_listing("WABA1", LAST.as_bytes()).unwrap();
        // `paging.cursors.after` is there, but without `paging.next` there is no next page.
        assert_eq!(page.after, None);
        assert_eq!(page.skipped, 1);
        let t = &page.templates[0];
        assert_eq!(t.status, TemplateStatus::Paused);
        assert_eq!(t.id.as_deref(), Some("1000000000000003"));
        assert_eq!(t.category, TemplateCategory::Other("UNKNOWN".into()));
        assert_eq!(t.quality, None);
    }

    #[test]
    fn metas_own_example_is_read() {
        let page = parse_listing("102290129340398", META_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(page.templates.len(), 2);
        assert_eq!(page.templates[1].name, "2023_april_promo");
        assert_eq!(page.templates[1].status, TemplateStatus::Approved);
        // Meta's example has cursors but no `next`: one page.
        assert_eq!(page.after, None);
        let shape = super::super::TemplateShape::of(&page.templates[1].components);
        assert_eq!(shape.body.count(), 2);
        assert_eq!(shape.buttons.len(), 1);
    }

    #[test]
    fn a_body_that_is_not_a_listing_is_an_error() {
        assert!(parse_listing("W", b"{\"data\": 3}").is_err());
        assert!(parse_listing("W", b"<html>").is_err());
        assert_eq!(
            parse_listing("W", b"{}").unwrap().templates,
            Vec::<TemplateDef>::new()
        );
    }
}
