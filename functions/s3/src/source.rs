//! [`S3RecipientSource`]: a CSV list in S3, read a page at a time with ranged GETs.

use aws_sdk_s3::Client;
use wa_domain::broadcast::csv::{Decoder, Header, Position};
use wa_domain::broadcast::{RecipientList, RecipientPage, RecipientRow, RecipientSource};
use wa_domain::ports::StoreError;

use crate::S3Error;
use crate::chunks::{Fetched, Ranges};

/// The first read of a page (bytes); each further read of the page doubles, up to the chunk
/// size. A page of 500 ordinary rows (~25 KiB) then costs one small GET, not a 256 KiB one.
const FIRST_FETCH: usize = 64 * 1024;
/// The first read for a header when resuming at a cursor (doubles like the others).
const HEADER_FETCH: usize = 4 * 1024;

/// Recipient lists in S3: CSV objects in wa-domain's format
/// ([`wa_domain::broadcast::csv`]), read in pages with ranged GETs of at most
/// [`chunk_bytes`](Self::chunk_bytes) each. See the crate docs for the cursor.
#[derive(Debug, Clone)]
pub struct S3RecipientSource {
    client: Client,
    chunk_bytes: usize,
}

impl S3RecipientSource {
    /// The default largest ranged GET (256 KiB).
    pub const DEFAULT_CHUNK_BYTES: usize = 256 * 1024;

    /// A source reading through `client` (see [`crate::client`]).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            chunk_bytes: Self::DEFAULT_CHUNK_BYTES,
        }
    }

    /// The same source with ranged GETs of at most `bytes` (at least 1).
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes.max(1);
        self
    }

    /// The largest ranged GET, in bytes.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }
}

impl RecipientSource for S3RecipientSource {
    async fn page(
        &self,
        list: &RecipientList,
        cursor: Option<&str>,
        max_rows: usize,
    ) -> Result<RecipientPage, StoreError> {
        let page = read_page(&self.client, self.chunk_bytes, list, cursor, max_rows).await?;
        tracing::debug!(
            bucket = %list.bucket,
            rows = page.rows.len(),
            more = page.next_cursor.is_some(),
            "recipient list page read"
        );
        Ok(page)
    }
}

/// A list read from some byte on: the decoder, the next byte to fetch and what the object
/// said about itself.
struct Stream {
    dec: Decoder,
    next: u64,
    etag: Option<String>,
    total: Option<u64>,
    eof: bool,
    fetch: usize,
}

impl Stream {
    fn new(dec: Decoder, next: u64, etag: Option<String>, first_fetch: usize) -> Self {
        Self {
            dec,
            next,
            etag,
            total: None,
            eof: false,
            fetch: first_fetch,
        }
    }

    /// Fetches and feeds the next range (at most `max_fetch` bytes). `Ok(Some(problem))`
    /// when the object does not exist.
    async fn fill<G: Ranges>(
        &mut self,
        g: &G,
        list: &RecipientList,
        max_fetch: usize,
    ) -> Result<Option<String>, S3Error> {
        let len = self.fetch.min(max_fetch).max(1);
        self.fetch = self.fetch.saturating_mul(2);
        match g.get(list, self.next, len, self.etag.as_deref()).await? {
            Fetched::Missing => Ok(Some(format!(
                "recipients_csv s3://{}/{}: no such object",
                list.bucket, list.key
            ))),
            Fetched::PastEnd => {
                self.eof = true;
                Ok(None)
            }
            Fetched::Chunk(c) => {
                if let (Some(want), Some(got)) = (&self.etag, &c.etag)
                    && want != got
                {
                    return Err(S3Error::Changed);
                }
                if self.etag.is_none() {
                    self.etag = c.etag;
                }
                self.total = c.total.or(self.total);
                let n = c.bytes.len();
                self.next += n as u64;
                self.dec.feed(&c.bytes);
                if n < len || self.total.is_some_and(|t| self.next >= t) {
                    self.eof = true;
                }
                Ok(None)
            }
        }
    }

    /// The cursor of the decoder's position: `"{offset}:{line}"`, then `@{etag}` if known.
    fn cursor(&self) -> String {
        let pos = self.dec.position().to_cursor();
        match &self.etag {
            Some(etag) => format!("{pos}@{etag}"),
            None => pos,
        }
    }
}

/// The position and ETag of a cursor made by [`Stream::cursor`].
fn parse_cursor(c: &str) -> Result<(Position, Option<String>), S3Error> {
    let (pos, etag) = match c.split_once('@') {
        Some((p, e)) if !e.is_empty() => (p, Some(e.to_owned())),
        Some(_) => return Err(S3Error::BadCursor(c.to_owned())),
        None => (c, None),
    };
    let pos = Position::from_cursor(pos).ok_or_else(|| S3Error::BadCursor(c.to_owned()))?;
    Ok((pos, etag))
}

/// A list that ends with one unusable row saying why.
fn problem_page(problem: String) -> RecipientPage {
    RecipientPage {
        rows: vec![RecipientRow {
            problem: Some(problem),
            ..RecipientRow::default()
        }],
        next_cursor: None,
    }
}

/// Up to `max_rows` rows from `cursor` (see [`RecipientSource::page`]).
pub(crate) async fn read_page<G: Ranges>(
    g: &G,
    chunk: usize,
    list: &RecipientList,
    cursor: Option<&str>,
    max_rows: usize,
) -> Result<RecipientPage, S3Error> {
    let max_rows = max_rows.max(1);
    let mut s = match cursor {
        None => Stream::new(Decoder::new(), 0, None, FIRST_FETCH),
        Some(c) => {
            let (pos, etag) = parse_cursor(c)?;
            match read_header(g, chunk, list, etag.clone()).await? {
                Ok(header) => {
                    Stream::new(Decoder::resume(header, pos), pos.offset, etag, FIRST_FETCH)
                }
                Err(problem) => return Ok(problem_page(problem)),
            }
        }
    };
    let mut rows = Vec::new();
    loop {
        while rows.len() < max_rows {
            match s.dec.next_row(s.eof) {
                Ok(Some(r)) => rows.push(r.row),
                Ok(None) => break,
                // A bad header: before any row.
                Err(e) => return Ok(problem_page(format!("recipients_csv: {e}"))),
            }
        }
        if rows.len() >= max_rows {
            // Whether any row follows: unread bytes, or a row in what is buffered.
            let more = !s.eof || matches!(s.dec.clone().next_row(true), Ok(Some(_)));
            let next_cursor = more.then(|| s.cursor());
            return Ok(RecipientPage { rows, next_cursor });
        }
        if s.eof {
            if s.dec.missing_header() {
                return Ok(problem_page("recipients_csv: the list is empty".into()));
            }
            return Ok(RecipientPage {
                rows,
                next_cursor: None,
            });
        }
        if let Some(problem) = s.fill(g, list, chunk).await? {
            if rows.is_empty() {
                return Ok(problem_page(problem));
            }
            // Deleted between two reads of this page.
            return Err(S3Error::Changed);
        }
    }
}

/// The header row of a list (read from its start), or why it has none.
async fn read_header<G: Ranges>(
    g: &G,
    chunk: usize,
    list: &RecipientList,
    etag: Option<String>,
) -> Result<Result<Header, String>, S3Error> {
    let mut s = Stream::new(Decoder::new(), 0, etag, HEADER_FETCH);
    loop {
        if let Err(e) = s.dec.next_row(s.eof) {
            return Ok(Err(format!("recipients_csv: {e}")));
        }
        if let Some(h) = s.dec.header() {
            return Ok(Ok(h.clone()));
        }
        if s.eof {
            return Ok(Err("recipients_csv: the list is empty".into()));
        }
        if let Some(problem) = s.fill(g, list, chunk).await? {
            return Ok(Err(problem));
        }
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
