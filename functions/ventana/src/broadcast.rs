//! `ventana broadcast …`: broadcasts through Ventana's HTTP API.
//!
//! - [`prepare`] streams a recipient CSV through `wa_domain::broadcast::csv` into one
//!   `POST /v1/broadcasts` body with inline recipients. Rows the parser cannot use (bad phone,
//!   wrong field count, empty parameter, no recipient) are **skipped client-side**: they are
//!   not sent, and are reported with their line numbers and a count. (`ventana broadcast
//!   create` uploads such a list instead when it can, so that the ledger has those rows too.) Duplicates are sent; the
//!   planner records them as `skipped_duplicate`. A body over [`MAX_BODY_BYTES`] or with more
//!   than [`INLINE_MAX`] recipients is refused before anything is sent; `ventana broadcast
//!   create` then uploads the list instead ([`crate::upload`]). Either way [`create`] sends
//!   the `POST` with a new `Idempotency-Key` and sends it again with that key after a timeout,
//!   429 or 5xx ([`Api::post_idempotent`]), so a lost answer never makes a second broadcast.
//! - [`view`] / [`watch`] read `GET /v1/broadcasts/{id}` (once / until `completed`);
//!   [`report`] is the final text.
//! - [`set_paused`] posts to `/v1/broadcasts/{id}/pause` or `/resume`.
//! - [`export`] pages through `GET /v1/broadcasts/{id}/recipients?format=csv` until no next
//!   cursor and writes one CSV with one header.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
pub use wa_domain::broadcast::create::INLINE_MAX;
use wa_domain::broadcast::csv::Rows;

use crate::api::Api;
use crate::error::CliError;

/// The largest request body sent (bytes): send-api's body limit (1 MiB). A longer list is
/// uploaded ([`crate::upload`]).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How many bad rows are kept for printing (all are counted).
pub const BAD_ROWS_SHOWN: usize = 50;

/// The header naming the next ledger page's cursor in a CSV export page.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// Ledger rows asked per export page.
pub const EXPORT_PAGE: usize = 1000;

/// What to create.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The phone number id to send from.
    pub phone_number_id: String,
    /// Template name.
    pub template: String,
    /// Template language code.
    pub language: String,
    /// `(percent, every_secs)`; `None` leaves the API's default.
    pub release: Option<(u32, i64)>,
    /// Whether recipients need an opt-in.
    pub require_opt_in: bool,
}

/// A CSV row that is not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Its line in the file (from 1).
    pub line: u64,
    /// Why it cannot be used.
    pub problem: String,
}

/// A request body ready to post.
#[derive(Debug)]
pub struct Prepared {
    /// The JSON body.
    pub body: Vec<u8>,
    /// Recipients in it.
    pub recipients: usize,
    /// How many rows were skipped.
    pub bad_count: usize,
    /// The first [`BAD_ROWS_SHOWN`] of them.
    pub bad: Vec<BadRow>,
}

/// Reads the list and builds the body, holding at most the body and one record in memory.
/// `source` names the list in errors.
pub fn prepare<R: Read>(
    reader: R,
    source: &Path,
    opts: &CreateOptions,
) -> Result<Prepared, CliError> {
    let mut head = json!({
        "phone_number_id": opts.phone_number_id,
        "template": {"name": opts.template, "language": opts.language},
        "require_opt_in": opts.require_opt_in,
    });
    if let Some((percent, every_secs)) = opts.release {
        head["release"] = json!({"percent": percent, "every_secs": every_secs});
    }
    let mut body = serde_json::to_vec(&head).map_err(CliError::Encode)?;
    body.pop(); // the closing brace; recipients follow
    body.extend_from_slice(br#","recipients":["#);
    let (mut recipients, mut bad_count, mut bad) = (0usize, 0usize, Vec::new());
    for row in Rows::new(reader) {
        let row = row.map_err(|e| CliError::Csv {
            path: source.to_owned(),
            source: e,
        })?;
        if let Some(problem) = row.row.problem {
            bad_count += 1;
            if bad.len() < BAD_ROWS_SHOWN {
                bad.push(BadRow {
                    line: row.line,
                    problem,
                });
            }
            continue;
        }
        if recipients > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &row.row).map_err(CliError::Encode)?;
        recipients += 1;
        if recipients > INLINE_MAX {
            return Err(CliError::TooManyRecipients { max: INLINE_MAX });
        }
        if body.len() + 2 > MAX_BODY_BYTES {
            return Err(CliError::TooLarge {
                limit: MAX_BODY_BYTES,
                recipients,
            });
        }
    }
    if recipients == 0 {
        return Err(CliError::NoRecipients { bad: bad_count });
    }
    body.extend_from_slice(b"]}");
    Ok(Prepared {
        body,
        recipients,
        bad_count,
        bad,
    })
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// Posts a prepared body with a new `Idempotency-Key` (sent again with it on a timeout or a
/// 5xx: one broadcast however many tries); the new broadcast's id.
pub async fn create(api: &Api, prepared: &Prepared) -> Result<String, CliError> {
    let c: Created = api
        .post_idempotent(
            "/v1/broadcasts",
            prepared.body.clone(),
            &crate::api::new_idempotency_key(),
        )
        .await?;
    Ok(c.id)
}

/// A broadcast as `GET /v1/broadcasts/{id}` shows it (the fields the CLI uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct View {
    /// Its id.
    pub id: String,
    /// `running`, `paused` or `completed`.
    pub state: String,
    /// Why it is paused, when it is.
    #[serde(default)]
    pub paused_reason: Option<String>,
    /// Outcome counts by name (`total`, `queued`, `sent`, `delivered`, …).
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    /// Failures per error code, when the API gives them.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
}

/// Outcomes that are final, in the order the report shows them.
const SETTLED: [&str; 8] = [
    "delivered",
    "read",
    "sent",
    "failed",
    "skipped_opted_out",
    "skipped_not_opted_in",
    "skipped_duplicate",
    "skipped_invalid",
];

impl View {
    fn count(&self, k: &str) -> u64 {
        self.counts.get(k).copied().unwrap_or(0)
    }

    /// Recipients in the list.
    pub fn total(&self) -> u64 {
        self.count("total")
    }

    /// Recipients whose outcome is settled (sent counts: Meta accepted it).
    pub fn settled(&self) -> u64 {
        SETTLED.iter().map(|k| self.count(k)).sum()
    }

    /// Whether the broadcast has finished.
    pub fn completed(&self) -> bool {
        self.state == "completed"
    }

    /// One line of progress.
    pub fn progress_line(&self) -> String {
        let state = match &self.paused_reason {
            Some(r) if self.state == "paused" => format!("paused ({r})"),
            _ => self.state.clone(),
        };
        format!(
            "{state}: {}/{} settled, {} queued, {} waiting for the messaging limit, {} failed",
            self.settled(),
            self.total(),
            self.count("queued"),
            self.count("waiting_for_limit"),
            self.count("failed"),
        )
    }
}

fn check_id(id: &str) -> Result<&str, CliError> {
    if !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(id)
    } else {
        Err(CliError::BadBroadcastId(id.to_owned()))
    }
}

/// `GET /v1/broadcasts/{id}`.
pub async fn view(api: &Api, id: &str) -> Result<View, CliError> {
    let id = check_id(id)?;
    Ok(api.get(&format!("/v1/broadcasts/{id}")).await?)
}

/// Polls every `every` until the broadcast is completed, calling `on_view` with each view;
/// the last view.
pub async fn watch(
    api: &Api,
    id: &str,
    every: Duration,
    mut on_view: impl FnMut(&View),
) -> Result<View, CliError> {
    loop {
        let v = view(api, id).await?;
        on_view(&v);
        if v.completed() {
            return Ok(v);
        }
        tokio::time::sleep(every).await;
    }
}

/// The final report: counts per outcome and failures per error code.
pub fn report(v: &View) -> String {
    let mut out = format!(
        "broadcast {}: {}, {} recipients\n",
        v.id,
        v.state,
        v.total()
    );
    for k in SETTLED {
        out.push_str(&format!("  {k:<22}{:>8}\n", v.count(k)));
    }
    for k in ["queued", "waiting_for_limit"] {
        let n = v.count(k);
        if n > 0 {
            out.push_str(&format!("  {k:<22}{n:>8}\n"));
        }
    }
    if !v.errors.is_empty() {
        out.push_str("  failed by error code:\n");
        for (code, n) in &v.errors {
            out.push_str(&format!("    {code:<20}{n:>8}\n"));
        }
    }
    out
}

/// `POST /v1/broadcasts/{id}/pause` (`resume: false`) or `/resume`; the view after it.
pub async fn set_paused(api: &Api, id: &str, paused: bool) -> Result<View, CliError> {
    let id = check_id(id)?;
    let action = if paused { "pause" } else { "resume" };
    let answer: Value = api
        .post(&format!("/v1/broadcasts/{id}/{action}"), &json!({}))
        .await?;
    // The answer is the view; if it is not, read it.
    match serde_json::from_value::<View>(answer) {
        Ok(v) => Ok(v),
        Err(_) => view(api, id).await,
    }
}

/// Writes the broadcast's ledger to `out` as CSV (via a temporary file beside it, renamed
/// when complete): every page, with the first page's header once. The number of data rows.
pub async fn export(api: &Api, id: &str, out: &Path) -> Result<u64, CliError> {
    let id = check_id(id)?;
    let tmp = PathBuf::from(format!("{}.part", out.display()));
    let write_err = |source| CliError::Write {
        path: out.to_owned(),
        source,
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(write_err)?);
    let (mut cursor, mut header, mut rows): (Option<String>, Option<String>, u64) = (None, None, 0);
    loop {
        let mut q = format!("/v1/broadcasts/{id}/recipients?format=csv&limit={EXPORT_PAGE}");
        if let Some(c) = &cursor {
            q.push_str("&cursor=");
            q.push_str(&encode(c));
        }
        let (text, headers) = api.get_text(&q, "text/csv").await?;
        let mut lines = text.split_inclusive('\n');
        let first = lines.next().unwrap_or("");
        match &header {
            None => {
                header = Some(first.trim_end().to_owned());
                file.write_all(first.as_bytes()).map_err(write_err)?;
                if !first.ends_with('\n') && !first.is_empty() {
                    file.write_all(b"\n").map_err(write_err)?;
                }
            }
            Some(h) if first.trim_end() == h => {}
            Some(_) => return Err(CliError::ExportHeaderChanged),
        }
        // Lines are copied as they are; a record ends at a line end outside quotes.
        let mut in_quotes = false;
        for line in lines {
            file.write_all(line.as_bytes()).map_err(write_err)?;
            if !line.ends_with('\n') {
                file.write_all(b"\n").map_err(write_err)?;
            }
            in_quotes ^= line.bytes().filter(|b| *b == b'"').count() % 2 == 1;
            if !in_quotes {
                rows += 1;
            }
        }
        cursor = headers
            .get(NEXT_CURSOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    file.flush().map_err(write_err)?;
    drop(file);
    std::fs::rename(&tmp, out).map_err(write_err)?;
    Ok(rows)
}

/// Percent-encodes a cursor for a query string.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "broadcast_tests.rs"]
mod tests;
