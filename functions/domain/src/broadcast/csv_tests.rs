use super::*;
use serde_json::json;

fn rows(input: &[u8]) -> Vec<CsvRow> {
    Rows::new(input).map(|r| r.unwrap()).collect()
}

fn header_error(input: &[u8]) -> String {
    match Rows::new(input).next() {
        Some(Err(CsvError::Header(why))) => why,
        other => panic!("expected a header error, got {other:?}"),
    }
}

#[test]
fn a_row_becomes_the_recipients_components() {
    let csv = b"to,body.1,body.2,header.1,button.0,button.1.payload,notes\n\
                +34 600 11 22 33,Ana,#123,Hola,track/123,STOP_PROMO,ignored\n";
    let r = rows(csv);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].line, 2);
    assert_eq!(r[0].row.to.as_deref(), Some("34600112233"));
    assert_eq!(r[0].row.problem, None);
    assert_eq!(
        r[0].row.components,
        json!([
            {"type": "header", "parameters": [{"type": "text", "text": "Hola"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#123"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "track/123"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "1", "parameters": [{"type": "payload", "payload": "STOP_PROMO"}]},
        ])
    );
}

#[test]
fn body_parameters_follow_their_numbers_not_the_column_order() {
    let r = rows(b"body.2,recipient,body.1\nsecond,US.1349,first\n");
    assert_eq!(r[0].row.recipient.as_deref(), Some("US.1349"));
    assert_eq!(r[0].row.to, None);
    assert_eq!(
        r[0].row.components,
        json!([{"type": "body", "parameters": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]}])
    );
}

#[test]
fn media_headers_and_named_parameters() {
    let r = rows(b"TO,Header.Document,body.first_name\n15551234567,https://x.test/a.pdf,Ana\n");
    assert_eq!(
        r[0].row.components,
        json!([
            {"type": "header", "parameters": [{"type": "document", "document": {"link": "https://x.test/a.pdf"}}]},
            {"type": "body", "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}]},
        ])
    );
    let r = rows(b"to\n15551234567\n");
    assert_eq!(
        r[0].row.components,
        json!([]),
        "no parameters: no components"
    );
}

#[test]
fn quoted_fields_hold_commas_quotes_and_line_breaks() {
    let csv = b"to,body.1,body.2\n\
                15551234567,\"Ana, Mar\xc3\xada\",\"she said \"\"hi\"\"\nand left\"\n\
                15551234568,plain,x\n";
    let r = rows(csv);
    assert_eq!(r.len(), 2);
    let body = &r[0].row.components[0]["parameters"];
    assert_eq!(body[0]["text"], "Ana, María");
    assert_eq!(body[1]["text"], "she said \"hi\"\nand left");
    assert_eq!(r[1].line, 4, "the quoted line break counts as a line");
}

#[test]
fn bom_crlf_empty_lines_and_no_final_newline() {
    let csv = b"\xEF\xBB\xBFto,body.1\r\n\r\n15551234567,uno\r\n\r\n   \r\n15551234568,\"dos\"\r\n15551234569,tres";
    let r = rows(csv);
    let got: Vec<(u64, &str, &str)> = r
        .iter()
        .map(|c| {
            (
                c.line,
                c.row.to.as_deref().unwrap(),
                c.row.components[0]["parameters"][0]["text"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (3, "15551234567", "uno"),
            (6, "15551234568", "dos"),
            (7, "15551234569", "tres")
        ]
    );
}

#[test]
fn bad_rows_are_kept_with_their_line_and_reading_goes_on() {
    let csv = b"to,recipient,body.1\n\
                15551234567,,ok\n\
                not-a-phone,,x\n\
                ,,x\n\
                15551234567,,\n\
                15551234567,x\n\
                15551234568,,\"unclosed\n";
    let r = rows(csv);
    let problems: Vec<Option<&str>> = r.iter().map(|c| c.row.problem.as_deref()).collect();
    assert_eq!(
        problems,
        [
            None,
            Some("line 3: to \"not-a-phone\" is not a phone number"),
            Some("line 4: no `to` or `recipient`"),
            Some("line 5: body.1 is empty"),
            Some("line 6: 2 fields, the header has 3"),
            Some("line 7: unclosed quote"),
        ]
    );
    assert!(r[1..].iter().all(|c| c.row.to.is_none()));
}

#[test]
fn a_runaway_quote_is_one_bad_row_not_the_rest_of_memory() {
    let mut csv = b"to,body.1\n15551234567,\"".to_vec();
    csv.extend(std::iter::repeat_n(b'a', MAX_RECORD_BYTES + 10));
    csv.extend_from_slice(b"\n15551234568,ok\n");
    let r = rows(&csv);
    assert!(r[0].row.problem.as_deref().unwrap().contains("64 KiB"));
    assert_eq!(r.last().unwrap().row.to.as_deref(), Some("15551234568"));
}

#[test]
fn bad_headers_stop_the_reading() {
    assert!(header_error(b"name,body.1\nAna,x\n").contains("`to`"));
    assert!(header_error(b"to,body.1,body.3\n").contains("body.2 is missing"));
    assert!(header_error(b"to,body.1,body.name\n").contains("all numbered or all named"));
    assert!(header_error(b"to,to\n").contains("twice"));
    assert!(header_error(b"to,header.1,header.image\n").contains("header"));
    assert!(header_error(b"to,button.12\n").contains("0 to 9"));
    assert!(header_error(b"to,button.0,button.0.payload\n").contains("twice"));
    assert!(header_error(b"to,body.0\n").contains("from 1"));
    assert!(header_error(b"").contains("empty"));
    assert!(header_error(b"\n\n").contains("empty"));
}

/// A reader that hands out one byte at a time, to check records split across reads.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.split_first() {
            Some((b, rest)) if !buf.is_empty() => {
                buf[0] = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn records_split_across_reads_parse_the_same() {
    let csv = b"\xEF\xBB\xBFto,body.1\r\n15551234567,\"a \"\"b\"\"\r\nc\"\r\n\r\n15551234568,d";
    let whole = rows(csv);
    let trickled: Vec<CsvRow> = Rows::new(Trickle(csv)).map(|r| r.unwrap()).collect();
    assert_eq!(whole, trickled);
    assert_eq!(whole.len(), 2);
    assert_eq!(
        whole[0].row.components[0]["parameters"][0]["text"],
        "a \"b\"\r\nc"
    );
}

#[test]
fn a_cursor_resumes_where_the_last_row_ended() {
    let csv = b"to,body.1\n15551234567,a\n\n15551234568,\"b\nb\"\n15551234569,c\n";
    let mut all = Rows::new(&csv[..]);
    let first = all.next().unwrap().unwrap();
    let pos = all.position();
    let cursor = pos.to_cursor();
    assert_eq!(Position::from_cursor(&cursor), Some(pos));
    let rest: Vec<CsvRow> = all.map(|r| r.unwrap()).collect();

    let mut header = Decoder::new();
    header.feed(&csv[..12]);
    let _ = header.next_row(false).unwrap();
    let mut d = Decoder::resume(header.header().unwrap().clone(), pos);
    d.feed(&csv[pos.offset as usize..]);
    let mut resumed = Vec::new();
    while let Some(r) = d.next_row(true).unwrap() {
        resumed.push(r);
    }
    assert_eq!(first.line, 2);
    assert_eq!(resumed, rest);
    assert_eq!(resumed.iter().map(|r| r.line).collect::<Vec<_>>(), [4, 6]);
    assert_eq!(d.position().offset, csv.len() as u64);
    assert_eq!(Position::from_cursor("x:1"), None);
    assert_eq!(Position::from_cursor("5:0"), None);
}

#[test]
fn memory_stays_flat_over_a_long_list() {
    struct Generated {
        left: usize,
        pending: Vec<u8>,
    }
    impl std::io::Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pending.is_empty() {
                if self.left == 0 {
                    return Ok(0);
                }
                self.left -= 1;
                self.pending = format!("1555{:07},name {}\n", self.left, self.left).into_bytes();
            }
            let n = self.pending.len().min(buf.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }
    let mut reader = Rows::new(std::io::Read::chain(
        &b"to,body.1\n"[..],
        Generated {
            left: 50_000,
            pending: Vec::new(),
        },
    ));
    let mut n = 0;
    let mut most = 0;
    while let Some(r) = reader.next() {
        assert!(r.unwrap().row.problem.is_none());
        n += 1;
        most = most.max(reader.decoder.buffered());
    }
    assert_eq!(n, 50_000);
    assert!(most <= 64 * 1024, "buffered up to {most} bytes");
}
