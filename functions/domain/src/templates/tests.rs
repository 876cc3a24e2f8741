//! The registry's use cases over the in-memory store: sync, webhook changes, send checks.

use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::testing::InMemoryStore;

/// Serves listing pages: page `i` is asked for with cursor `after` = `"c{i}"` (none for 0).
struct Pages {
    pages: Vec<String>,
    asked: Mutex<Vec<Option<String>>>,
    fail_at: Option<usize>,
    /// Refuse this many asks with a cursor as Meta does a stale one (131059).
    stale_cursors: Mutex<usize>,
}

impl Pages {
    fn new(pages: &[&str]) -> Self {
        Self {
            pages: pages.iter().map(|p| (*p).to_owned()).collect(),
            asked: Mutex::new(Vec::new()),
            fail_at: None,
            stale_cursors: Mutex::new(0),
        }
    }
}

impl TemplateSource for Pages {
    async fn page(&self, waba_id: &str, after: Option<&str>) -> Result<TemplatePage, SourceError> {
        self.asked.lock().unwrap().push(after.map(str::to_owned));
        let i = match after {
            None => 0,
            Some(c) => c.trim_start_matches('c').parse::<usize>().unwrap(),
        };
        if self.fail_at == Some(i) {
            return Err(SourceError::Unavailable("down".into()));
        }
        let mut stale = self.stale_cursors.lock().unwrap();
        if after.is_some() && *stale > 0 {
            *stale -= 1;
            return Err(SourceError::Refused {
                status: 400,
                code: Some(131_059),
                message: "invalid cursor".into(),
            });
        }
        parse_listing(waba_id, self.pages[i].as_bytes())
            .map_err(|e| SourceError::Malformed(e.into()))
    }
}

fn page(templates: &[(&str, &str, &str)], next: Option<usize>) -> String {
    let data: Vec<_> = templates
        .iter()
        .map(|(name, lang, status)| {
            json!({"name": name, "language": lang, "status": status, "category": "UTILITY",
                   "id": format!("id-{name}-{lang}"),
                   "components": [{"type": "BODY", "text": "Hi {{1}}"}]})
        })
        .collect();
    let mut v = json!({"data": data});
    if let Some(n) = next {
        v["paging"] = json!({"cursors": {"after": format!("c{n}")}, "next": format!("https://graph/x?after=c{n}")});
    }
    v.to_string()
}

async fn statuses(store: &InMemoryStore) -> Vec<(String, String, String)> {
    store
        .templates("W")
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.language, t.status.as_str().to_owned()))
        .collect()
}

fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.into(), b.into(), c.into())
}

#[tokio::test]
async fn sync_reads_every_page_and_marks_the_unlisted_deleted() {
    let store = InMemoryStore::default();
    let first = Pages::new(&[
        &page(&[("a", "en", "APPROVED"), ("b", "en", "APPROVED")], Some(1)),
        &page(&[("b", "es", "PENDING")], Some(2)),
        &page(&[("c", "en", "PAUSED")], None),
    ]);
    let report = sync(&first, &store, "W", 1_000).await.unwrap();
    assert_eq!(
        report,
        SyncReport {
            pages: 3,
            listed: 4,
            deleted: 0,
            skipped: 0
        }
    );
    assert_eq!(
        *first.asked.lock().unwrap(),
        [None, Some("c1".into()), Some("c2".into())]
    );
    assert_eq!(store.synced_at("W").await.unwrap(), Some(1_000));

    // `b (en)` is gone from the next listing; `c` was approved meanwhile.
    let second = Pages::new(&[&page(
        &[
            ("a", "en", "APPROVED"),
            ("b", "es", "APPROVED"),
            ("c", "en", "APPROVED"),
        ],
        None,
    )]);
    let report = sync(&second, &store, "W", 2_000).await.unwrap();
    assert_eq!((report.listed, report.deleted), (3, 1));
    assert_eq!(
        statuses(&store).await.len(),
        4,
        "a deleted template stays, marked"
    );
    let all = store.templates("W").await.unwrap();
    let b_en = all
        .iter()
        .find(|t| t.name == "b" && t.language == "en")
        .unwrap();
    assert_eq!(b_en.status.as_str(), DELETED);
    assert_eq!(b_en.updated_at, 2_000);
    // Marked once: the next sync does not count it again.
    let report = sync(&second, &store, "W", 3_000).await.unwrap();
    assert_eq!(report.deleted, 0);
}

#[tokio::test]
async fn a_cursor_meta_no_longer_takes_lists_again_from_the_first_page_a_few_times() {
    let pages = [
        page(&[("a", "en", "APPROVED")], Some(1)),
        page(&[("b", "en", "APPROVED")], None),
    ];
    let listing = || Pages::new(&[&pages[0], &pages[1]]);
    let store = InMemoryStore::default();
    let src = listing();
    *src.stale_cursors.lock().unwrap() = 2;
    let report = sync(&src, &store, "W", 1_000).await.unwrap();
    assert_eq!((report.listed, report.pages), (4, 4), "{report:?}");
    assert_eq!(
        *src.asked.lock().unwrap(),
        [
            None,
            Some("c1".into()),
            None,
            Some("c1".into()),
            None,
            Some("c1".into())
        ]
    );
    assert_eq!(statuses(&store).await.len(), 2);
    // A cursor refused every time ends the sync as refused, not as a sync.
    let store = InMemoryStore::default();
    let src = listing();
    *src.stale_cursors.lock().unwrap() = 10;
    let err = sync(&src, &store, "W", 1_000).await.unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Source(SourceError::Refused {
                code: Some(131_059),
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(store.synced_at("W").await.unwrap(), None);
}

#[tokio::test]
async fn templates_are_listed_by_name_then_language() {
    let store = InMemoryStore::default();
    let p = Pages::new(&[&page(
        &[("z", "en", "APPROVED"), ("a", "es", "REJECTED")],
        None,
    )]);
    sync(&p, &store, "W", 5).await.unwrap();
    assert_eq!(
        statuses(&store).await,
        [s("a", "es", "REJECTED"), s("z", "en", "APPROVED")]
    );
}

#[tokio::test]
async fn a_failed_or_endless_listing_marks_nothing_deleted_and_is_not_a_sync() {
    let store = InMemoryStore::default();
    let old = TemplateDef {
        waba_id: "W".into(),
        name: "old".into(),
        language: "en".into(),
        id: None,
        status: TemplateStatus::Approved,
        category: TemplateCategory::Utility,
        components: json!([]),
        quality: None,
        updated_at: 1,
    };
    store.put_template(&old).await.unwrap();
    let mut failing = Pages::new(&[&page(&[("a", "en", "APPROVED")], Some(1)), &page(&[], None)]);
    failing.fail_at = Some(1);
    assert!(matches!(
        sync(&failing, &store, "W", 10).await,
        Err(SyncError::Source(SourceError::Unavailable(_)))
    ));
    assert_eq!(
        store
            .template("W", "old", "en")
            .await
            .unwrap()
            .unwrap()
            .status,
        TemplateStatus::Approved
    );
    assert_eq!(store.synced_at("W").await.unwrap(), None);

    // A listing whose next cursor points back at itself.
    let looping = Pages::new(&[&page(&[], Some(1)), &page(&[], Some(1))]);
    assert!(matches!(
        sync(&looping, &store, "W", 10).await,
        Err(SyncError::Endless)
    ));
    assert_eq!(store.synced_at("W").await.unwrap(), None);
}

#[tokio::test]
async fn a_webhook_newer_than_the_sync_is_kept() {
    let store = InMemoryStore::default();
    let p = Pages::new(&[&page(&[("a", "en", "APPROVED")], None)]);
    sync(&p, &store, "W", 100).await.unwrap();
    let a = TemplateRef {
        waba_id: "W",
        name: "a",
        language: "en",
        id: None,
    };
    let paused = TemplateChange::Status {
        status: TemplateStatus::Paused,
        category: None,
    };
    // An older webhook (delivered late) does not undo what the listing said.
    apply_change(&store, a, paused.clone(), 50).await.unwrap();
    assert_eq!(
        store
            .template("W", "a", "en")
            .await
            .unwrap()
            .unwrap()
            .status,
        TemplateStatus::Approved
    );
    apply_change(&store, a, paused, 150).await.unwrap();
    let t = store.template("W", "a", "en").await.unwrap().unwrap();
    assert_eq!((t.status, t.updated_at), (TemplateStatus::Paused, 150));
    assert!(t.components.is_array(), "components kept");
    // A sync started before the webhook neither overrides nor deletes it.
    let empty = Pages::new(&[&page(&[], None)]);
    let report = sync(&empty, &store, "W", 120).await.unwrap();
    assert_eq!(report.deleted, 0);
    assert_eq!(
        store
            .template("W", "a", "en")
            .await
            .unwrap()
            .unwrap()
            .status,
        TemplateStatus::Paused
    );
}

#[tokio::test]
async fn webhooks_change_one_field_and_a_status_adds_an_unknown_template() {
    let store = InMemoryStore::default();
    let t = TemplateRef {
        waba_id: "W",
        name: "new_one",
        language: "es",
        id: Some("77"),
    };
    // A category or quality change says nothing of whether it may be sent: left to a sync.
    assert_eq!(
        apply_change(&store, t, TemplateChange::Quality("RED".into()), 5)
            .await
            .unwrap(),
        Updated::Unknown
    );
    assert_eq!(store.template("W", "new_one", "es").await.unwrap(), None);
    // A template approved before Ventana ran, never synced, then paused by Meta: kept
    // paused, so send-api refuses it (132015) and its broadcasts pause.
    let old = TemplateRef {
        name: "old_one",
        ..t
    };
    let paused = TemplateChange::Status {
        status: TemplateStatus::Paused,
        category: None,
    };
    assert_eq!(
        apply_change(&store, old, paused, 10).await.unwrap(),
        Updated::Stored
    );
    let got = store.template("W", "old_one", "es").await.unwrap().unwrap();
    assert_eq!(got.status, TemplateStatus::Paused);
    assert!(!got.status.sendable());

    let approved = TemplateChange::Status {
        status: TemplateStatus::Approved,
        category: Some(TemplateCategory::Marketing),
    };
    assert_eq!(
        apply_change(&store, t, approved, 20).await.unwrap(),
        Updated::Stored
    );
    let got = store.template("W", "new_one", "es").await.unwrap().unwrap();
    assert_eq!(got.components, serde_json::Value::Null);
    assert_eq!(got.category, TemplateCategory::Marketing);
    assert_eq!(got.id.as_deref(), Some("77"));

    apply_change(
        &store,
        t,
        TemplateChange::Category(TemplateCategory::Utility),
        30,
    )
    .await
    .unwrap();
    apply_change(&store, t, TemplateChange::Quality("YELLOW".into()), 40)
        .await
        .unwrap();
    let got = store.template("W", "new_one", "es").await.unwrap().unwrap();
    assert_eq!(got.category, TemplateCategory::Utility);
    assert_eq!(got.quality.as_deref(), Some("YELLOW"));
    assert_eq!(got.status, TemplateStatus::Approved);
    assert_eq!(got.updated_at, 40);
}

#[test]
fn status_events_map_to_registry_statuses() {
    assert_eq!(
        status_of_event("REINSTATED"),
        Some(TemplateStatus::Approved)
    );
    assert_eq!(
        status_of_event("UNARCHIVED"),
        Some(TemplateStatus::Approved)
    );
    assert_eq!(status_of_event("FLAGGED"), None);
    assert_eq!(status_of_event("paused"), Some(TemplateStatus::Paused));
    assert_eq!(
        status_of_event("PENDING_DELETION"),
        Some(TemplateStatus::Other("PENDING_DELETION".into()))
    );
}

#[tokio::test]
async fn check_send_depends_on_what_the_registry_knows() {
    let store = InMemoryStore::default();
    let hello = json!({"name": "hello", "language": {"code": "en"}});
    let fits = json!({"name": "a", "language": {"code": "en"},
                      "components": [{"type": "body", "parameters": [{"type": "text", "text": "x"}]}]});
    // The number's account is unknown: nothing to check against.
    assert_eq!(
        check_send(&store, "P1", &hello).await.unwrap(),
        Verdict::Unchecked
    );
    store.set_waba("P1", "W");
    // Known account, never synced: still unchecked.
    assert_eq!(
        check_send(&store, "P1", &hello).await.unwrap(),
        Verdict::Unchecked
    );
    let p = Pages::new(&[&page(&[("a", "en", "APPROVED")], None)]);
    sync(&p, &store, "W", 100).await.unwrap();
    match check_send(&store, "P1", &hello).await.unwrap() {
        Verdict::Refused(r) => {
            assert_eq!(r.kind.code(), 132_001);
            assert!(
                r.details.starts_with("template hello (en) is not known"),
                "{}",
                r.details
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(check_send(&store, "P1", &fits).await.unwrap(), Verdict::Fits(d) if d.name == "a")
    );
    let short = json!({"name": "a", "language": {"code": "en"}});
    assert!(matches!(
        check_send(&store, "P1", &short).await.unwrap(),
        Verdict::Refused(r) if r.kind == RefusalKind::ParameterCount
    ));
}
