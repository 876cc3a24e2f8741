//! The upload route and the `recipients_csv` scoping, on the `events/send-api/broadcast-*`
//! fixtures with in-memory fakes and a recording signer.

use std::sync::{Arc, Mutex};

use lambda_http::{Body, Response};
use serde_json::Value;
use wa_domain::auth::hash_key;
use wa_domain::broadcast::memory::MemoryBroadcasts;
use wa_domain::broadcast::{BroadcastId, BroadcastStore};
use wa_domain::ports::{ApiKeyStore, KeyScope};
use wa_domain::testing::{InMemoryStore, RecordingOutbound};

use super::*;
use crate::broadcasts::BroadcastDeps;
use crate::handler::{Deps, handle_all};
use crate::test_support::{NOW_MS, PNID, deps_over, fixture, keyed_store};

const BUCKET: &str = "recipients-test";
const OTHER: &str = "999999999999999";

/// Signs nothing: answers a fake URL and records what it was asked.
#[derive(Default, Clone)]
struct FakeSigner(Arc<Mutex<Vec<(String, String, u64)>>>);

impl PresignPut for FakeSigner {
    fn put_url<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expires_in: Duration,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        self.0
            .lock()
            .unwrap()
            .push((bucket.into(), key.into(), expires_in.as_secs()));
        let url = format!("http://s3.local/{bucket}/{key}?X-Amz-Signature=abc");
        Box::pin(async move { Ok(url) })
    }
}

struct World {
    deps: Deps<InMemoryStore, RecordingOutbound>,
    bc: BroadcastDeps<MemoryBroadcasts, InMemoryStore, MemoryBroadcasts>,
    signer: FakeSigner,
}

/// `test-api-key` for PNID, `other-key` for OTHER; uploads configured unless `bucket` is
/// `None`.
async fn world(bucket: Option<&str>) -> World {
    let store = keyed_store().await;
    store
        .put_key(
            &hash_key("other-key"),
            &KeyScope::Numbers(vec![OTHER.into()]),
            "o",
        )
        .await
        .unwrap();
    let mem = MemoryBroadcasts::new(Arc::new(InMemoryStore::default()));
    let signer = FakeSigner::default();
    World {
        deps: deps_over(store),
        bc: BroadcastDeps {
            store: mem.clone(),
            templates: InMemoryStore::default(),
            steps: mem,
            retention_secs: 86_400,
            uploads: bucket.map(|b| Uploads {
                bucket: b.into(),
                signer: Box::new(signer.clone()),
            }),
        },
        signer,
    }
}

async fn call(w: &World, event: &str) -> (u16, Value) {
    let req = lambda_http::request::from_str(event).expect("API Gateway v2 event");
    let res: Response<Body> = handle_all(&w.deps, Some(&w.bc), req, NOW_MS, [0xab; 10]).await;
    let text = match res.body() {
        Body::Text(t) => t.clone(),
        other => panic!("unexpected body {other:?}"),
    };
    (res.status().as_u16(), serde_json::from_str(&text).unwrap())
}

/// `case` with its body's JSON changed by `f`.
fn with_body(case: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut event: Value = serde_json::from_str(&fixture(case)).unwrap();
    let mut body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    f(&mut body);
    event["body"] = body.to_string().into();
    event.to_string()
}

/// The fixture broadcast with `recipients_csv` instead of its inline recipients.
fn create_with_list(bucket: &str, key: &str) -> String {
    with_body("broadcast-create", |b| {
        b.as_object_mut().unwrap().remove("recipients");
        b["recipients_csv"] = serde_json::json!({"bucket": bucket, "key": key});
    })
}

#[tokio::test]
async fn an_upload_url_is_made_for_a_fresh_key_of_the_number() {
    let w = world(Some(BUCKET)).await;
    let (status, v) = call(&w, &fixture("broadcast-upload")).await;
    assert_eq!(status, 201, "{v}");
    let key = v["recipients_csv"]["key"].as_str().unwrap();
    assert_eq!(key, format!("uploads/{PNID}/{}.csv", "ab".repeat(10)));
    assert_eq!(v["recipients_csv"]["bucket"], BUCKET);
    assert_eq!(v["method"], "PUT");
    assert_eq!(
        v["upload_url"],
        format!("http://s3.local/{BUCKET}/{key}?X-Amz-Signature=abc")
    );
    assert_eq!(
        v["expires_at"],
        wa_domain::clock::rfc3339(NOW_MS / 1000 + UPLOAD_URL_SECS as i64)
    );
    let asked = w.signer.0.lock().unwrap().clone();
    assert_eq!(
        asked,
        vec![(BUCKET.into(), key.to_owned(), UPLOAD_URL_SECS)]
    );
}

#[tokio::test]
async fn upload_urls_need_a_key_for_the_number_and_a_bucket() {
    let w = world(Some(BUCKET)).await;
    let no_key = fixture("broadcast-upload").replace("Bearer test-api-key", "");
    let (status, v) = call(&w, &no_key).await;
    assert_eq!(
        (status, v["error"]["code"].as_i64()),
        (401, Some(190)),
        "{v}"
    );
    let other_key = fixture("broadcast-upload").replace("test-api-key", "other-key");
    let (status, v) = call(&w, &other_key).await;
    assert_eq!(
        (status, v["error"]["code"].as_i64()),
        (403, Some(10)),
        "{v}"
    );
    let other_number = with_body("broadcast-upload", |b| b["phone_number_id"] = OTHER.into());
    let (status, _) = call(&w, &other_number).await;
    assert_eq!(status, 403);
    for bad in [
        Value::Null,
        "".into(),
        "12/../34".into(),
        "uploads".into(),
        12345.into(),
    ] {
        let ev = with_body("broadcast-upload", |b| b["phone_number_id"] = bad.clone());
        let (status, v) = call(&w, &ev).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    assert!(w.signer.0.lock().unwrap().is_empty(), "nothing signed");

    let w = world(None).await;
    let (status, v) = call(&w, &fixture("broadcast-upload")).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["error_data"]["details"]
            .as_str()
            .unwrap()
            .contains("bucket")
    );
}

#[tokio::test]
async fn a_broadcast_reads_only_an_upload_of_its_own_number() {
    let w = world(Some(BUCKET)).await;
    let (_, v) = call(&w, &fixture("broadcast-upload")).await;
    let key = v["recipients_csv"]["key"].as_str().unwrap().to_owned();

    // Another number's upload: 403, whichever key asks.
    let foreign = format!("uploads/{OTHER}/{}.csv", "ab".repeat(10));
    let (status, v) = call(&w, &create_with_list(BUCKET, &foreign)).await;
    assert_eq!(
        (status, v["error"]["code"].as_i64()),
        (403, Some(10)),
        "{v}"
    );
    // Anything but an upload of this number in this bucket: 400.
    for (bucket, k) in [
        ("other-bucket", key.as_str()),
        (BUCKET, "march.csv"),
        (BUCKET, "uploads/"),
        (BUCKET, &format!("uploads/{PNID}/")),
        (BUCKET, &format!("uploads/{PNID}/a/b.csv")),
        (BUCKET, &format!("uploads/{PNID}/..")),
        (BUCKET, &format!("lists/{PNID}/x.csv")),
    ] {
        let (status, v) = call(&w, &create_with_list(bucket, k)).await;
        assert_eq!(status, 400, "{bucket} {k}: {v}");
    }
    assert!(
        w.bc.steps.take_steps().is_empty(),
        "nothing queued when refused"
    );

    // Its own upload: accepted, and the job reads that list.
    let (status, v) = call(&w, &create_with_list(BUCKET, &key)).await;
    assert_eq!(status, 202, "{v}");
    let id = BroadcastId::parse(v["id"].as_str().unwrap()).unwrap();
    let b = w.bc.store.get_broadcast(&id).await.unwrap().unwrap();
    let source = b.source.unwrap();
    assert_eq!(
        (source.bucket.as_str(), source.key.as_str()),
        (BUCKET, key.as_str())
    );
    assert!(!b.imported);
    assert_eq!(w.bc.steps.take_steps().len(), 1);
}

#[tokio::test]
async fn without_a_bucket_a_csv_list_is_refused() {
    let w = world(None).await;
    let ev = create_with_list(BUCKET, &format!("uploads/{PNID}/x.csv"));
    let (status, v) = call(&w, &ev).await;
    assert_eq!(status, 400, "{v}");
    assert!(w.bc.steps.take_steps().is_empty());
}
