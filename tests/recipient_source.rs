//! wa-s3 against moto's S3: a recipient list read a page at a time with ranged GETs (small
//! chunks, so records straddle them), cursors read again, a presigned PUT, a missing object.
//!
//! Run with `scripts/with-moto.sh cargo test -p wa-tests --test recipient_source`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use wa_domain::broadcast::csv::Rows;
use wa_domain::broadcast::{RecipientList, RecipientRow, RecipientSource};
use wa_s3::{S3Presigner, S3RecipientSource};
use wa_tests::aws::{moto_config, unique_name};

async fn client() -> Client {
    wa_s3::client(&moto_config().await)
}

/// A fresh bucket.
async fn bucket(c: &Client) -> String {
    let name = unique_name("lists").to_ascii_lowercase().replace('_', "-");
    c.create_bucket().bucket(&name).send().await.unwrap();
    name
}

async fn put(c: &Client, bucket: &str, key: &str, bytes: Vec<u8>) -> RecipientList {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap();
    RecipientList {
        bucket: bucket.into(),
        key: key.into(),
    }
}

/// A list with a BOM, CRLF line ends, quoted fields (commas, quotes, a line break, one field
/// longer than the test's chunk), a blank line and bad rows, then plain rows.
fn sample() -> Vec<u8> {
    let mut csv = b"\xEF\xBB\xBFto,body.1,notes\r\n".to_vec();
    csv.extend_from_slice(b"+1 (555) 000-0001,\"Ana, Jr.\",x\r\n");
    csv.extend_from_slice(b"15550000002,\"say \"\"hi\"\"\",\"two\r\nlines\"\r\n");
    csv.extend_from_slice(b"\r\n");
    csv.extend_from_slice(format!("15550000003,\"{}\",y\r\n", "long ".repeat(40)).as_bytes());
    csv.extend_from_slice(b"not-a-phone,x,y\r\n");
    csv.extend_from_slice(b"15550000004,only two\r\n");
    for i in 5..40 {
        csv.extend_from_slice(format!("1555000{i:04},n{i},\r\n").as_bytes());
    }
    csv
}

/// Every page from the start; each cursor is read twice and must give the same page.
async fn all_pages(
    src: &S3RecipientSource,
    list: &RecipientList,
    max_rows: usize,
) -> Vec<RecipientRow> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = src.page(list, cursor.as_deref(), max_rows).await.unwrap();
        let again = src.page(list, cursor.as_deref(), max_rows).await.unwrap();
        assert_eq!(page, again, "cursor {cursor:?} read twice");
        assert!(page.rows.len() <= max_rows);
        rows.extend(page.rows);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return rows,
        }
    }
}

#[tokio::test]
async fn a_list_is_read_once_in_order_in_small_ranged_pages() {
    let c = client().await;
    let b = bucket(&c).await;
    let bytes = sample();
    let list = put(&c, &b, "uploads/1065/a.csv", bytes.clone()).await;
    let want: Vec<RecipientRow> = Rows::new(&bytes[..]).map(|r| r.unwrap().row).collect();
    assert_eq!(want.len(), 40);
    assert_eq!(want[0].to.as_deref(), Some("15550000001"));
    assert_eq!(
        want[2].to.as_deref(),
        Some("15550000003"),
        "the long record"
    );
    assert!(want[3].problem.as_deref().unwrap().starts_with("line 7:"));
    assert!(want[4].problem.as_deref().unwrap().starts_with("line 8:"));

    // 64-byte chunks: the 200-byte record and many others straddle ranged GETs.
    let src = S3RecipientSource::new(c.clone()).with_chunk_bytes(64);
    for max_rows in [1, 3, 7, 500] {
        let got = all_pages(&src, &list, max_rows).await;
        assert_eq!(got, want, "max_rows {max_rows}");
    }
    // The default chunk reads it in one page.
    let page = S3RecipientSource::new(c)
        .page(&list, None, 500)
        .await
        .unwrap();
    assert_eq!(page.rows, want);
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn a_presigned_put_uploads_a_list_that_is_then_read() {
    let c = client().await;
    let b = bucket(&c).await;
    let key = "uploads/106540352242922/0123abcd.csv";
    let url = S3Presigner::new(c.clone())
        .put_url(&b, key, std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert!(url.contains(&format!("/{b}/{key}?")), "path-style: {url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let res = reqwest::Client::new()
        .put(&url)
        .body("to,body.1\n15550000001,Ana\n15550000002,Luis\n")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let list = RecipientList {
        bucket: b,
        key: key.into(),
    };
    let src = S3RecipientSource::new(c);
    let first = src.page(&list, None, 1).await.unwrap();
    assert_eq!(first.rows[0].to.as_deref(), Some("15550000001"));
    let second = src
        .page(&list, first.next_cursor.as_deref(), 1)
        .await
        .unwrap();
    assert_eq!(second.rows[0].to.as_deref(), Some("15550000002"));
    assert_eq!(second.next_cursor, None);
}

#[tokio::test]
async fn a_missing_object_or_a_replaced_one_is_reported() {
    let c = client().await;
    let b = bucket(&c).await;
    let src = S3RecipientSource::new(c.clone()).with_chunk_bytes(64);
    let missing = RecipientList {
        bucket: b.clone(),
        key: "uploads/1/none.csv".into(),
    };
    let page = src.page(&missing, None, 10).await.unwrap();
    assert_eq!(page.rows.len(), 1);
    assert!(
        page.rows[0]
            .problem
            .as_deref()
            .unwrap()
            .contains("no such object"),
        "{page:?}"
    );
    assert_eq!(page.next_cursor, None);

    // Overwritten between two pages: the next page notices (If-Match), never mixes lists.
    let list = put(&c, &b, "uploads/1/a.csv", sample()).await;
    let first = src.page(&list, None, 2).await.unwrap();
    let mut other = sample();
    other.extend_from_slice(b"15559999999,z,\r\n");
    put(&c, &b, "uploads/1/a.csv", other).await;
    let err = src
        .page(&list, first.next_cursor.as_deref(), 2)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("changed"), "{err}");
}

#[tokio::test]
async fn twenty_thousand_rows_are_read_in_pages_of_500_with_the_default_chunk() {
    let c = client().await;
    let b = bucket(&c).await;
    let mut csv = b"to,body.1\r\n".to_vec();
    for i in 0..20_000 {
        csv.extend_from_slice(format!("1555{i:07},\"Customer {i}\"\r\n").as_bytes());
    }
    let list = put(&c, &b, "uploads/1/big.csv", csv).await;
    let src = S3RecipientSource::new(c);
    let started = std::time::Instant::now();
    let (mut rows, mut pages, mut cursor) = (0u64, 0u32, None::<String>);
    loop {
        let page = src.page(&list, cursor.as_deref(), 500).await.unwrap();
        for (i, r) in page.rows.iter().enumerate() {
            let want = format!("1555{:07}", rows + i as u64);
            assert_eq!(r.to.as_deref(), Some(want.as_str()));
        }
        rows += page.rows.len() as u64;
        pages += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!((rows, pages), (20_000, 40));
    eprintln!(
        "20,000 rows in {pages} pages of 500 from moto: {:.2} s",
        started.elapsed().as_secs_f64()
    );
}
