//! The template registry: what Ventana knows of each WhatsApp Business Account's message
//! templates (from the Graph listing `GET /{waba_id}/message_templates` and from template
//! webhooks), so a template send can be checked before it is queued and a broadcast can pause
//! when its template stops being sendable.
//!
//! - [`sync`] reads every page of the listing through a [`TemplateSource`] (the Graph API in
//!   `wa-graph`) and stores each template newest-wins; a template no longer listed is marked
//!   `DELETED`.
//! - [`apply_change`] keeps the registry current from template webhooks.
//! - [`check`] checks a template send against a [`TemplateDef`]; [`check_send`] first finds the
//!   number's account and the template: a number whose account was never synced is not
//!   checked (nothing is known to check against), an account that was synced refuses a
//!   template it does not have (132001).

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::ports::StoreError;

mod check;
mod listing;
mod shape;
mod sync;
mod update;

pub use check::{RefusalKind, TemplateRefusal, check, name_and_language, status_refusal};
pub use listing::{ListingError, TemplatePage, parse_listing};
pub use shape::{ButtonShape, HeaderShape, Placeholders, TemplateShape};
pub use sync::{DELETED, MAX_PAGES, SourceError, SyncError, SyncReport, TemplateSource, sync};
pub use update::{TemplateChange, TemplateRef, Updated, apply_change, status_of_event};

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

    /// Records that `phone_number_id` belongs to `waba_id` (called for every webhook event, so
    /// an adapter should make the steady state cost no write).
    fn remember_number(
        &self,
        phone_number_id: &str,
        waba_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that a whole listing of the account was stored at `at` (newest wins).
    fn mark_synced(
        &self,
        waba_id: &str,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// When the account's templates were last synced from a whole listing, if ever.
    fn synced_at(
        &self,
        waba_id: &str,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
}

/// What the registry says about a template send from a number.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The template is known and the send fits it.
    Fits(TemplateDef),
    /// Nothing to check against: the number's account is not known, or its templates were
    /// never synced and the registry has no entry for this one. The send goes on unchecked
    /// (Meta still checks it).
    Unchecked,
    /// The send does not fit (or the template is unknown to a synced account).
    Refused(TemplateRefusal),
}

/// Checks the `template` object of a send from `phone_number_id` against the registry.
pub async fn check_send<S: TemplateStore>(
    store: &S,
    phone_number_id: &str,
    template: &serde_json::Value,
) -> Result<Verdict, StoreError> {
    let Some((name, language)) = name_and_language(template) else {
        return Ok(Verdict::Unchecked);
    };
    let Some(waba) = store.waba_of(phone_number_id).await? else {
        return Ok(Verdict::Unchecked);
    };
    match store.template(&waba, name, language).await? {
        Some(def) => Ok(match check(template, &def) {
            Ok(()) => Verdict::Fits(def),
            Err(r) => Verdict::Refused(r),
        }),
        None if store.synced_at(&waba).await?.is_some() => {
            Ok(Verdict::Refused(TemplateRefusal::unknown(name, language)))
        }
        None => Ok(Verdict::Unchecked),
    }
}

#[cfg(test)]
mod tests;
