//! The template registry: what Ventana knows of each WhatsApp Business Account's message
//! templates (from the Graph listing `GET /{waba_id}/message_templates` and from template
//! webhooks), so a template send can be checked before it is queued and a broadcast can pause
//! when its template stops being sendable.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::ports::StoreError;

/// A template's review status, as Meta names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum TemplateStatus {
    /// Sendable.
    Approved,
    /// Waiting for review.
    Pending,
    /// Refused at review.
    Rejected,
    /// Paused by Meta for low quality (sends fail with 132015).
    Paused,
    /// Disabled by Meta (sends fail with 132016).
    Disabled,
    /// Any other status (`IN_APPEAL`, `PENDING_DELETION`, `DELETED`, `LIMIT_EXCEEDED`, …).
    Other(String),
}

impl TemplateStatus {
    /// Meta's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            TemplateStatus::Approved => "APPROVED",
            TemplateStatus::Pending => "PENDING",
            TemplateStatus::Rejected => "REJECTED",
            TemplateStatus::Paused => "PAUSED",
            TemplateStatus::Disabled => "DISABLED",
            TemplateStatus::Other(s) => s,
        }
    }

    /// Whether a template in this status can be sent.
    pub fn sendable(&self) -> bool {
        matches!(self, TemplateStatus::Approved)
    }
}

impl From<String> for TemplateStatus {
    fn from(s: String) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "APPROVED" => TemplateStatus::Approved,
            "PENDING" => TemplateStatus::Pending,
            "REJECTED" => TemplateStatus::Rejected,
            "PAUSED" => TemplateStatus::Paused,
            "DISABLED" => TemplateStatus::Disabled,
            other => TemplateStatus::Other(other.to_owned()),
        }
    }
}

impl From<TemplateStatus> for String {
    fn from(s: TemplateStatus) -> Self {
        s.as_str().to_owned()
    }
}

/// A template's category: what Meta charges for it and which opt-outs apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum TemplateCategory {
    /// Marketing: needs marketing consent; stopped by a marketing opt-out.
    Marketing,
    /// Utility (order and account updates).
    Utility,
    /// Authentication (one-time passwords).
    Authentication,
    /// A category this code does not know; treated like marketing where consent matters.
    Other(String),
}

impl TemplateCategory {
    /// Meta's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            TemplateCategory::Marketing => "MARKETING",
            TemplateCategory::Utility => "UTILITY",
            TemplateCategory::Authentication => "AUTHENTICATION",
            TemplateCategory::Other(s) => s,
        }
    }

    /// Whether a marketing opt-out stops it (marketing, and anything unknown to be safe).
    pub fn needs_marketing_consent(&self) -> bool {
        !matches!(
            self,
            TemplateCategory::Utility | TemplateCategory::Authentication
        )
    }
}

impl From<String> for TemplateCategory {
    fn from(s: String) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "MARKETING" => TemplateCategory::Marketing,
            "UTILITY" => TemplateCategory::Utility,
            "AUTHENTICATION" => TemplateCategory::Authentication,
            other => TemplateCategory::Other(other.to_owned()),
        }
    }
}

impl From<TemplateCategory> for String {
    fn from(c: TemplateCategory) -> Self {
        c.as_str().to_owned()
    }
}

/// One template in one language, as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateDef {
    /// The WhatsApp Business Account that owns it.
    pub waba_id: String,
    /// The template name.
    pub name: String,
    /// Its language code (`en_US`, `es`, …).
    pub language: String,
    /// Meta's template id, if known.
    pub id: Option<String>,
    /// Review status.
    pub status: TemplateStatus,
    /// Category.
    pub category: TemplateCategory,
    /// The `components` array exactly as the Graph listing gives it (header, body, footer,
    /// buttons with their placeholders); `Null` when only a webhook has told of the template.
    pub components: serde_json::Value,
    /// Quality score (`GREEN`, `YELLOW`, `RED`, `UNKNOWN`), if known.
    pub quality: Option<String>,
    /// When this information was true (unix seconds): an older update never overrides it.
    pub updated_at: i64,
}

/// Where the registry is kept.
pub trait TemplateStore: Send + Sync {
    /// One template in one language, if known.
    fn template(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
    ) -> impl Future<Output = Result<Option<TemplateDef>, StoreError>> + Send;

    /// Stores a template unless a version with a newer `updated_at` is stored.
    fn put_template(&self, t: &TemplateDef) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every template of an account, in name then language order.
    fn templates(
        &self,
        waba_id: &str,
    ) -> impl Future<Output = Result<Vec<TemplateDef>, StoreError>> + Send;

    /// The WhatsApp Business Account a phone number belongs to, if known (from its webhooks'
    /// `entry[].id`, a sync, or configuration).
    fn waba_of(
        &self,
        phone_number_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}
