//! Where a broadcast's recipients come from when they are not given inline: a list read in
//! pages from a cursor (an S3 CSV object in AWS, implemented by the `ventana broadcast`
//! side), so the planner never holds the whole list.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::ports::StoreError;

/// A recipient list stored outside the request (`recipients_csv` in `POST /v1/broadcasts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientList {
    /// The S3 bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
}

/// One row of a recipient list, as read: the planner validates it, so a source reports a
/// row it could not parse as a row with a `problem` (it becomes `skipped(invalid)` at its
/// position) rather than dropping it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RecipientRow {
    /// Phone digits (`to`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Business-scoped user id (`recipient`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The Cloud API template `components` for this recipient (`Null` or `[]` for none).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub components: serde_json::Value,
    /// Why the row could not be read (a malformed CSV line, say), if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A page of rows, in list order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecipientPage {
    /// The rows, in the order of the list (a header line is not a row).
    pub rows: Vec<RecipientRow>,
    /// Where the next page starts; `None` when the list has no more rows.
    pub next_cursor: Option<String>,
}

/// Reads a recipient list in pages. Reading the same cursor again gives the same rows (the
/// planner relies on it: a page is imported at positions fixed by the rows before it, and a
/// planner restarted after a crash reads it again).
pub trait RecipientSource: Send + Sync {
    /// Up to `max_rows` rows starting at `cursor` (`None`: the start of the list).
    fn page(
        &self,
        list: &RecipientList,
        cursor: Option<&str>,
        max_rows: usize,
    ) -> impl Future<Output = Result<RecipientPage, StoreError>> + Send;
}

/// A source for deployments that read no lists: every read fails (the planner's step is
/// retried, and the job's import waits until a real source is configured).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSource;

impl RecipientSource for NoSource {
    async fn page(
        &self,
        _list: &RecipientList,
        _cursor: Option<&str>,
        _max_rows: usize,
    ) -> Result<RecipientPage, StoreError> {
        Err(StoreError::Corrupt(
            "no recipient list source is configured".into(),
        ))
    }
}
