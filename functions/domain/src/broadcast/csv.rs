//! Recipient lists as CSV: what an operator exports from a spreadsheet or CRM, turned into
//! [`RecipientRow`]s one record at a time, so a list of any length is read in flat memory
//! (by the CLI from a file, by the S3 source from ranged reads).
//!
//! The format:
//! - a header row names the columns (trimmed, case-insensitive); a UTF-8 byte-order mark,
//!   CRLF or LF line ends, quoted fields (`"…"`, `""` for a quote, line breaks inside quotes)
//!   and empty lines are all accepted;
//! - `to` (phone digits; `+`, spaces, `-`, `.` and parentheses are dropped) and/or
//!   `recipient` (a BSUID) say who; at least one of the two columns is required;
//! - template parameters: `body.1`, `body.2`, … (text, in order; or named, `body.first_name`),
//!   `header.1` (text) or one of `header.image` / `header.video` / `header.document` (a link),
//!   `button.N` or `button.N.url` (the URL suffix of button N, 0-based) and
//!   `button.N.payload` (a quick-reply payload). Other columns are ignored.
//!
//! A row is turned into the Cloud API template `components` for that recipient. A row that
//! cannot be used (wrong number of fields, no recipient, an empty parameter, a bad phone) is
//! kept with a `problem` naming its line, so it is reported as skipped(invalid) at its place;
//! only a bad header or an I/O error stops the reading.

use std::io::Read;

use serde_json::{Value, json};

use super::RecipientRow;

/// The longest record taken (bytes). A longer one is reported as a bad row and skipped, so a
/// missing closing quote cannot make the reader buffer the rest of the file.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Why a list cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The header row is missing or unusable.
    #[error("CSV header: {0}")]
    Header(String),
    /// Reading the input failed.
    #[error("reading the CSV failed")]
    Io(#[from] std::io::Error),
}

/// Where in a list the next record starts: a byte offset and its 1-based line number. As a
/// string (`"{offset}:{line}"`) it is the cursor of a [`super::RecipientSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset from the start of the list (the BOM included).
    pub offset: u64,
    /// The line number of that byte.
    pub line: u64,
}

impl Position {
    /// The cursor form, `"{offset}:{line}"`.
    pub fn to_cursor(self) -> String {
        format!("{}:{}", self.offset, self.line)
    }

    /// Parses a cursor made by [`Position::to_cursor`].
    pub fn from_cursor(s: &str) -> Option<Self> {
        let (o, l) = s.split_once(':')?;
        Some(Self {
            offset: o.parse().ok()?,
            line: l.parse().ok().filter(|l| *l >= 1)?,
        })
    }
}

/// A button parameter's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ButtonKind {
    Url,
    Payload,
}

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    To,
    Recipient,
    /// `body.N` (N from 1) or a named `body.name`.
    Body(Param),
    /// `header.N` text.
    HeaderText(Param),
    /// `header.image` and friends: the media type.
    HeaderMedia(&'static str),
    Button(u8, ButtonKind),
    Ignored,
}

/// A parameter's position or name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Param {
    Index(usize),
    Named(String),
}

/// The parsed header row: what each column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    columns: Vec<(String, Column)>,
}

impl Header {
    fn parse(fields: &[String]) -> Result<Self, CsvError> {
        let bad = |s: String| CsvError::Header(s);
        let mut columns = Vec::with_capacity(fields.len());
        for f in fields {
            let name = f.trim().to_ascii_lowercase();
            let col = column(&name).map_err(bad)?;
            if col != Column::Ignored && columns.iter().any(|(n, _)| *n == name) {
                return Err(bad(format!("column {name:?} appears twice")));
            }
            columns.push((name, col));
        }
        let has = |p: &dyn Fn(&Column) -> bool| columns.iter().any(|(_, c)| p(c));
        if !has(&|c| matches!(c, Column::To | Column::Recipient)) {
            return Err(bad(
                "a `to` (phone) or `recipient` (BSUID) column is required".into(),
            ));
        }
        for part in ["body", "header"] {
            let params: Vec<&Param> = columns
                .iter()
                .filter_map(|(_, c)| match (part, c) {
                    ("body", Column::Body(p)) | ("header", Column::HeaderText(p)) => Some(p),
                    _ => None,
                })
                .collect();
            let indexed: Vec<usize> = params
                .iter()
                .filter_map(|p| match p {
                    Param::Index(i) => Some(*i),
                    Param::Named(_) => None,
                })
                .collect();
            if !indexed.is_empty() && indexed.len() != params.len() {
                return Err(bad(format!(
                    "{part} parameters are either all numbered or all named"
                )));
            }
            for n in 1..=indexed.len() {
                if !indexed.contains(&n) {
                    return Err(bad(format!(
                        "{part}.{n} is missing: {part} parameters are numbered 1, 2, … without gaps"
                    )));
                }
            }
        }
        let media = columns
            .iter()
            .filter(|(_, c)| matches!(c, Column::HeaderMedia(_)))
            .count();
        if media > 1 || (media == 1 && has(&|c| matches!(c, Column::HeaderText(_)))) {
            return Err(bad(
                "a header is either text (header.1) or one media link (header.image, header.video or header.document)".into(),
            ));
        }
        for i in 0..=9u8 {
            let kinds: Vec<&ButtonKind> = columns
                .iter()
                .filter_map(|(_, c)| match c {
                    Column::Button(j, k) if *j == i => Some(k),
                    _ => None,
                })
                .collect();
            if kinds.len() > 1 {
                return Err(bad(format!("button {i} is given twice")));
            }
        }
        Ok(Self { columns })
    }

    /// Builds the row of one record that starts on `line`.
    fn row(&self, fields: Vec<String>, line: u64) -> RecipientRow {
        let mut row = RecipientRow::default();
        if fields.len() != self.columns.len() {
            row.problem = Some(format!(
                "line {line}: {} fields, the header has {}",
                fields.len(),
                self.columns.len()
            ));
            return row;
        }
        let mut body: Vec<(Param, String)> = Vec::new();
        let mut header_text: Vec<(Param, String)> = Vec::new();
        let mut header_media: Option<(&str, String)> = None;
        let mut buttons: Vec<(u8, &ButtonKind, String)> = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        for ((name, col), value) in self.columns.iter().zip(fields) {
            let v = value.trim();
            let needs_value = !matches!(col, Column::Ignored | Column::To | Column::Recipient);
            if needs_value && v.is_empty() {
                problems.push(format!("{name} is empty"));
                continue;
            }
            match col {
                Column::To if !v.is_empty() => match phone_digits(v) {
                    Some(d) => row.to = Some(d),
                    None => problems.push(format!("to {v:?} is not a phone number")),
                },
                Column::Recipient if !v.is_empty() => row.recipient = Some(v.to_owned()),
                Column::Body(p) => body.push((p.clone(), v.to_owned())),
                Column::HeaderText(p) => header_text.push((p.clone(), v.to_owned())),
                Column::HeaderMedia(kind) => header_media = Some((kind, v.to_owned())),
                Column::Button(i, k) => buttons.push((*i, k, v.to_owned())),
                _ => {}
            }
        }
        if row.to.is_none() && row.recipient.is_none() && problems.is_empty() {
            problems.push("no `to` or `recipient`".into());
        }
        if !problems.is_empty() {
            row.to = None;
            row.recipient = None;
            row.problem = Some(format!("line {line}: {}", problems.join("; ")));
            return row;
        }
        let mut components = Vec::new();
        if let Some((kind, link)) = header_media {
            components.push(
                json!({"type": "header", "parameters": [{"type": kind, kind: {"link": link}}]}),
            );
        } else if !header_text.is_empty() {
            components.push(json!({"type": "header", "parameters": text_params(header_text)}));
        }
        if !body.is_empty() {
            components.push(json!({"type": "body", "parameters": text_params(body)}));
        }
        buttons.sort_by_key(|(i, _, _)| *i);
        for (i, kind, v) in buttons {
            components.push(match kind {
                ButtonKind::Url => {
                    json!({"type": "button", "sub_type": "url", "index": i.to_string(),
                                          "parameters": [{"type": "text", "text": v}]})
                }
                ButtonKind::Payload => {
                    json!({"type": "button", "sub_type": "quick_reply", "index": i.to_string(),
                                              "parameters": [{"type": "payload", "payload": v}]})
                }
            });
        }
        row.components = Value::Array(components);
        row
    }
}

/// Text parameters in placeholder order (numbered) or column order (named).
fn text_params(mut params: Vec<(Param, String)>) -> Value {
    params.sort_by_key(|(p, _)| match p {
        Param::Index(i) => *i,
        Param::Named(_) => 0,
    });
    Value::Array(
        params
            .into_iter()
            .map(|(p, text)| match p {
                Param::Index(_) => json!({"type": "text", "text": text}),
                Param::Named(n) => json!({"type": "text", "parameter_name": n, "text": text}),
            })
            .collect(),
    )
}

/// What a header name means.
fn column(name: &str) -> Result<Column, String> {
    let param = |rest: &str| -> Result<Param, String> {
        if let Ok(i) = rest.parse::<usize>() {
            return if (1..=100).contains(&i) {
                Ok(Param::Index(i))
            } else {
                Err(format!("column {name:?}: parameters are numbered from 1"))
            };
        }
        if !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            Ok(Param::Named(rest.to_owned()))
        } else {
            Err(format!("column {name:?}: not a parameter name"))
        }
    };
    Ok(match name {
        "to" | "phone" | "wa_id" => Column::To,
        "recipient" | "user_id" | "bsuid" => Column::Recipient,
        "header.image" => Column::HeaderMedia("image"),
        "header.video" => Column::HeaderMedia("video"),
        "header.document" => Column::HeaderMedia("document"),
        _ => {
            if let Some(rest) = name.strip_prefix("body.") {
                Column::Body(param(rest)?)
            } else if let Some(rest) = name.strip_prefix("header.") {
                Column::HeaderText(param(rest)?)
            } else if let Some(rest) = name.strip_prefix("button.") {
                let (idx, kind) = match rest.split_once('.') {
                    None => (rest, ButtonKind::Url),
                    Some((i, "url")) => (i, ButtonKind::Url),
                    Some((i, "payload" | "quick_reply")) => (i, ButtonKind::Payload),
                    Some(_) => {
                        return Err(format!(
                            "column {name:?}: buttons are button.N, button.N.url or button.N.payload"
                        ));
                    }
                };
                let i = idx
                    .parse::<u8>()
                    .ok()
                    .filter(|i| *i <= 9)
                    .ok_or_else(|| format!("column {name:?}: button index must be 0 to 9"))?;
                Column::Button(i, kind)
            } else {
                Column::Ignored
            }
        }
    })
}

/// Phone digits from what a spreadsheet holds (`+34 600-11 22 33`); `None` if anything else
/// is in it or the length cannot be a phone number.
fn phone_digits(v: &str) -> Option<String> {
    let mut d = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '0'..='9' => d.push(c),
            '+' | ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
            _ => return None,
        }
    }
    (7..=15).contains(&d.len()).then_some(d)
}

/// One record as split from the input.
enum Split {
    /// A record: its fields and how many bytes and line breaks it took (its line end
    /// included).
    Record {
        fields: Vec<String>,
        consumed: usize,
        newlines: u64,
    },
    /// An empty line (skipped): bytes and line breaks taken.
    Blank { consumed: usize, newlines: u64 },
    /// The buffer holds no whole record yet.
    NeedMore,
    /// A record over [`MAX_RECORD_BYTES`] or with an unclosed quote at the end of input:
    /// bytes and line breaks to skip.
    Broken {
        why: &'static str,
        consumed: usize,
        newlines: u64,
    },
}

/// Splits one record off the front of `buf`; `eof` says no more input follows.
fn split(buf: &[u8], eof: bool) -> Split {
    let mut fields = Vec::new();
    let mut field: Vec<u8> = Vec::new();
    let mut quoted = false;
    let mut at_field_start = true;
    let mut newlines = 0u64;
    let mut i = 0;
    let finish = |field: &mut Vec<u8>, fields: &mut Vec<String>| {
        fields.push(String::from_utf8_lossy(field).into_owned());
        field.clear();
    };
    while i < buf.len() {
        if i >= MAX_RECORD_BYTES {
            // Skip to the next line end outside what we have read so far.
            let end = buf[i..].iter().position(|b| *b == b'\n').map(|p| i + p + 1);
            return match end {
                Some(end) => Split::Broken {
                    why: "record longer than 64 KiB (an unclosed quote?)",
                    consumed: end,
                    newlines: newlines + 1,
                },
                None if eof => Split::Broken {
                    why: "record longer than 64 KiB (an unclosed quote?)",
                    consumed: buf.len(),
                    newlines,
                },
                None => Split::NeedMore,
            };
        }
        let b = buf[i];
        if quoted {
            match b {
                b'"' if buf.get(i + 1) == Some(&b'"') => {
                    field.push(b'"');
                    i += 2;
                    continue;
                }
                b'"' if i + 1 == buf.len() && !eof => return Split::NeedMore,
                b'"' => quoted = false,
                b'\n' => {
                    newlines += 1;
                    field.push(b);
                }
                _ => field.push(b),
            }
            i += 1;
            continue;
        }
        match b {
            b'"' if at_field_start => {
                quoted = true;
                at_field_start = false;
            }
            b',' => {
                finish(&mut field, &mut fields);
                at_field_start = true;
            }
            b'\n' => {
                let blank = fields.is_empty() && field.iter().all(|c| c.is_ascii_whitespace());
                newlines += 1;
                if blank {
                    return Split::Blank {
                        consumed: i + 1,
                        newlines,
                    };
                }
                if field.last() == Some(&b'\r') {
                    field.pop();
                }
                finish(&mut field, &mut fields);
                return Split::Record {
                    fields,
                    consumed: i + 1,
                    newlines,
                };
            }
            _ => {
                if !(at_field_start && b == b' ') {
                    at_field_start = false;
                }
                field.push(b);
            }
        }
        i += 1;
    }
    if !eof {
        return Split::NeedMore;
    }
    if quoted {
        return Split::Broken {
            why: "unclosed quote",
            consumed: buf.len(),
            newlines,
        };
    }
    if fields.is_empty() && field.iter().all(|c| c.is_ascii_whitespace()) {
        return Split::Blank {
            consumed: buf.len(),
            newlines,
        };
    }
    if field.last() == Some(&b'\r') {
        field.pop();
    }
    finish(&mut field, &mut fields);
    Split::Record {
        fields,
        consumed: buf.len(),
        newlines,
    }
}

/// A row read from a list, with the line its record starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRow {
    /// The 1-based line number (the header is line 1).
    pub line: u64,
    /// The row (with `problem` set when it cannot be used).
    pub row: RecipientRow,
}

/// A push decoder: feed it bytes as they arrive, take rows out. It holds at most one record
/// plus what was fed and not yet used, whatever the list's length.
#[derive(Debug, Clone)]
pub struct Decoder {
    header: Option<Header>,
    buf: Vec<u8>,
    /// The first byte of `buf` not yet taken out (compacted on the next feed).
    start: usize,
    /// Position of `buf[start]`.
    pos: Position,
    header_failed: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder for a list read from its first byte (a BOM, then the header row).
    pub fn new() -> Self {
        Self {
            header: None,
            buf: Vec::new(),
            start: 0,
            pos: Position { offset: 0, line: 1 },
            header_failed: false,
        }
    }

    /// A decoder that continues a list at `pos` (after its header), e.g. from a cursor.
    pub fn resume(header: Header, pos: Position) -> Self {
        Self {
            header: Some(header),
            buf: Vec::new(),
            start: 0,
            pos,
            header_failed: false,
        }
    }

    /// The header, once read.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Where the next record starts (after everything taken out so far).
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Adds input.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes fed and not yet taken out.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    fn take(&mut self, consumed: usize, newlines: u64) {
        self.start += consumed;
        self.pos.offset += consumed as u64;
        self.pos.line += newlines;
    }

    /// The next row; `Ok(None)` when more input is needed (or, with `eof`, when the list is
    /// done). A bad header is an error (once; then the decoder yields nothing).
    pub fn next_row(&mut self, eof: bool) -> Result<Option<CsvRow>, CsvError> {
        if self.header_failed {
            return Ok(None);
        }
        if self.pos.offset == 0 && self.header.is_none() {
            if self.buffered() < 3 && !eof {
                return Ok(None);
            }
            if self.buf[self.start..].starts_with(b"\xEF\xBB\xBF") {
                self.take(3, 0);
            }
        }
        loop {
            let line = self.pos.line;
            match split(&self.buf[self.start..], eof) {
                Split::NeedMore => return Ok(None),
                Split::Blank { consumed, newlines } => {
                    if consumed == 0 {
                        return Ok(None);
                    }
                    self.take(consumed, newlines);
                }
                Split::Broken {
                    why,
                    consumed,
                    newlines,
                } => {
                    self.take(consumed, newlines);
                    if self.header.is_none() {
                        self.header_failed = true;
                        return Err(CsvError::Header(format!("line {line}: {why}")));
                    }
                    let row = RecipientRow {
                        problem: Some(format!("line {line}: {why}")),
                        ..RecipientRow::default()
                    };
                    return Ok(Some(CsvRow { line, row }));
                }
                Split::Record {
                    fields,
                    consumed,
                    newlines,
                } => {
                    self.take(consumed, newlines);
                    match &self.header {
                        None => match Header::parse(&fields) {
                            Ok(h) => self.header = Some(h),
                            Err(e) => {
                                self.header_failed = true;
                                return Err(e);
                            }
                        },
                        Some(h) => {
                            let row = h.row(fields, line);
                            return Ok(Some(CsvRow { line, row }));
                        }
                    }
                }
            }
        }
    }

    /// Whether input ended without a header row.
    pub fn missing_header(&self) -> bool {
        self.header.is_none()
    }
}

/// Rows from a reader, in flat memory (reads 64 KiB at a time).
pub struct Rows<R> {
    reader: R,
    decoder: Decoder,
    eof: bool,
    done: bool,
}

impl<R: Read> Rows<R> {
    /// Reads a whole list from its start.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            decoder: Decoder::new(),
            eof: false,
            done: false,
        }
    }

    /// Where the next record starts.
    pub fn position(&self) -> Position {
        self.decoder.position()
    }
}

impl<R: Read> Iterator for Rows<R> {
    type Item = Result<CsvRow, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if self.done {
                return None;
            }
            match self.decoder.next_row(self.eof) {
                Ok(Some(row)) => return Some(Ok(row)),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(None) if self.eof => {
                    self.done = true;
                    if self.decoder.missing_header() {
                        return Some(Err(CsvError::Header("the list is empty".into())));
                    }
                    return None;
                }
                Ok(None) => {}
            }
            match self.reader.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.decoder.feed(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "csv_tests.rs"]
mod tests;
