//! `ventana templates`: the template registry through send-api's `/v1/templates` routes
//! (list what the registry knows of an account, sync it from the Graph API now).

use serde::Deserialize;
use serde_json::json;

use crate::api::{Api, ApiError};

/// One template as `GET /v1/templates` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Template {
    /// Its name.
    pub name: String,
    /// Its language code.
    pub language: String,
    /// Review status (`APPROVED`, `PAUSED`, …).
    pub status: String,
    /// Category (`MARKETING`, `UTILITY`, `AUTHENTICATION`).
    pub category: String,
    /// Quality score, if known.
    #[serde(default)]
    pub quality: Option<String>,
}

/// An account's registry, as `GET /v1/templates` answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Listing {
    /// The templates, in name then language order.
    pub templates: Vec<Template>,
    /// When the account was last synced in full (RFC 3339), if ever.
    pub synced_at: Option<String>,
}

/// What `POST /v1/templates/sync` did.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SyncReport {
    /// Pages read.
    pub pages: u64,
    /// Templates listed and stored.
    pub listed: u64,
    /// Templates no longer listed, now `DELETED`.
    pub deleted: u64,
    /// Listing entries passed over.
    pub skipped: u64,
}

/// The registry's templates of `waba_id`.
pub async fn list(api: &Api, waba_id: &str) -> Result<Listing, ApiError> {
    api.get(&format!("/v1/templates?waba_id={}", digits(waba_id)))
        .await
}

/// Syncs `waba_id`'s templates from the Graph API now.
pub async fn sync(api: &Api, waba_id: &str) -> Result<SyncReport, ApiError> {
    api.post("/v1/templates/sync", &json!({"waba_id": waba_id}))
        .await
}

/// A WABA id is digits; anything else is left out of the query (the API then answers 400).
fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
#[path = "templates_tests.rs"]
mod tests;
