//! The broadcast use cases against the in-memory fakes and a manual clock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::json;

use super::create::{self, CreateRequest};
use super::limit::charge_one;
use super::memory::MemoryBroadcasts;
use super::planner::{Deps, PlannerConfig, StepResult, step};
use super::*;
use crate::customer::{CustomerKey, CustomerRef};
use crate::model::MessagingLimit;
use crate::outbound::{SendRecord, SendState};
use crate::ports::*;
use crate::status::DeliveryStatus;
use crate::templates::{TemplateCategory, TemplateDef, TemplateStatus, TemplateStore};
use crate::testing::{InMemoryStore, ManualClock};

const PN: &str = "1001";
const WABA: &str = "W1";
const T0: i64 = 1_800_000_000;

fn phone(i: usize) -> String {
    format!("1555{i:07}")
}

struct World {
    mem: MemoryBroadcasts,
    ids: AtomicUsize,
    clock: ManualClock,
    cfg: PlannerConfig,
}

impl World {
    async fn new(tier: Option<&str>) -> Self {
        let store = Arc::new(InMemoryStore::default());
        store.set_waba(PN, WABA);
        if let Some(t) = tier {
            store
                .record_account(&AccountRecord {
                    waba_id: WABA.into(),
                    key: "messaging_limit".into(),
                    at: 1,
                    attributes: vec![("tier".into(), t.into())],
                })
                .await
                .unwrap();
        }
        let w = Self {
            mem: MemoryBroadcasts::new(store),
            ids: AtomicUsize::new(0),
            clock: ManualClock::at(T0 * 1000),
            cfg: PlannerConfig {
                page: 100,
                settle_after_secs: 600,
                ..PlannerConfig::default()
            },
        };
        w.template(TemplateStatus::Approved, 1).await;
        w
    }

    async fn template(&self, status: TemplateStatus, at: i64) {
        self.template_shaped(status, serde_json::Value::Null, at)
            .await;
    }

    /// The template as a Graph listing gives it (`components`), or as a webhook tells of it
    /// (`Null`: its status only).
    async fn template_shaped(
        &self,
        status: TemplateStatus,
        components: serde_json::Value,
        at: i64,
    ) {
        self.template_of(TemplateCategory::Marketing, status, components, at)
            .await;
    }

    /// The template `promo` (es) of `category`, as [`World::template_shaped`] puts it.
    async fn template_of(
        &self,
        category: TemplateCategory,
        status: TemplateStatus,
        components: serde_json::Value,
        at: i64,
    ) {
        self.mem
            .store
            .put_template(&TemplateDef {
                waba_id: WABA.into(),
                name: "promo".into(),
                language: "es".into(),
                id: None,
                status,
                category,
                components,
                quality: None,
                updated_at: at,
            })
            .await
            .unwrap();
    }

    fn now(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    /// Records the consent of the customer of `phone(i)` (by the API) in `scope` at `at`.
    async fn consent(&self, i: usize, scope: &str, consent: Consent, at: i64) {
        self.mem
            .store
            .record_consent(&ConsentRecord {
                phone_number_id: PN.into(),
                customer: CustomerKey::Phone(phone(i)),
                scope: scope.into(),
                consent,
                source: ConsentSource::Api,
                at,
                detail: None,
            })
            .await
            .unwrap();
    }

    async fn create(
        &self,
        recipients: Vec<serde_json::Value>,
        release: serde_json::Value,
    ) -> BroadcastId {
        let body = json!({
            "phone_number_id": PN,
            "template": {"name": "promo", "language": "es"},
            "recipients": recipients,
            "release": release,
        });
        let req = create::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        self.create_req(req).await
    }

    async fn create_req(&self, req: CreateRequest) -> BroadcastId {
        self.try_create(req).await.unwrap()
    }

    async fn try_create(&self, req: CreateRequest) -> Result<BroadcastId, create::CreateError> {
        create::create(
            &self.mem,
            &*self.mem.store,
            &self.mem,
            req,
            self.clock.now_ms(),
            [u8::try_from(self.ids.fetch_add(1, Ordering::SeqCst)).unwrap(); 10],
            86_400 * 30,
        )
        .await
    }

    fn deps(
        &self,
    ) -> Deps<
        '_,
        MemoryBroadcasts,
        MemoryBroadcasts,
        InMemoryStore,
        MemoryBroadcasts,
        MemoryBroadcasts,
        ManualClock,
    > {
        Deps {
            store: &self.mem,
            limits: &self.mem,
            templates: &*self.mem.store,
            source: &self.mem,
            outbound: &self.mem,
            clock: &self.clock,
        }
    }

    async fn get(&self, id: &BroadcastId) -> Broadcast {
        self.mem.get_broadcast(id).await.unwrap().unwrap()
    }

    /// What a deliver-worker and Meta would do: every pending send is delivered now.
    async fn deliver_all(&self) {
        let now = self.now();
        for mut s in self.mem.store.sends() {
            if matches!(s.state, SendState::Pending { .. }) {
                let wamid = format!("wamid.{}", s.id);
                s.apply_status(&wamid, DeliveryStatus::Delivered, now, None, now * 1000);
                assert!(self.mem.store.save_send(&mut s).await.unwrap());
            }
        }
    }

    /// Runs the queued step messages (one chain at a time), moving the clock to each
    /// message's delay, until none is left or `until` is reached; delivers queued sends
    /// after each step when `deliver`. Returns how many steps ran.
    async fn drive(&self, until: i64, deliver: bool) -> usize {
        let mut pending: Vec<(BroadcastId, u64, i64)> = self
            .mem
            .take_steps()
            .into_iter()
            .map(|(id, chain, delay)| (id, chain, self.now() + delay))
            .collect();
        let mut n = 0;
        while let Some(pos) = (0..pending.len()).min_by_key(|i| pending[*i].2) {
            let (id, chain, at) = pending.remove(pos);
            if at >= until {
                pending.push((id, chain, at));
                break;
            }
            if at > self.now() {
                self.clock.advance((at - self.now()) * 1000);
            }
            n += 1;
            assert!(n < 100_000, "runaway");
            if let StepResult::Again { after_secs, chain } =
                step(&self.deps(), &self.cfg, &id, chain).await.unwrap()
            {
                pending.push((id, chain, self.now() + after_secs));
            }
            if deliver {
                self.deliver_all().await;
            }
            for (id, chain, delay) in self.mem.take_steps() {
                pending.push((id, chain, self.now() + delay));
            }
        }
        // Leave what is not run yet on the queue.
        for (id, chain, at) in pending {
            self.mem
                .schedule(&id, chain, (at - self.now()).max(0))
                .await
                .unwrap();
        }
        n
    }
}

fn recipients(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            json!({"to": phone(i), "components": [{"type": "body", "parameters": [{"type": "text", "text": format!("n{i}")}]}]})
        })
        .collect()
}

fn queued_phones(mem: &MemoryBroadcasts) -> Vec<String> {
    mem.store
        .sends()
        .into_iter()
        .filter_map(|s| s.who.and_then(|w| w.wa_id))
        .collect()
}

#[tokio::test]
async fn ten_thousand_on_the_2k_tier_send_2000_in_the_first_24_hours_and_the_rest_after() {
    let mut w = World::new(Some("TIER_2K")).await;
    w.cfg.recheck_secs = 6 * 3600;
    let id = w
        .create(recipients(10_000), json!({"percent": 10, "every_secs": 60}))
        .await;
    w.drive(T0 + 86_400, false).await;
    assert_eq!(
        w.mem.jobs().len(),
        2_000,
        "exactly the tier in the first 24 h"
    );
    let b = w.get(&id).await;
    assert_eq!(b.state, BroadcastState::Running);
    assert_eq!(b.view()["counts"]["waiting_for_limit"], 8_000);
    assert!(b.limit_wait_until.is_some_and(|t| t >= T0 + 86_400));
    // Every later window admits at most 2,000 more, and in the end everyone goes, once.
    w.drive(T0 + 2 * 86_400, false).await;
    let second = w.mem.jobs().len();
    assert!(second > 2_000 && second <= 4_000, "{second}");
    w.drive(T0 + 6 * 86_400, false).await;
    assert_eq!(w.mem.jobs().len(), 10_000);
    w.deliver_all().await;
    w.drive(i64::MAX, true).await;
    let jobs = w.mem.jobs();
    assert_eq!(jobs.len(), 10_000);
    let phones: HashSet<String> = queued_phones(&w.mem).into_iter().collect();
    assert_eq!(phones.len(), 10_000);
    assert_eq!(w.mem.store.sends().len(), 10_000);
    let b = w.get(&id).await;
    assert_eq!(b.state, BroadcastState::Completed);
    assert_eq!(b.counts.delivered, 10_000);
    assert_eq!(b.counts.queued, 0);
    assert!(
        w.mem
            .ledger(&id)
            .iter()
            .all(|e| e.outcome == Outcome::Delivered)
    );
}

#[tokio::test]
async fn a_page_claimed_by_another_step_is_left_to_it_until_the_claim_is_stale() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    let id = w
        .create(recipients(150), json!({"all_at_once": true}))
        .await;
    let chain = w.get(&id).await.chain;
    // A duplicate of the step message is running the first page: its claim is fresh.
    let mut b = w.get(&id).await;
    b.page_claim = Some(PageClaim {
        cursor: 0,
        end: 100,
        at_ms: w.clock.now_ms() - 20_000,
    });
    assert!(w.mem.save_broadcast(&mut b).await.unwrap());
    match step(&w.deps(), &w.cfg, &id, chain).await.unwrap() {
        StepResult::Again { after_secs, .. } => assert_eq!(after_secs, 100),
        other => panic!("{other:?}"),
    }
    assert!(
        w.mem.jobs().is_empty(),
        "nothing planned under another's claim"
    );
    assert_eq!(w.get(&id).await.cursor, 0);
    // Two minutes after it was claimed, the other step is gone (the function's timeout is
    // 60 s): the page is planned again, keeping any send the other step may have made.
    let created_at_ms = w.get(&id).await.created_at_ms;
    let early = SendRecord {
        body: json!({"made": "by the other step"}),
        broadcast_id: Some(id.as_str().to_owned()),
        broadcast_index: Some(7),
        ..SendRecord::pending(
            send_id_for(&id, created_at_ms, &format!("p:{}", phone(7))),
            PN,
            crate::outbound::SendKind::Template,
            created_at_ms,
            T0 + 86_400,
        )
    };
    w.mem.store.create_send(&early, 0).await.unwrap();
    w.clock.advance(100_000);
    w.drive(w.now() + 60, false).await;
    let b = w.get(&id).await;
    assert_eq!(b.cursor, 150);
    assert_eq!(w.mem.jobs().len(), 150);
    assert_eq!(
        w.mem.store.send(&early.id).unwrap().body,
        early.body,
        "the other step's send is kept as it was"
    );
}

/// A clock that moves one second each time it is read: a slow store, as seen by the planner.
struct SlowClock(ManualClock);

impl Clock for SlowClock {
    fn now_ms(&self) -> i64 {
        let now = self.0.now_ms();
        self.0.advance(1000);
        now
    }

    async fn sleep_until(&self, until_ms: i64) {
        self.0.sleep_until(until_ms).await;
    }
}

#[tokio::test]
async fn a_step_hands_over_when_its_time_budget_is_spent_and_nobody_is_skipped_or_doubled() {
    let mut w = World::new(Some("TIER_UNLIMITED")).await;
    w.cfg.step_budget_ms = 5_000;
    w.cfg.pages_per_step = 50;
    w.cfg.import_page = 100;
    let id = w
        .create(recipients(1_000), json!({"all_at_once": true}))
        .await;
    let clock = SlowClock(ManualClock::at(T0 * 1000));
    let d = Deps {
        store: &w.mem,
        limits: &w.mem,
        templates: &*w.mem.store,
        source: &w.mem,
        outbound: &w.mem,
        clock: &clock,
    };
    let mut steps = 0;
    let mut chain = w.get(&id).await.chain;
    while w.get(&id).await.cursor < 1_000 {
        steps += 1;
        assert!(steps < 100, "runaway");
        let before = w.get(&id).await.cursor;
        match step(&d, &w.cfg, &id, chain).await.unwrap() {
            StepResult::Again {
                after_secs,
                chain: c,
            } => {
                chain = c;
                // Still work to do: at once.
                if w.get(&id).await.cursor < 1_000 {
                    assert_eq!(after_secs, 0);
                }
            }
            StepResult::Idle => panic!("idle before everyone was queued"),
        }
        // A few pages per step, not the 50 allowed: the budget ended each step.
        assert!(w.get(&id).await.cursor - before <= 300, "step {steps}");
    }
    assert!(steps >= 4, "{steps} steps");
    assert_eq!(w.mem.jobs().len(), 1_000);
    let phones: HashSet<String> = queued_phones(&w.mem).into_iter().collect();
    assert_eq!(phones.len(), 1_000);
}

#[tokio::test]
async fn an_opted_out_recipient_is_never_queued_and_require_opt_in_skips_the_unknown() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    for (i, scope, consent) in [
        (1, "all", Consent::OptedOut),
        (2, "marketing", Consent::OptedOut),
        (3, "marketing", Consent::OptedIn),
    ] {
        w.consent(i, scope, consent, T0 - 10).await;
    }
    let id = w.create(recipients(5), json!({"all_at_once": true})).await;
    w.drive(i64::MAX, true).await;
    let phones = queued_phones(&w.mem);
    assert!(!phones.contains(&phone(1)) && !phones.contains(&phone(2)));
    assert_eq!(phones.len(), 3);
    let b = w.get(&id).await;
    assert_eq!(b.counts.skipped_opted_out, 2);
    assert_eq!(b.state, BroadcastState::Completed);

    // With require_opt_in only the customer who opted in gets it.
    let body = json!({
        "phone_number_id": PN, "template": {"name": "promo", "language": "es"},
        "recipients": recipients(5), "require_opt_in": true, "release": {"all_at_once": true},
    });
    let id = w
        .create_req(create::parse(&serde_json::to_vec(&body).unwrap()).unwrap())
        .await;
    w.drive(i64::MAX, true).await;
    let b = w.get(&id).await;
    assert_eq!(b.counts.delivered, 1);
    assert_eq!(b.counts.skipped_not_opted_in, 2);
    assert_eq!(b.counts.skipped_opted_out, 2);
    let e = w.mem.ledger(&id);
    assert_eq!(e[3].outcome, Outcome::Delivered);
}

#[tokio::test]
async fn a_customer_skipped_for_consent_is_decided_again_at_their_next_row() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    w.consent(1, "all", Consent::OptedOut, T0 - 10).await;
    // Rows 0..4 released first (customer 1 twice: opted out both times, not a duplicate),
    // rows 4..8 a minute later, after customer 1 opted in again: their row 4 is sent, and
    // row 6, the same customer again, is the duplicate.
    let list: Vec<_> = [1, 2, 1, 3, 1, 4, 1, 5]
        .iter()
        .map(|i| recipients(6)[*i].clone())
        .collect();
    let id = w
        .create(list, json!({"percent": 50, "every_secs": 60}))
        .await;
    w.drive(w.now() + 30, true).await;
    let b = w.get(&id).await;
    assert_eq!(b.cursor, 4);
    assert_eq!(b.counts.skipped_opted_out, 2);
    assert_eq!(b.counts.skipped_duplicate, 0);
    w.consent(1, "all", Consent::OptedIn, w.now()).await;
    w.drive(i64::MAX, true).await;
    let outcomes: Vec<_> = w.mem.ledger(&id).iter().map(|e| e.outcome).collect();
    use Outcome::*;
    assert_eq!(
        outcomes,
        vec![
            SkippedOptedOut,
            Delivered,
            SkippedOptedOut,
            Delivered,
            Delivered,
            Delivered,
            SkippedDuplicate,
            Delivered
        ]
    );
    let to_1 = queued_phones(&w.mem)
        .iter()
        .filter(|p| **p == phone(1))
        .count();
    assert_eq!(to_1, 1);
}

#[tokio::test]
async fn a_utility_broadcast_goes_to_a_marketing_opt_out_but_not_to_a_stop() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    w.template_of(
        TemplateCategory::Utility,
        TemplateStatus::Approved,
        serde_json::Value::Null,
        2,
    )
    .await;
    for (i, scope) in [(1, "marketing"), (2, "all")] {
        w.consent(i, scope, Consent::OptedOut, T0 - 10).await;
    }
    let id = w.create(recipients(3), json!({"all_at_once": true})).await;
    w.drive(i64::MAX, true).await;
    let phones = queued_phones(&w.mem);
    assert!(
        phones.contains(&phone(1)),
        "a marketing opt-out does not stop a utility template"
    );
    assert!(!phones.contains(&phone(2)), "STOP does");
    assert_eq!(w.get(&id).await.counts.skipped_opted_out, 1);
}

#[tokio::test]
async fn duplicates_and_invalid_rows_in_a_csv_list_are_skipped_once() {
    let w = World::new(None).await;
    let list = RecipientList {
        bucket: "b".into(),
        key: "k.csv".into(),
    };
    let row = |to: &str| RecipientRow {
        to: Some(to.into()),
        ..Default::default()
    };
    let mut rows = vec![
        row("15550000001"),
        row("+1 555 000 0001"),
        row("15550000002"),
        row("not a phone"),
        RecipientRow {
            problem: Some("line 6: unclosed quote".into()),
            ..Default::default()
        },
    ];
    // The duplicate again, on a later import page and a later planning page.
    for i in 0..7 {
        rows.push(row(&format!("1555100000{i}")));
    }
    rows.push(row("15550000001"));
    w.mem.put_list(&list, rows);
    let body = json!({
        "phone_number_id": PN, "template": {"name": "promo", "language": "es"},
        "recipients_csv": {"bucket": "b", "key": "k.csv"}, "release": {"all_at_once": true},
    });
    let mut w = w;
    w.cfg.page = 4;
    w.cfg.import_page = 3;
    let id = w
        .create_req(create::parse(&serde_json::to_vec(&body).unwrap()).unwrap())
        .await;
    w.drive(i64::MAX, true).await;
    let b = w.get(&id).await;
    assert_eq!(b.total, 13);
    assert_eq!(b.counts.skipped_duplicate, 2);
    assert_eq!(b.counts.skipped_invalid, 2);
    assert_eq!(b.counts.delivered, 9);
    let ledger = w.mem.ledger(&id);
    assert_eq!(ledger[0].outcome, Outcome::Delivered);
    assert_eq!(ledger[1].outcome, Outcome::SkippedDuplicate);
    assert_eq!(ledger[12].outcome, Outcome::SkippedDuplicate);
    assert_eq!(
        ledger[4].error.as_ref().unwrap().message,
        "line 6: unclosed quote"
    );
    assert_eq!(
        queued_phones(&w.mem)
            .iter()
            .filter(|p| *p == "15550000001")
            .count(),
        1
    );
}

/// A row whose body carries these texts as parameters.
fn row_with(i: usize, texts: &[&str]) -> serde_json::Value {
    let params: Vec<_> = texts
        .iter()
        .map(|t| json!({"type": "text", "text": t}))
        .collect();
    json!({"to": phone(i), "components": [{"type": "body", "parameters": params}]})
}

fn two_placeholders() -> serde_json::Value {
    json!([{"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped"}])
}

#[tokio::test]
async fn inline_rows_that_do_not_fit_the_registered_template_refuse_the_broadcast_naming_them() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    w.template_shaped(TemplateStatus::Approved, two_placeholders(), 2)
        .await;
    let mut rows: Vec<_> = (0..8).map(|i| row_with(i, &["Ana", "A-1"])).collect();
    rows[3] = row_with(3, &["Ana"]);
    rows[5] = row_with(5, &[]);
    rows[6] = json!({"to": "not a phone"});
    let body = |rows: &[serde_json::Value]| {
        let b = json!({"phone_number_id": PN, "template": {"name": "promo", "language": "es"},
            "recipients": rows, "release": {"all_at_once": true}});
        create::parse(&serde_json::to_vec(&b).unwrap()).unwrap()
    };
    let Err(create::CreateError::Template(r)) = w.try_create(body(&rows)).await else {
        panic!("misfitting rows must refuse the broadcast");
    };
    assert_eq!(r.kind.code(), 132_000);
    assert!(
        r.details
            .starts_with("recipients[3]: template promo (es) body expects 2 parameters")
            && r.details.contains("; recipients[5]: ")
            && !r.details.contains("recipients[6]"),
        "{}",
        r.details
    );
    assert!(w.mem.jobs().is_empty(), "nothing queued");
    // Fitting rows (and a row invalid in itself, skipped later) make a broadcast.
    rows[3] = row_with(3, &["Ana", "A-3"]);
    rows[5] = row_with(5, &["Ana", "A-5"]);
    let id = w.try_create(body(&rows)).await.unwrap();
    w.drive(i64::MAX, true).await;
    let b = w.get(&id).await;
    assert_eq!((b.counts.delivered, b.counts.skipped_invalid), (7, 1));
}

#[tokio::test]
async fn a_template_the_registry_refuses_is_answered_with_metas_code_for_it() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    let req = |name: &str| {
        let b = json!({"phone_number_id": PN, "template": {"name": name, "language": "es"},
            "recipients": recipients(2), "release": {"all_at_once": true}});
        create::parse(&serde_json::to_vec(&b).unwrap()).unwrap()
    };
    for (at, (status, code)) in [
        (TemplateStatus::Paused, 132_015),
        (TemplateStatus::Disabled, 132_016),
        (TemplateStatus::Rejected, 132_001),
    ]
    .into_iter()
    .enumerate()
    {
        w.template(status.clone(), 10 + at as i64).await;
        let Err(create::CreateError::Template(r)) = w.try_create(req("promo")).await else {
            panic!("{status:?} must be refused");
        };
        assert_eq!(r.kind.code(), code, "{status:?}: {}", r.details);
    }
    // A template the account does not have: unchecked until the account is synced once.
    assert!(w.try_create(req("no_such")).await.is_ok());
    w.mem.store.mark_synced(WABA, T0).await.unwrap();
    let Err(create::CreateError::Template(r)) = w.try_create(req("no_such")).await else {
        panic!("a synced account without the template must refuse it");
    };
    assert_eq!(r.kind.code(), 132_001);
}

#[tokio::test]
async fn rows_of_a_list_that_do_not_fit_the_template_are_skipped_as_invalid_with_metas_code() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    w.template_shaped(TemplateStatus::Approved, two_placeholders(), 2)
        .await;
    let list = RecipientList {
        bucket: "b".into(),
        key: "k.csv".into(),
    };
    let row = |i: usize, texts: &[&str]| {
        let v = row_with(i, texts);
        RecipientRow {
            to: Some(phone(i)),
            components: v["components"].clone(),
            ..Default::default()
        }
    };
    w.mem.put_list(
        &list,
        vec![
            row(0, &["Ana", "A-0"]),
            row(1, &["Ana"]),
            row(2, &["Ana", "A-2"]),
        ],
    );
    let body = json!({
        "phone_number_id": PN, "template": {"name": "promo", "language": "es"},
        "recipients_csv": {"bucket": "b", "key": "k.csv"}, "release": {"all_at_once": true},
    });
    let id = w
        .create_req(create::parse(&serde_json::to_vec(&body).unwrap()).unwrap())
        .await;
    w.drive(i64::MAX, true).await;
    let b = w.get(&id).await;
    assert_eq!((b.counts.delivered, b.counts.skipped_invalid), (2, 1));
    let ledger = w.mem.ledger(&id);
    assert_eq!(ledger[1].outcome, Outcome::SkippedInvalid);
    let err = ledger[1].error.as_ref().unwrap();
    assert_eq!(err.code, 132_000);
    assert!(
        err.message.contains("expects 2 parameters"),
        "{}",
        err.message
    );
    let mut sent = queued_phones(&w.mem);
    sent.sort();
    assert_eq!(sent, vec![phone(0), phone(2)]);
}

#[tokio::test]
async fn a_job_made_before_its_numbers_account_was_known_takes_the_account_up_when_learnt() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    const PN2: &str = "2002";
    let body = json!({
        "phone_number_id": PN2, "template": {"name": "promo", "language": "es"},
        "recipients": recipients(20), "release": {"percent": 10, "every_secs": 60},
    });
    let id = w
        .create_req(create::parse(&serde_json::to_vec(&body).unwrap()).unwrap())
        .await;
    assert_eq!(w.get(&id).await.waba_id, "pn:2002");
    w.drive(T0 + 30, true).await;
    assert_eq!(w.mem.jobs().len(), 2);
    // Charged under the number's own name meanwhile (the default tier applies to it).
    let charged = w
        .mem
        .charged_since("pn:2002", &[format!("p:{}", phone(0))], 0)
        .await
        .unwrap();
    assert_eq!(charged.len(), 1);
    // A webhook names the account, whose template is paused: the job follows the account.
    w.mem.store.set_waba(PN2, WABA);
    w.template(TemplateStatus::Paused, 2).await;
    w.drive(T0 + 600, true).await;
    let b = w.get(&id).await;
    assert_eq!(b.waba_id, WABA);
    assert_eq!(
        b.state,
        BroadcastState::Paused {
            reason: PauseReason::TemplatePaused
        }
    );
    assert_eq!(w.mem.jobs().len(), 2, "nothing more queued");
}

#[tokio::test]
async fn a_customer_sent_to_again_stays_counted_for_24_hours_from_the_later_send() {
    let store = InMemoryStore::default();
    let charge = |who: String, at: i64| {
        let store = &store;
        async move {
            charge_one(store, WABA, &who, false, MessagingLimit::Tier50, at)
                .await
                .unwrap()
        }
    };
    let old = |i: usize| format!("p:old{i}");
    for i in 0..50 {
        assert!(charge(old(i), T0).await.is_ok());
    }
    // 23 hours later the same 50 again: free, they are among the window's 50 already.
    for i in 0..50 {
        assert!(charge(old(i), T0 + 23 * 3600).await.is_ok());
    }
    // Two hours after that the first sends' hour has left the window, but the later sends
    // have not: the window still holds 50 unique customers, and a new one must wait.
    let full = charge("p:new".into(), T0 + 25 * 3600 + 60).await;
    assert!(full.is_err(), "the 50 sent to at T0 + 23 h still count");
    assert!(charge("p:new".into(), T0 + 48 * 3600 + 60).await.is_ok());
}

#[tokio::test]
async fn a_broadcast_to_customers_charged_the_day_before_keeps_them_counted_from_its_sends() {
    let w = World::new(Some("TIER_50")).await;
    let all = json!({"all_at_once": true});
    let a = w.create(recipients(50), all.clone()).await;
    w.drive(i64::MAX, true).await;
    assert_eq!(w.get(&a).await.counts.delivered, 50);
    w.clock.advance((T0 + 23 * 3600 - w.now()) * 1000);
    let b = w.create(recipients(50), all.clone()).await;
    w.drive(i64::MAX, true).await;
    assert_eq!(
        w.get(&b).await.counts.delivered,
        50,
        "free: charged the day before"
    );
    // Two hours later T0's hour has left the window, B's sends have not.
    w.clock.advance((T0 + 25 * 3600 + 60 - w.now()) * 1000);
    let c = w.create(vec![json!({"to": phone(100)})], all).await;
    w.drive(T0 + 26 * 3600, true).await;
    let v = w.get(&c).await.view();
    assert_eq!(v["counts"]["waiting_for_limit"], 1, "{v}");
    w.drive(i64::MAX, true).await;
    let done = w.get(&c).await;
    assert_eq!(done.counts.delivered, 1);
    assert!(
        w.now() >= T0 + 47 * 3600,
        "sent once B's hour left the window"
    );
}

#[tokio::test]
async fn a_customer_who_opts_out_after_being_queued_ends_skipped_as_opted_out() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    let id = w.create(recipients(3), json!({"all_at_once": true})).await;
    w.drive(T0 + 1, false).await;
    assert_eq!(w.mem.store.sends().len(), 3);
    // One refused at dequeue (or by Meta) for an opt-out, one failed otherwise.
    for (mut s, code) in w.mem.store.sends().into_iter().zip([131_050, 131_026, 0]) {
        if code != 0 {
            s.state = SendState::Failed;
            s.error = Some(crate::outbound::SendFailure::new(code, "refused"));
            assert!(w.mem.store.save_send(&mut s).await.unwrap());
        }
    }
    w.drive(i64::MAX, true).await;
    let b = w.get(&id).await;
    assert_eq!(
        (
            b.counts.skipped_opted_out,
            b.counts.failed,
            b.counts.delivered
        ),
        (1, 1, 1),
        "{}",
        b.view()
    );
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_is_the_same_broadcast_and_its_list_goes_once() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    let body = |n: usize| {
        let b = json!({"phone_number_id": PN, "template": {"name": "promo", "language": "es"},
            "recipients": recipients(n), "release": {"all_at_once": true}});
        serde_json::to_vec(&b).unwrap()
    };
    let keyed = |bytes: &[u8], key: &str| {
        let mut req = create::parse(bytes).unwrap();
        req.idempotency = Some(create::Idempotent::of("api-key-hash", PN, key, bytes));
        req
    };
    let first = w.try_create(keyed(&body(3), "k1")).await.unwrap();
    // The client lost the answer and retries: the same broadcast, its step queued again.
    let again = w.try_create(keyed(&body(3), "k1")).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(w.mem.take_steps().len(), 2);
    w.mem.schedule(&first, 1, 0).await.unwrap();
    w.drive(i64::MAX, true).await;
    assert_eq!(w.get(&first).await.counts.delivered, 3);
    assert_eq!(queued_phones(&w.mem).len(), 3, "the list went once");
    // The same key with another body is refused; another key is another broadcast.
    assert!(matches!(
        w.try_create(keyed(&body(4), "k1")).await,
        Err(create::CreateError::IdempotencyReused)
    ));
    assert_ne!(w.try_create(keyed(&body(3), "k2")).await.unwrap(), first);
    // A request that claimed its key and stopped before storing the job: the retry makes
    // it, under the claimed id.
    let claimed = BroadcastId::new(T0 * 1000, [42; 10]);
    let k3 = create::Idempotent::of("api-key-hash", PN, "k3", &body(2));
    assert_eq!(
        w.mem
            .claim_creation(&k3.key_hash, &claimed, &k3.body_hash, T0 + 86_400, T0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(w.try_create(keyed(&body(2), "k3")).await.unwrap(), claimed);
    assert_eq!(w.get(&claimed).await.total, 2);
}

#[tokio::test]
async fn a_broadcast_whose_first_step_is_refused_is_paused_not_left_running_and_starts_on_resume() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    let body = serde_json::to_vec(&json!({"phone_number_id": PN,
        "template": {"name": "promo", "language": "es"},
        "recipients": recipients(3), "release": {"all_at_once": true}}))
    .unwrap();
    let not_started = BroadcastState::Paused {
        reason: PauseReason::NotStarted,
    };
    // Without a key: the error names the job, which waits paused for a resume.
    w.mem.set_steps_failing(true);
    let id = match w.try_create(create::parse(&body).unwrap()).await {
        Err(create::CreateError::NotStarted { id, .. }) => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(w.get(&id).await.state, not_started);
    w.mem.set_steps_failing(false);
    create::resume(&w.mem, &w.mem, &id).await.unwrap();
    w.drive(i64::MAX, true).await;
    assert_eq!(w.get(&id).await.counts.delivered, 3);

    // With a key: the client's retry starts the one it made.
    let mut keyed = create::parse(&body).unwrap();
    keyed.idempotency = Some(create::Idempotent::of("api-key-hash", PN, "k", &body));
    w.mem.set_steps_failing(true);
    let id = match w.try_create(keyed.clone()).await {
        Err(create::CreateError::NotStarted { id, .. }) => id,
        other => panic!("{other:?}"),
    };
    w.mem.set_steps_failing(false);
    assert_eq!(w.try_create(keyed).await.unwrap(), id);
    assert_eq!(w.get(&id).await.state, BroadcastState::Running);
    w.drive(i64::MAX, true).await;
    assert_eq!(w.get(&id).await.counts.delivered, 3);
    assert_eq!(queued_phones(&w.mem).len(), 6);
}

#[tokio::test]
async fn a_read_after_settling_shows_in_the_report_but_not_in_the_settled_counts() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    let id = w.create(recipients(3), json!({"all_at_once": true})).await;
    // Delivered, and settled as delivered once settle_after_secs passed.
    w.drive(i64::MAX, true).await;
    let b = w.get(&id).await;
    assert_eq!(
        (b.state, b.counts.delivered),
        (BroadcastState::Completed, 3)
    );
    // Then the first customer reads it.
    let mut ledger = w.mem.ledger(&id);
    let first = ledger[0].send_id.clone().unwrap();
    let mut s = w.mem.store.send(&first).unwrap();
    let wamid = s.wamid.clone().unwrap();
    s.apply_status(&wamid, DeliveryStatus::Read, w.now(), None, w.now() * 1000);
    assert!(w.mem.store.save_send(&mut s).await.unwrap());
    with_latest_receipts(&w.mem, &mut ledger).await.unwrap();
    let outcomes: Vec<_> = ledger.iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Read, Outcome::Delivered, Outcome::Delivered]
    );
    assert_eq!(
        w.get(&id).await.counts.delivered,
        3,
        "the counts stay as settled"
    );
    // A failed or skipped entry is left as it is.
    let mut skipped = vec![LedgerEntry {
        outcome: Outcome::SkippedDuplicate,
        send_id: Some(first),
        ..ledger[0].clone()
    }];
    with_latest_receipts(&w.mem, &mut skipped).await.unwrap();
    assert_eq!(skipped[0].outcome, Outcome::SkippedDuplicate);
}

#[tokio::test]
async fn a_paused_template_pauses_the_job_and_resume_goes_on() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    let id = w
        .create(recipients(50), json!({"percent": 10, "every_secs": 60}))
        .await;
    w.drive(T0 + 90, true).await;
    let before = w.mem.jobs().len();
    assert_eq!(before, 10, "two ticks of 10 %");
    w.template(TemplateStatus::Paused, 2).await;
    w.drive(T0 + 3600, true).await;
    let b = w.get(&id).await;
    assert_eq!(
        b.state,
        BroadcastState::Paused {
            reason: PauseReason::TemplatePaused
        }
    );
    assert_eq!(b.view()["paused_reason"], "template_paused");
    assert_eq!(w.mem.jobs().len(), before, "nothing queued while paused");
    // Resuming while the template is still paused pauses it again at once.
    create::resume(&w.mem, &w.mem, &id).await.unwrap();
    w.drive(T0 + 3700, true).await;
    assert_eq!(w.mem.jobs().len(), before);
    assert!(matches!(
        w.get(&id).await.state,
        BroadcastState::Paused { .. }
    ));
    // Approved again: resume goes on where it stopped.
    w.template(TemplateStatus::Approved, 3).await;
    create::resume(&w.mem, &w.mem, &id).await.unwrap();
    w.drive(i64::MAX, true).await;
    let b = w.get(&id).await;
    assert_eq!(b.state, BroadcastState::Completed);
    assert_eq!(w.mem.jobs().len(), 50);
    assert_eq!(b.counts.delivered, 50);
}

#[tokio::test]
async fn a_job_queues_only_a_little_ahead_of_its_numbers_rate_so_a_pause_stops_it_soon() {
    let mut w = World::new(Some("TIER_UNLIMITED")).await;
    w.cfg.default_mps = 80;
    w.cfg.queue_ahead_secs = 30;
    let id = w
        .create(recipients(10_000), json!({"all_at_once": true}))
        .await;
    // Queued at most 30 s of sending ahead (and a page): not all 10,000 at once.
    let bound = |elapsed: i64| (80 * (30 + elapsed) + 100) as usize;
    w.drive(T0 + 1, true).await;
    let first = w.mem.jobs().len();
    assert!((2_400..=bound(1)).contains(&first), "{first}");
    w.drive(T0 + 60, true).await;
    let at_60 = w.mem.jobs().len();
    assert!((80 * 60..=bound(60)).contains(&at_60), "{at_60}");
    // Paused: nothing more is queued, so at most ~30 s of sends were left to go.
    create::pause(&w.mem, &id).await.unwrap();
    w.drive(T0 + 3600, true).await;
    assert_eq!(w.mem.jobs().len(), at_60);
    // Resumed: the rest goes, at the number's pace.
    create::resume(&w.mem, &w.mem, &id).await.unwrap();
    let resumed_at = w.now();
    w.drive(i64::MAX, true).await;
    assert_eq!(w.mem.jobs().len(), 10_000);
    let took = w
        .mem
        .store
        .sends()
        .iter()
        .map(|s| s.created_at_ms / 1000)
        .max()
        .unwrap()
        - resumed_at;
    let left = (10_000 - at_60) as i64;
    assert!(
        took >= left / 80 - 30 - 2,
        "{took} s for {left} sends at 80/s"
    );
}

#[tokio::test]
async fn two_jobs_on_one_number_keep_its_queue_short_together() {
    let mut w = World::new(Some("TIER_UNLIMITED")).await;
    w.cfg.default_mps = 20;
    w.cfg.queue_ahead_secs = 10;
    // Two lists of different customers, both released at once, for the same number.
    let a = w
        .create(recipients(2_000), json!({"all_at_once": true}))
        .await;
    let others: Vec<_> = (0..2_000)
        .map(|i| json!({"to": phone(50_000 + i)}))
        .collect();
    let b = w.create(others, json!({"all_at_once": true})).await;
    // Together they queue about 10 s of the number's sending (and a page each): 200 to 420,
    // where each on its own pace would queue about 300 (600 in all).
    let bound = |elapsed: usize| 20 * (10 + elapsed) + 2 * 100;
    w.drive(T0 + 1, true).await;
    let queued = w.mem.jobs().len();
    assert!((200..=bound(1)).contains(&queued), "{queued}");
    // Both go on, sharing the rate, and both finish.
    w.drive(T0 + 60, true).await;
    let at_60 = w.mem.jobs().len();
    assert!((20 * 60..=bound(60)).contains(&at_60), "{at_60}");
    w.drive(i64::MAX, true).await;
    assert_eq!(w.mem.jobs().len(), 4_000);
    for id in [&a, &b] {
        assert_eq!(w.get(id).await.state, BroadcastState::Completed);
    }
}

#[tokio::test]
async fn api_pause_and_a_red_quality_rating_stop_planning() {
    let w = World::new(Some("TIER_UNLIMITED")).await;
    let id = w
        .create(recipients(30), json!({"percent": 10, "every_secs": 60}))
        .await;
    w.drive(T0 + 1, true).await;
    assert_eq!(w.mem.jobs().len(), 3);
    create::pause(&w.mem, &id).await.unwrap();
    w.drive(T0 + 3600, true).await;
    assert_eq!(w.mem.jobs().len(), 3);
    assert_eq!(w.get(&id).await.view()["paused_reason"], "api");
    w.mem.set_quality_red(PN, true);
    create::resume(&w.mem, &w.mem, &id).await.unwrap();
    w.drive(T0 + 7200, true).await;
    assert_eq!(w.get(&id).await.view()["paused_reason"], "quality_red");
    assert_eq!(w.mem.jobs().len(), 3);
    w.mem.set_quality_red(PN, false);
    create::resume(&w.mem, &w.mem, &id).await.unwrap();
    w.drive(i64::MAX, true).await;
    assert_eq!(w.mem.jobs().len(), 30);
}

#[tokio::test]
async fn the_limit_is_shared_by_broadcasts_and_api_sends() {
    let w = World::new(Some("TIER_250")).await;
    // 50 API template sends to customers without a window use 50 of the 250.
    for i in 0..50 {
        let c = CustomerKey::Phone(format!("1666{i:07}")).as_storage();
        assert!(
            charge_one(&w.mem, WABA, &c, false, MessagingLimit::Tier250, T0)
                .await
                .unwrap()
                .is_ok()
        );
    }
    // Charging the same customer again is free; a customer with an open window is free.
    let c = CustomerKey::Phone("16660000000".into()).as_storage();
    assert!(
        charge_one(&w.mem, WABA, &c, false, MessagingLimit::Tier250, T0)
            .await
            .unwrap()
            .is_ok()
    );
    let a = w
        .create(recipients(150), json!({"all_at_once": true}))
        .await;
    // B: 30 customers A also has (charged already: free) and 150 new ones.
    let mut rb = recipients(30);
    rb.extend((0..150).map(|i| json!({"to": format!("1777{i:07}")})));
    let b = w.create(rb, json!({"all_at_once": true})).await;
    w.drive(T0 + 86_400, false).await;
    let ba = w.get(&a).await;
    let bb = w.get(&b).await;
    assert_eq!(ba.counts.queued, 150);
    // 250 − 50 − 150 = 50 new customers, plus the 30 shared ones.
    assert_eq!(bb.counts.queued, 80);
    assert_eq!(bb.view()["counts"]["waiting_for_limit"], 100);
    // The API is refused now too.
    let d = CustomerKey::Phone("18880000000".into()).as_storage();
    let full = charge_one(&w.mem, WABA, &d, false, MessagingLimit::Tier250, T0 + 10)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(full.limit, 250);
    // Room comes back when the hour of the first charges leaves the rolling 24 hours.
    let retry = full.retry_at.expect("a counted hour");
    assert!(
        retry > T0 + 86_400 - 3_600 && retry <= T0 + 86_400 + 3_600,
        "{retry}"
    );
    assert!(
        charge_one(&w.mem, WABA, &d, true, MessagingLimit::Tier250, T0 + 10)
            .await
            .unwrap()
            .is_ok()
    );
    w.drive(i64::MAX, true).await;
    assert_eq!(w.get(&b).await.counts.delivered, 180);
}

/// A store, limit and queue that fail once, at call number `fail_at` — either instead of
/// doing the call, or after doing it (the planner "killed" right after a store call).
struct Crashy<'a> {
    inner: &'a MemoryBroadcasts,
    calls: AtomicUsize,
    fail_at: usize,
    after: bool,
    /// Killed: every later call of the same step fails too (the process is gone), even one
    /// made concurrently with the one that was killed.
    dead: AtomicBool,
    /// Sends are written only after the planner's other work has had its turn (a slow
    /// store), so that reads made meanwhile miss them.
    slow_sends: bool,
    /// Job saves made.
    saves: AtomicUsize,
}

impl<'a> Crashy<'a> {
    /// Over `inner`: killed at call `fail_at` (0: never), before it is made or `after`.
    fn new(inner: &'a MemoryBroadcasts, fail_at: usize, after: bool, slow_sends: bool) -> Self {
        Self {
            inner,
            calls: AtomicUsize::new(0),
            fail_at,
            after,
            dead: AtomicBool::new(false),
            slow_sends,
            saves: AtomicUsize::new(0),
        }
    }

    /// `Some(after)`: this call is killed (before or after it is made).
    fn tick(&self) -> Option<bool> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.dead.load(Ordering::SeqCst) {
            return Some(false);
        }
        (n == self.fail_at).then(|| {
            self.dead.store(true, Ordering::SeqCst);
            self.after
        })
    }
}

fn crash() -> StoreError {
    StoreError::Unavailable("killed".into())
}

macro_rules! crashy {
    ($self:ident, $call:expr) => {{
        match $self.tick() {
            Some(false) => return Err(crash().into()),
            Some(true) => {
                let _ = $call.await;
                return Err(crash().into());
            }
            None => $call.await,
        }
    }};
}

impl BroadcastStore for Crashy<'_> {
    async fn claim_creation(
        &self,
        key: &str,
        id: &BroadcastId,
        body_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Option<(BroadcastId, String)>, StoreError> {
        crashy!(
            self,
            self.inner
                .claim_creation(key, id, body_hash, expires_at, now)
        )
    }
    async fn create_broadcast(&self, b: &Broadcast) -> Result<Recorded, StoreError> {
        crashy!(self, self.inner.create_broadcast(b))
    }
    async fn get_broadcast(&self, id: &BroadcastId) -> Result<Option<Broadcast>, StoreError> {
        crashy!(self, self.inner.get_broadcast(id))
    }
    async fn save_broadcast(&self, b: &mut Broadcast) -> Result<bool, StoreError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        crashy!(self, self.inner.save_broadcast(b))
    }
    async fn put_entries(&self, e: &[LedgerEntry]) -> Result<(), StoreError> {
        crashy!(self, self.inner.put_entries(e))
    }
    async fn entries(
        &self,
        id: &BroadcastId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        crashy!(self, self.inner.entries(id, from, limit))
    }
    async fn send_owners(&self, ids: &[SendId]) -> Result<Vec<Option<u64>>, StoreError> {
        crashy!(self, self.inner.send_owners(ids))
    }
    async fn create_sends(&self, s: &[SendRecord], first: bool) -> Result<(), StoreError> {
        if self.slow_sends {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        crashy!(self, self.inner.create_sends(s, first))
    }
    async fn get_sends(
        &self,
        ids: &[crate::outbound::SendId],
    ) -> Result<Vec<Option<SendRecord>>, StoreError> {
        crashy!(self, self.inner.get_sends(ids))
    }
    async fn audience(
        &self,
        pn: &str,
        who: &[CustomerRef],
        marketing: bool,
    ) -> Result<Vec<Audience>, StoreError> {
        crashy!(self, self.inner.audience(pn, who, marketing))
    }
    async fn queue_pace(&self, pn: &str, now_ms: i64, add_ms: i64) -> Result<i64, StoreError> {
        crashy!(self, self.inner.queue_pace(pn, now_ms, add_ms))
    }
    async fn quality_red(&self, waba: &str, pn: &str) -> Result<bool, StoreError> {
        crashy!(self, self.inner.quality_red(waba, pn))
    }
}

impl LimitStore for Crashy<'_> {
    async fn tier(&self, p: &str) -> Result<Option<MessagingLimit>, StoreError> {
        crashy!(self, self.inner.tier(p))
    }
    async fn charged_since(
        &self,
        p: &str,
        c: &[String],
        since: i64,
    ) -> Result<HashMap<String, i64>, StoreError> {
        crashy!(self, self.inner.charged_since(p, c, since))
    }
    async fn adjust_buckets(&self, p: &str, deltas: &[(i64, i64)]) -> Result<(), StoreError> {
        crashy!(self, self.inner.adjust_buckets(p, deltas))
    }
    async fn reserve(
        &self,
        p: &str,
        want: u64,
        limit: u64,
        now: i64,
    ) -> Result<(u64, Option<i64>), StoreError> {
        crashy!(self, self.inner.reserve(p, want, limit, now))
    }
    async fn record_charges(&self, p: &str, c: &[String], at: i64) -> Result<(), StoreError> {
        crashy!(self, self.inner.record_charges(p, c, at))
    }
}

impl OutboundBatch for Crashy<'_> {
    async fn enqueue_batch(&self, jobs: &[SendJob]) -> Result<(), QueueError> {
        match self.tick() {
            Some(false) => Err(QueueError::Unavailable("killed".into())),
            Some(true) => {
                let _ = self.inner.enqueue_batch(jobs).await;
                Err(QueueError::Unavailable("killed".into()))
            }
            None => self.inner.enqueue_batch(jobs).await,
        }
    }
}

/// Runs a broadcast with the planner killed at call `fail_at` (before or after the call) and
/// restarted by the message coming back; returns whether the kill happened.
async fn run_with_kill(fail_at: usize, after: bool) -> bool {
    let mut w = World::new(Some("TIER_50")).await;
    w.cfg.page = 12;
    w.cfg.pages_per_step = 3;
    w.cfg.recheck_secs = 6 * 3600;
    w.mem
        .store
        .record_consent(&ConsentRecord {
            phone_number_id: PN.into(),
            customer: CustomerKey::Phone(phone(4)),
            scope: "all".into(),
            consent: Consent::OptedOut,
            source: ConsentSource::Keyword,
            at: 1,
            detail: None,
        })
        .await
        .unwrap();
    // 60 rows: 55 customers (5 repeated), one opted out; the 50 tier holds 5 for a day.
    let mut rows = recipients(55);
    for i in [3, 10, 20, 30, 54] {
        rows.push(json!({"to": phone(i)}));
    }
    let id = w
        .create(rows, json!({"percent": 25, "every_secs": 60}))
        .await;
    let crashy = Crashy::new(&w.mem, fail_at, after, false);
    let deps = Deps {
        store: &crashy,
        limits: &crashy,
        templates: &*w.mem.store,
        source: &w.mem,
        outbound: &crashy,
        clock: &w.clock,
    };
    let mut queue: Vec<(u64, i64)> = w
        .mem
        .take_steps()
        .into_iter()
        .map(|(_, c, d)| (c, d))
        .collect();
    let mut killed = false;
    let mut guard = 0;
    while let Some((chain, delay)) = queue.pop() {
        guard += 1;
        assert!(guard < 10_000);
        w.clock.advance(delay * 1000);
        let result = step(&deps, &w.cfg, &id, chain).await;
        if crashy.dead.swap(false, Ordering::SeqCst) {
            // Killed: whatever the step made of it, the process is gone; the message comes
            // back after its visibility timeout. (The next process starts alive.)
            killed = true;
            queue.push((chain, 30));
            w.deliver_all().await;
            continue;
        }
        match result {
            Ok(StepResult::Again { after_secs, chain }) => queue.push((chain, after_secs)),
            Ok(StepResult::Idle) => {}
            Err(e) => panic!("kill at {fail_at}: a step failed without a kill: {e}"),
        }
        w.deliver_all().await;
    }
    let b = w.get(&id).await;
    assert_eq!(
        b.state,
        BroadcastState::Completed,
        "kill at {fail_at} (after: {after})"
    );
    let sends = w.mem.store.sends();
    let mut per_phone: HashMap<String, usize> = HashMap::new();
    for s in &sends {
        *per_phone
            .entry(s.who.clone().unwrap().wa_id.unwrap())
            .or_default() += 1;
    }
    assert_eq!(
        sends.len(),
        54,
        "kill at {fail_at}: one send per allowed customer"
    );
    assert!(
        per_phone.values().all(|n| *n == 1),
        "kill at {fail_at}: {per_phone:?}"
    );
    assert!(!per_phone.contains_key(&phone(4)));
    let ledger = w.mem.ledger(&id);
    assert_eq!(ledger.len(), 60);
    assert!(
        ledger
            .iter()
            .all(|e| e.outcome != Outcome::Pending && e.outcome != Outcome::Queued)
    );
    assert_eq!(b.counts.delivered, 54);
    assert_eq!(b.counts.skipped_duplicate, 5);
    assert_eq!(b.counts.skipped_opted_out, 1);
    // The limit was never exceeded: at most 50 charged in any day.
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e.outcome == Outcome::Delivered)
            .count(),
        54
    );
    killed
}

#[tokio::test]
async fn a_planner_killed_at_any_call_and_restarted_sends_nobody_twice_and_skips_nobody() {
    for after in [false, true] {
        let mut n = 1;
        while run_with_kill(n, after).await {
            n += 1;
        }
        assert!(n > 50, "the run makes more than 50 calls ({n})");
        eprintln!("killed at each of {} calls (after: {after})", n - 1);
    }
}

#[tokio::test]
async fn the_next_page_is_read_while_one_is_written_and_claimed_in_the_save_that_ends_it() {
    let mut w = World::new(Some("TIER_UNLIMITED")).await;
    w.cfg.page = 10;
    w.cfg.pages_per_step = 10;
    w.cfg.queue_ahead_secs = 0;
    // 40 rows: customer 9 at rows 9 and 10 (row 10 is the first of the next page, read while
    // the page with row 9 is being written, before its sends exist), and customer 25 at
    // rows 26 and 27 (on one page).
    let mut rows = recipients(38);
    rows.insert(10, json!({"to": phone(9)}));
    rows.insert(27, json!({"to": phone(25)}));
    let id = w
        .create(rows, json!({"percent": 100, "every_secs": 60}))
        .await;
    let _ = w.mem.take_steps();
    let slow = Crashy::new(&w.mem, 0, false, true);
    let deps = Deps {
        store: &slow,
        limits: &slow,
        templates: &*w.mem.store,
        source: &w.mem,
        outbound: &slow,
        clock: &w.clock,
    };
    let b = w.get(&id).await;
    let first = step(&deps, &w.cfg, &id, b.chain).await.unwrap();
    assert!(matches!(first, StepResult::Again { .. }), "{first:?}");
    let b = w.get(&id).await;
    assert_eq!(b.cursor, 40);
    // One send per customer, each queued once; the repeats are duplicates.
    let mut per_phone: HashMap<String, usize> = HashMap::new();
    for p in queued_phones(&w.mem) {
        *per_phone.entry(p).or_default() += 1;
    }
    assert_eq!(per_phone.len(), 38);
    assert!(per_phone.values().all(|n| *n == 1), "{per_phone:?}");
    assert_eq!(w.mem.jobs().len(), 38);
    let ledger = w.mem.ledger(&id);
    assert_eq!(ledger[10].outcome, Outcome::SkippedDuplicate);
    assert_eq!(ledger[27].outcome, Outcome::SkippedDuplicate);
    assert_eq!(ledger[26].outcome, Outcome::Queued);
    assert_eq!(ledger[9].outcome, Outcome::Queued);
    assert_eq!(b.counts.skipped_duplicate, 2);
    // Four pages: the first claimed by a save of its own, each next one in the save that
    // moved the cursor past the one before; the last save claims nothing.
    assert_eq!(slow.saves.load(Ordering::SeqCst), 5);
    assert_eq!(b.page_claim.map(|c| c.cursor), Some(30));
}

#[test]
fn ids_and_send_ids_are_stable() {
    let id = BroadcastId::new(T0 * 1000, [1; 10]);
    assert!(id.as_str().starts_with("bc_"));
    assert_eq!(
        BroadcastId::parse(&id.as_str().to_lowercase().replace("BC_", "bc_")),
        Some(id.clone())
    );
    assert_eq!(send_id_for(&id, 5, "p:1"), send_id_for(&id, 5, "p:1"));
    assert_ne!(send_id_for(&id, 5, "p:1"), send_id_for(&id, 5, "p:2"));
    let other = BroadcastId::new(T0 * 1000, [2; 10]);
    assert_ne!(send_id_for(&id, 5, "p:1"), send_id_for(&other, 5, "p:1"));
    assert!(crate::outbound::SendId::parse(send_id_for(&id, 5, "p:1").as_str()).is_some());
    assert_eq!(BroadcastId::parse("bc_x"), None);
}

#[test]
fn the_request_is_checked() {
    let bad = |v: serde_json::Value| create::parse(&serde_json::to_vec(&v).unwrap()).is_err();
    assert!(bad(
        json!({"template": {"name": "a", "language": "es"}, "recipients": [{"to": "1"}]})
    ));
    assert!(bad(
        json!({"phone_number_id": "1", "template": {"name": "A B", "language": "es"}, "recipients": [{"to": "15551234567"}]})
    ));
    assert!(bad(
        json!({"phone_number_id": "1", "template": {"name": "a"}, "recipients": [{"to": "15551234567"}]})
    ));
    assert!(bad(
        json!({"phone_number_id": "1", "template": {"name": "a", "language": "es"}, "recipients": []})
    ));
    assert!(bad(
        json!({"phone_number_id": "1", "template": {"name": "a", "language": "es"}})
    ));
    assert!(bad(
        json!({"phone_number_id": "1", "template": {"name": "a", "language": "es"}, "recipients": [{"to": "15551234567"}], "release": {"percent": 0}})
    ));
    let ok = create::parse(
        &serde_json::to_vec(&json!({"phone_number_id": "1", "template": {"name": "a", "language": {"code": "es"}},
            "recipients": [{"to": "15551234567"}, {"to": "12"}, {"recipient": "US.13491208655302741918", "components": [{"type": "body"}]}, {"to": "15551234567", "components": {"x": 1}}]}))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(ok.recipients[0].problem, None);
    assert!(ok.recipients[1].problem.is_some());
    assert_eq!(ok.recipients[2].problem, None);
    assert!(ok.recipients[3].problem.is_some());
    assert_eq!(ok.release, Release::default());
}
