//! The paging logic over an in-memory object: every chunk size, every page size.

use std::sync::Mutex;

use wa_domain::broadcast::csv::Rows;

use super::*;
use crate::chunks::Chunk;

/// An object in memory that answers ranged reads like S3 (416 past the end, 412 on a
/// changed ETag) and records the lengths asked for.
struct Mem {
    bytes: Mutex<Vec<u8>>,
    etag: Mutex<String>,
    asked: Mutex<Vec<usize>>,
    missing: bool,
}

impl Mem {
    fn new(bytes: &[u8]) -> Self {
        Self {
            bytes: Mutex::new(bytes.to_vec()),
            etag: Mutex::new("e1".into()),
            asked: Mutex::new(Vec::new()),
            missing: false,
        }
    }
}

impl Ranges for Mem {
    async fn get(
        &self,
        _list: &RecipientList,
        offset: u64,
        len: usize,
        etag: Option<&str>,
    ) -> Result<Fetched, S3Error> {
        if self.missing {
            return Ok(Fetched::Missing);
        }
        self.asked.lock().unwrap().push(len);
        let current = self.etag.lock().unwrap().clone();
        if etag.is_some_and(|e| e != current) {
            return Err(S3Error::Changed);
        }
        let bytes = self.bytes.lock().unwrap();
        let start = offset as usize;
        if start >= bytes.len() {
            return Ok(Fetched::PastEnd);
        }
        let end = (start + len).min(bytes.len());
        Ok(Fetched::Chunk(Chunk {
            bytes: bytes[start..end].to_vec(),
            total: Some(bytes.len() as u64),
            etag: Some(current),
        }))
    }
}

fn list() -> RecipientList {
    RecipientList {
        bucket: "b".into(),
        key: "uploads/1/x.csv".into(),
    }
}

/// BOM, CRLF, quoted fields (a comma, a quote, a line break), a blank line, a bad row.
const SAMPLE: &[u8] = b"\xEF\xBB\xBFto,body.1\r\n\
+1 555 000 0001,\"Ana, Jr.\"\r\n\
15550000002,\"say \"\"hi\"\"\"\r\n\
\r\n\
15550000003,\"two\nlines\"\r\n\
not-a-phone,x\r\n\
15550000004,only,too,many\r\n\
15550000005,last";

/// Every page from the start, checking that each cursor read again gives the same page.
async fn all_pages(mem: &Mem, chunk: usize, max_rows: usize) -> Vec<RecipientRow> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let page = read_page(mem, chunk, &list(), cursor.as_deref(), max_rows)
            .await
            .unwrap();
        let again = read_page(mem, chunk, &list(), cursor.as_deref(), max_rows)
            .await
            .unwrap();
        assert_eq!(page, again, "cursor {cursor:?} read twice differs");
        assert!(page.rows.len() <= max_rows);
        rows.extend(page.rows);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return rows,
        }
    }
    panic!("no end after 1000 pages");
}

fn reference(bytes: &[u8]) -> Vec<RecipientRow> {
    Rows::new(bytes).map(|r| r.unwrap().row).collect()
}

#[tokio::test]
async fn every_chunk_and_page_size_reads_every_row_once_in_order() {
    let want = reference(SAMPLE);
    assert_eq!(want.len(), 6);
    assert_eq!(want[2].to.as_deref(), Some("15550000003"));
    assert!(want[3].problem.as_deref().unwrap().starts_with("line 7:"));
    assert!(want[4].problem.as_deref().unwrap().starts_with("line 8:"));
    assert_eq!(want[5].to.as_deref(), Some("15550000005"));
    for chunk in [1, 2, 3, 4, 5, 7, 11, 16, 33, 64, 1024] {
        for max_rows in [1, 2, 3, 7, 100] {
            let mem = Mem::new(SAMPLE);
            let got = all_pages(&mem, chunk, max_rows).await;
            assert_eq!(got, want, "chunk {chunk}, max_rows {max_rows}");
            assert!(
                mem.asked.lock().unwrap().iter().all(|l| *l <= chunk),
                "a read over the chunk size {chunk}"
            );
        }
    }
}

#[tokio::test]
async fn last_page_ending_on_the_last_row_has_no_cursor() {
    let csv = b"to\n15550000001\n15550000002\n";
    let mem = Mem::new(csv);
    let page = read_page(&mem, 1024, &list(), None, 2).await.unwrap();
    assert_eq!(page.rows.len(), 2);
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn a_bad_header_or_an_empty_or_missing_object_is_one_problem_row() {
    for (bytes, says) in [
        (&b"name,city\nAna,Madrid\n"[..], "CSV header"),
        (&b""[..], "empty"),
        (&b"\xEF\xBB\xBF\r\n"[..], "empty"),
    ] {
        let page = read_page(&Mem::new(bytes), 4, &list(), None, 10)
            .await
            .unwrap();
        assert_eq!(page.rows.len(), 1);
        assert!(
            page.rows[0].problem.as_deref().unwrap().contains(says),
            "{page:?}"
        );
        assert_eq!(page.next_cursor, None);
    }
    let mut mem = Mem::new(SAMPLE);
    mem.missing = true;
    let page = read_page(&mem, 4, &list(), None, 10).await.unwrap();
    assert!(
        page.rows[0]
            .problem
            .as_deref()
            .unwrap()
            .contains("no such object")
    );
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn a_replaced_object_is_noticed_at_the_next_page() {
    let mem = Mem::new(SAMPLE);
    let page = read_page(&mem, 16, &list(), None, 2).await.unwrap();
    let cursor = page.next_cursor.unwrap();
    assert!(cursor.ends_with("@e1"), "{cursor}");
    *mem.etag.lock().unwrap() = "e2".into();
    let err = read_page(&mem, 16, &list(), Some(&cursor), 2)
        .await
        .unwrap_err();
    assert!(matches!(err, S3Error::Changed), "{err:?}");
}

#[tokio::test]
async fn a_foreign_cursor_is_refused() {
    let mem = Mem::new(SAMPLE);
    for c in ["", "12", "x:1", "5:0", "5:1@"] {
        let err = read_page(&mem, 16, &list(), Some(c), 2).await.unwrap_err();
        assert!(matches!(err, S3Error::BadCursor(_)), "{c}: {err:?}");
    }
}

#[tokio::test]
async fn memory_stays_within_a_chunk_and_a_record() {
    // 2,000 rows read in pages of 500 with 1 KiB chunks: no read over the chunk.
    let mut csv = b"to,body.1\n".to_vec();
    for i in 0..2000 {
        csv.extend_from_slice(format!("1555{i:07},n{i}\n").as_bytes());
    }
    let mem = Mem::new(&csv);
    let got = all_pages(&mem, 1024, 500).await;
    assert_eq!(got.len(), 2000);
    assert_eq!(got[1999].to.as_deref(), Some("15550001999"));
    assert!(mem.asked.lock().unwrap().iter().all(|l| *l <= 1024));
}
