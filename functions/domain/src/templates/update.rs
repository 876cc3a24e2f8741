//! Keeping the registry current from template webhooks (`message_template_status_update`,
//! `template_category_update`, `message_template_quality_update`).

use super::{TemplateCategory, TemplateDef, TemplateStatus, TemplateStore};
use crate::ports::StoreError;

/// What a webhook says about one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateChange {
    /// Its review status (`event` of `message_template_status_update`), and its category if
    /// the webhook gave one.
    Status {
        /// The new status.
        status: TemplateStatus,
        /// `message_template_category`, when given.
        category: Option<TemplateCategory>,
    },
    /// Its category now (`new_category` of `template_category_update`).
    Category(TemplateCategory),
    /// Its quality score now (`new_quality_score`).
    Quality(String),
}

/// The registry status a `message_template_status_update` event sets: `REINSTATED` and
/// `UNARCHIVED` make a template sendable again, `FLAGGED` (a warning before a pause) leaves
/// the status as it is (`None`), anything else is the status of that name.
pub fn status_of_event(event: &str) -> Option<TemplateStatus> {
    match event.to_ascii_uppercase().as_str() {
        "FLAGGED" => None,
        "REINSTATED" | "UNARCHIVED" => Some(TemplateStatus::Approved),
        other => Some(TemplateStatus::from(other.to_owned())),
    }
}

/// Which template a webhook is about.
#[derive(Debug, Clone, Copy)]
pub struct TemplateRef<'a> {
    /// The account (the webhook's `entry[].id`).
    pub waba_id: &'a str,
    /// `message_template_name`.
    pub name: &'a str,
    /// `message_template_language`.
    pub language: &'a str,
    /// `message_template_id`.
    pub id: Option<&'a str>,
}

/// What applying a webhook did to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    /// The template's entry was changed (or created, for a status webhook).
    Stored,
    /// The registry does not know the template, and the webhook (a category or quality
    /// change, which says nothing of whether it may be sent) is not enough to add it.
    Unknown,
}

/// Applies `change`, true at `at` (the webhook's entry time), to the registry: reads the
/// template, changes that one field and stores it newest-wins (a sync or webhook from after
/// `at` is kept). A status webhook for a template the registry does not know adds it with
/// `components` null, its parameters unchecked until a sync: `APPROVED` makes it sendable,
/// and `PAUSED`, `DISABLED`, `REJECTED`, … are kept too, so that a template approved before
/// Ventana ran (never synced) is still refused, and its broadcasts paused, once Meta pauses
/// it. Category and quality changes to unknown templates are left to the next sync.
pub async fn apply_change<S: TemplateStore>(
    store: &S,
    t: TemplateRef<'_>,
    change: TemplateChange,
    at: i64,
) -> Result<Updated, StoreError> {
    let existing = store.template(t.waba_id, t.name, t.language).await?;
    let mut def = match (existing, &change) {
        (Some(d), _) => d,
        (None, TemplateChange::Status { status, category }) => TemplateDef {
            waba_id: t.waba_id.to_owned(),
            name: t.name.to_owned(),
            language: t.language.to_owned(),
            id: None,
            status: status.clone(),
            category: category
                .clone()
                .unwrap_or_else(|| TemplateCategory::Other("UNKNOWN".into())),
            components: serde_json::Value::Null,
            quality: None,
            updated_at: at,
        },
        (None, _) => return Ok(Updated::Unknown),
    };
    if def.updated_at > at {
        return Ok(Updated::Stored);
    }
    match change {
        TemplateChange::Status { status, category } => {
            def.status = status;
            if let Some(c) = category {
                def.category = c;
            }
        }
        TemplateChange::Category(c) => def.category = c,
        TemplateChange::Quality(q) => def.quality = Some(q),
    }
    if def.id.is_none() {
        def.id = t.id.map(str::to_owned);
    }
    def.updated_at = at;
    store.put_template(&def).await?;
    Ok(Updated::Stored)
}
