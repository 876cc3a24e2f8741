//! Syncing the registry from the Graph listing: every page of an account's templates is
//! stored (newest wins), and a template the listing no longer has is marked `DELETED`.

use std::collections::HashSet;
use std::future::Future;

use super::{TemplatePage, TemplateStatus, TemplateStore};
use crate::ports::StoreError;

/// Most pages one sync reads (at Meta's 100 per page, 20,000 templates: more than the 6,000
/// an account may have), so a listing that never ends cannot hold a sync forever.
pub const MAX_PAGES: usize = 200;

/// Meta's code for a pagination cursor it no longer takes (v24+): list again without it.
pub const INVALID_CURSOR: i64 = 131_059;

/// How many times one sync lists again from the first page after [`INVALID_CURSOR`].
const MAX_RESTARTS: usize = 2;

/// Where the templates are listed: the Graph API (`wa-graph`) or a fake.
pub trait TemplateSource: Send + Sync {
    /// One page of `waba_id`'s templates, after the cursor `after` (the first page when
    /// `None`).
    fn page(
        &self,
        waba_id: &str,
        after: Option<&str>,
    ) -> impl Future<Output = Result<TemplatePage, SourceError>> + Send;
}

/// Why a listing page could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The Graph API could not be reached, timed out, or answered 5xx: try again later.
    #[error("the Graph API is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The Graph API refused the listing (bad token, unknown account, …).
    #[error("the Graph API refused the listing (HTTP {status}, code {code:?})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The Cloud API error code, if the body had one.
        code: Option<i64>,
        /// Meta's message, for logs.
        message: String,
    },
    /// The answer was not a listing.
    #[error("the template listing could not be read")]
    Malformed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a sync stopped. Nothing is marked deleted unless the whole listing was read.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The listing failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listing had more than [`MAX_PAGES`] pages, or gave the same cursor twice.
    #[error("the template listing does not end")]
    Endless,
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// Pages read.
    pub pages: usize,
    /// Templates listed (and stored, unless the registry had newer news of one).
    pub listed: usize,
    /// Templates in the registry that the listing no longer has, now marked `DELETED`.
    pub deleted: usize,
    /// Listing entries without a name or language, passed over.
    pub skipped: usize,
}

/// The status a template gets when the listing no longer has it.
pub const DELETED: &str = "DELETED";

/// Reads every page of `waba_id`'s templates from `source` and stores each as true at `now`
/// (unix seconds; an update the store has from after `now` is kept), marks the registry's
/// templates the listing no longer has as `DELETED`, and records that the account was synced.
pub async fn sync<Src, St>(
    source: &Src,
    store: &St,
    waba_id: &str,
    now: i64,
) -> Result<SyncReport, SyncError>
where
    Src: TemplateSource,
    St: TemplateStore,
{
    let mut report = SyncReport::default();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut cursors: HashSet<String> = HashSet::new();
    let mut after: Option<String> = None;
    let mut restarts = 0;
    loop {
        if report.pages >= MAX_PAGES {
            return Err(SyncError::Endless);
        }
        let page = match source.page(waba_id, after.as_deref()).await {
            // Meta (v24+) no longer takes the cursor (131059): list again from the first
            // page, a bounded number of times; what was stored stays (newest wins).
            Err(SourceError::Refused {
                code: Some(INVALID_CURSOR),
                ..
            }) if after.is_some() && restarts < MAX_RESTARTS => {
                restarts += 1;
                after = None;
                cursors.clear();
                continue;
            }
            page => page?,
        };
        report.pages += 1;
        report.skipped += page.skipped;
        for mut t in page.templates {
            t.waba_id = waba_id.to_owned();
            t.updated_at = now;
            store.put_template(&t).await?;
            seen.insert((t.name, t.language));
            report.listed += 1;
        }
        match page.after {
            Some(next) if !cursors.insert(next.clone()) => return Err(SyncError::Endless),
            Some(next) => after = Some(next),
            None => break,
        }
    }
    for mut t in store.templates(waba_id).await? {
        // A webhook from after the listing started is newer news than the listing.
        if seen.contains(&(t.name.clone(), t.language.clone()))
            || t.status.as_str() == DELETED
            || t.updated_at > now
        {
            continue;
        }
        t.status = TemplateStatus::Other(DELETED.into());
        t.updated_at = now;
        store.put_template(&t).await?;
        report.deleted += 1;
    }
    store.mark_synced(waba_id, now).await?;
    Ok(report)
}
