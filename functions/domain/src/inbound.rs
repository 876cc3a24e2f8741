//! Applying one inbound event: what inbound-processor does with each event off the queue.
//!
//! Every step is idempotent, and each event is applied whole on every delivery (a duplicate
//! message still moves the window forward), so a crash between two writes heals itself when
//! the queue redelivers the event. Events Ventana cannot interpret are kept whole, never
//! dropped.

use crate::customer::{CustomerKey, CustomerRef};
use crate::event::{EventKind, InboundEvent};
use crate::model::{
    FieldUpdate, IdentityChange, InboundMessage, PreferenceValue, StatusReport, StatusValue,
    UserPreference,
};
use crate::optout::Keywords;
use crate::outbound::deliver::history_record;
use crate::outbound::{SendFailure, SendId, StatusEffect};
use crate::ports::{
    AccountRecord, Consent, ConsentRecord, ConsentSource, Direction, EventRecord, InboundStore,
    MessageRecord, Recorded, SendStore, StatusRecord, StoreError,
};
use crate::status::DeliveryStatus;
use crate::templates::{
    TemplateCategory, TemplateChange, TemplateRef, TemplateStore, apply_change, status_of_event,
};
use crate::window::WindowUpdate;

/// How inbound events are applied.
#[derive(Debug, Clone)]
pub struct InboundConfig {
    /// How long history items (messages, statuses, events) are kept, in seconds.
    pub retention_secs: i64,
    /// Opt-out and opt-in keywords, and opt-out buttons.
    pub keywords: Keywords,
}

impl Default for InboundConfig {
    fn default() -> Self {
        Self {
            retention_secs: 90 * 86_400,
            keywords: Keywords::default(),
        }
    }
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A message recorded for the first time.
    NewMessage,
    /// A message seen before: nothing new recorded (the window is still re-applied).
    DuplicateMessage,
    /// A status applied to its message.
    Status,
    /// A consent change recorded.
    Consent,
    /// An account, number or template update recorded.
    Account,
    /// Kept whole as an event record (errors, unknown fields, uninterpretable items).
    Kept,
}

/// Applies `event` at `now` (unix seconds). Only store failures are errors: the caller lets
/// the queue redeliver the event.
///
/// Every event that names both its account (`entry[].id`) and its phone number teaches the
/// template registry which account the number belongs to ([`TemplateStore::remember_number`],
/// which costs no write once known).
pub async fn apply<S: InboundStore + SendStore + TemplateStore>(
    store: &S,
    event: &InboundEvent,
    cfg: &InboundConfig,
    now: i64,
) -> Result<Applied, StoreError> {
    if let (Some(waba), Some(pnid)) = (&event.waba_id, &event.phone_number_id) {
        store.remember_number(pnid, waba).await?;
    }
    match event.kind {
        EventKind::Message => message(store, event, cfg, now).await,
        EventKind::Status => status(store, event, cfg, now).await,
        EventKind::Preference => preference(store, event, cfg, now).await,
        EventKind::Field => field(store, event, cfg, now).await,
        EventKind::Error | EventKind::Item => keep(store, event, cfg, now).await,
    }
}

async fn message<S: InboundStore>(
    store: &S,
    ev: &InboundEvent,
    cfg: &InboundConfig,
    now: i64,
) -> Result<Applied, StoreError> {
    let parsed = InboundMessage::parse(ev.item.get(), ev.contact.as_deref().map(|c| c.get()));
    let (Ok(m), Some(pnid), Some(who)) =
        (parsed, ev.phone_number_id.as_deref(), ev.customer.as_ref())
    else {
        return keep(store, ev, cfg, now).await;
    };
    let key = store.resolve_customer(pnid, who).await?;
    let recorded = store
        .record_message(&MessageRecord {
            id: m.id.clone(),
            wamid: m.id.clone(),
            phone_number_id: pnid.to_owned(),
            customer: key.clone(),
            who: who.clone(),
            direction: Direction::Inbound,
            message_type: m.type_name().to_owned(),
            timestamp: m.timestamp,
            raw: ev.item.get().to_owned(),
            expires_at: m.timestamp.max(now).saturating_add(cfg.retention_secs),
        })
        .await?;
    if m.opens_window() {
        let update = WindowUpdate::for_message(m.timestamp, m.from_referral());
        store
            .advance_window(pnid, &key, who, &update, m.profile_name.as_deref())
            .await?;
    }
    // Typed keywords change scope `all`; a template's opt-out button, `marketing`; an
    // interactive reply nothing (the module docs of `optout` say why).
    if let Some(change) = m
        .consent_text()
        .and_then(|t| cfg.keywords.consent_change(t))
    {
        store
            .record_consent(&ConsentRecord {
                phone_number_id: pnid.to_owned(),
                customer: key.clone(),
                scope: change.scope.into(),
                consent: change.consent,
                source: ConsentSource::Keyword,
                at: m.timestamp,
                detail: None,
            })
            .await?;
    }
    match m.identity_change() {
        Some(IdentityChange::Number {
            new_wa_id,
            new_user_id,
            previous_user_id,
            ..
        }) => {
            // A new BSUID with the new number: what the old one holds goes with it.
            if let Some(to) = &new_user_id
                && let Some(from) = previous_bsuid(previous_user_id.as_deref(), &key, to)
            {
                let to = CustomerKey::Bsuid(to.clone());
                store.change_customer(pnid, &from, &to, who, None).await?;
            }
            // The customer's new number resolves to their BSUID from now on: the new BSUID
            // Meta issued with the change if it sent one, else the one this customer is keyed
            // by.
            let user_id = match (&new_user_id, &key) {
                (Some(u), _) => Some(u.as_str()),
                (None, CustomerKey::Bsuid(u)) => Some(u.as_str()),
                (None, CustomerKey::Phone(_)) => None,
            };
            if let Some(new) = user_id.and_then(|u| CustomerRef::new(Some(u), Some(&new_wa_id))) {
                store.resolve_customer(pnid, &new).await?;
            }
        }
        Some(IdentityChange::UserId {
            new_user_id,
            previous_user_id,
        }) => {
            // Consents and window move to the new BSUID, and the customer's phone (when this
            // message names it) resolves to it.
            if let Some(from) = previous_bsuid(previous_user_id.as_deref(), &key, &new_user_id) {
                let to = CustomerKey::Bsuid(new_user_id);
                store
                    .change_customer(pnid, &from, &to, who, who.wa_id.as_deref())
                    .await?;
            }
        }
        None => {}
    }
    Ok(match recorded {
        Recorded::New => Applied::NewMessage,
        Recorded::Duplicate => Applied::DuplicateMessage,
    })
}

/// The BSUID a change moves away from: the one Meta names as previous, else the one the
/// message is keyed by; `None` when that is the new one itself (nothing to move).
fn previous_bsuid(named: Option<&str>, key: &CustomerKey, new: &str) -> Option<CustomerKey> {
    let old = match (named, key) {
        (Some(u), _) if !u.trim().is_empty() => u,
        (_, CustomerKey::Bsuid(u)) => u.as_str(),
        _ => return None,
    };
    (old != new).then(|| CustomerKey::Bsuid(old.to_owned()))
}

async fn status<S: InboundStore + SendStore>(
    store: &S,
    ev: &InboundEvent,
    cfg: &InboundConfig,
    now: i64,
) -> Result<Applied, StoreError> {
    let Ok(report) = StatusReport::parse(ev.item.get()) else {
        return keep(store, ev, cfg, now).await;
    };
    let StatusValue::Delivery(status) = report.status else {
        // Not a message receipt (e.g. a call's RINGING status): kept whole.
        return keep(store, ev, cfg, now).await;
    };
    let error = report.errors.first().map(|e| {
        (
            e.code,
            e.title
                .clone()
                .or_else(|| e.message.clone())
                .unwrap_or_default(),
        )
    });
    let send_id = report
        .biz_opaque_callback_data
        .as_deref()
        .and_then(SendId::parse);
    // The common case, a receipt with no error for a send the worker accepted: one write, to
    // the send, which is not indexed. Its history record is left alone: every write to it
    // rewrites its index entry too (the history reads the send's receipts from the send).
    let quick = status != DeliveryStatus::Failed && error.is_none();
    if quick
        && let Some(id) = &send_id
        && store
            .add_status(
                id,
                &report.id,
                status,
                report.timestamp,
                report.pricing_raw.as_deref(),
            )
            .await?
    {
        return Ok(Applied::Status);
    }
    let recorded = store
        .apply_status(&StatusRecord {
            wamid: report.id.clone(),
            phone_number_id: ev.phone_number_id.clone(),
            status,
            timestamp: report.timestamp,
            error: error.clone(),
            callback_data: report.biz_opaque_callback_data.clone(),
            recipient: ev.customer.clone(),
            pricing: report.pricing_raw.clone(),
            expires_at: report.timestamp.max(now).saturating_add(cfg.retention_secs),
        })
        .await?;
    if let Some(id) = send_id {
        let failure = error.as_ref().map(|(c, m)| SendFailure::new(*c, m.clone()));
        link_send(
            store,
            &id,
            recorded.as_ref() == Some(&id),
            quick,
            &report.id,
            status,
            report.timestamp,
            failure,
            cfg,
            now,
        )
        .await?;
    }
    // 131050: the user stopped marketing messages. Remember it so nothing is sent again.
    if let (Some((131_050, _)), Some(pnid), Some(who)) =
        (error, ev.phone_number_id.as_deref(), ev.customer.as_ref())
    {
        let key = store.resolve_customer(pnid, who).await?;
        store
            .record_consent(&ConsentRecord {
                phone_number_id: pnid.to_owned(),
                customer: key,
                scope: "marketing".into(),
                consent: Consent::OptedOut,
                source: ConsentSource::Error131050,
                at: report.timestamp,
                detail: None,
            })
            .await?;
    }
    Ok(Applied::Status)
}

/// How often a status retries its save when a worker saved the send in between.
const LINK_ATTEMPTS: usize = 5;

/// Applies a status to the send it reports on (matched by `biz_opaque_callback_data`): this
/// is what confirms an unconfirmed send, and fails a send that Meta failed asynchronously.
/// A send accepted this way enters the conversation history here (the worker could not).
/// `in_history`: the status was just added to this send's own history record, so a receipt
/// (not `failed`) is already one of its statuses and nothing more is written. `tried`:
/// [`SendStore::add_status`] was already asked, and wrote nothing.
#[allow(clippy::too_many_arguments)]
async fn link_send<S: InboundStore + SendStore>(
    store: &S,
    id: &SendId,
    in_history: bool,
    tried: bool,
    wamid: &str,
    status: DeliveryStatus,
    at: i64,
    failure: Option<SendFailure>,
    cfg: &InboundConfig,
    now: i64,
) -> Result<(), StoreError> {
    // A receipt the send's history record now holds: that write was the only one. Otherwise
    // one write to the send, no read, unless it was tried already.
    if status != DeliveryStatus::Failed
        && (in_history || (!tried && store.add_status(id, wamid, status, at, None).await?))
    {
        return Ok(());
    }
    for _ in 0..LINK_ATTEMPTS {
        // A callback id that is not (or no longer) a send of this deployment: nothing to link.
        let Some(mut send) = store.get_send(id).await? else {
            return Ok(());
        };
        let had_wamid = send.wamid.is_some();
        if send.apply_status(wamid, status, at, failure.as_ref(), now * 1000)
            == StatusEffect::Unchanged
        {
            return Ok(());
        }
        if store.save_send(&mut send).await? {
            if !had_wamid
                && let Some(m) =
                    history_record(&send, wamid, at.saturating_mul(1000), cfg.retention_secs)
            {
                store.record_message(&m).await?;
            }
            return Ok(());
        }
    }
    Err(StoreError::Corrupt(format!(
        "send {id} kept changing while a status was applied"
    )))
}

async fn preference<S: InboundStore>(
    store: &S,
    ev: &InboundEvent,
    cfg: &InboundConfig,
    now: i64,
) -> Result<Applied, StoreError> {
    let Ok(pref) = UserPreference::parse(ev.item.get()) else {
        return keep(store, ev, cfg, now).await;
    };
    let consent = match pref.value {
        PreferenceValue::Stop => Consent::OptedOut,
        PreferenceValue::Resume => Consent::OptedIn,
        PreferenceValue::Other(_) => return keep(store, ev, cfg, now).await,
    };
    let (Some(pnid), Some(who)) = (ev.phone_number_id.as_deref(), ev.customer.as_ref()) else {
        return keep(store, ev, cfg, now).await;
    };
    let key = store.resolve_customer(pnid, who).await?;
    let scope = match pref.category.as_deref() {
        Some("marketing_messages") | None => "marketing".to_owned(),
        Some(other) => other.to_owned(),
    };
    store
        .record_consent(&ConsentRecord {
            phone_number_id: pnid.to_owned(),
            customer: key,
            scope,
            consent,
            source: ConsentSource::UserPreferences,
            at: pref.timestamp.unwrap_or(now),
            detail: None,
        })
        .await?;
    Ok(Applied::Consent)
}

async fn field<S: InboundStore + TemplateStore>(
    store: &S,
    ev: &InboundEvent,
    cfg: &InboundConfig,
    now: i64,
) -> Result<Applied, StoreError> {
    // Every management update is kept whole for audit, and the ones the outbound side needs
    // are also recorded as current state, newest wins.
    keep(store, ev, cfg, now).await?;
    let Some(waba) = ev.waba_id.clone() else {
        return Ok(Applied::Kept);
    };
    let at = ev.entry_time.unwrap_or(now);
    let record = |key: String, attributes: Vec<(&str, Option<String>)>| AccountRecord {
        waba_id: waba.clone(),
        key,
        at,
        attributes: attributes
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect(),
    };
    let template_key = |name: &Option<String>, lang: &Option<String>, what: &str| {
        format!(
            "template#{}#{}#{what}",
            name.as_deref().unwrap_or("-"),
            lang.as_deref().unwrap_or("-")
        )
    };
    let update = FieldUpdate::parse(&ev.field, ev.item.get());
    registry(store, &waba, &update, at).await?;
    let rec = match update {
        FieldUpdate::TemplateStatus(t) => record(
            template_key(&t.name, &t.language, "status"),
            vec![
                ("status", Some(t.event)),
                ("template_id", t.template_id),
                ("reason", t.reason),
                ("category", t.category),
            ],
        ),
        FieldUpdate::TemplateCategory(t) => record(
            template_key(&t.name, &t.language, "category"),
            vec![
                ("template_id", t.template_id),
                ("new_category", t.new_category),
                ("previous_category", t.previous_category),
                ("correct_category", t.correct_category),
            ],
        ),
        FieldUpdate::TemplateQuality(t) => record(
            template_key(&t.name, &t.language, "quality"),
            vec![
                ("template_id", t.template_id),
                ("quality", t.new_quality_score),
                ("previous_quality", t.previous_quality_score),
            ],
        ),
        FieldUpdate::PhoneNumberQuality(q) => {
            if let Some(limit) = q.messaging_limit() {
                store
                    .record_account(&record(
                        "messaging_limit".into(),
                        vec![("tier", Some(limit.as_str().to_owned()))],
                    ))
                    .await?;
            }
            record(
                format!(
                    "number#{}#quality",
                    q.display_phone_number.as_deref().unwrap_or("-")
                ),
                vec![
                    ("event", q.event),
                    ("current_limit", q.current_limit),
                    ("tier", q.max_daily_conversations_per_business),
                ],
            )
        }
        FieldUpdate::BusinessCapability(c) => match c.messaging_limit() {
            Some(limit) => record(
                "messaging_limit".into(),
                vec![("tier", Some(limit.as_str().to_owned()))],
            ),
            None => return Ok(Applied::Kept),
        },
        FieldUpdate::AccountUpdate(a) => {
            let restrictions = a
                .restrictions
                .iter()
                .filter_map(|r| r.restriction_type.clone())
                .collect::<Vec<_>>()
                .join(",");
            record(
                format!("account#{}", a.event),
                vec![
                    ("event", Some(a.event.clone())),
                    (
                        "restrictions",
                        (!restrictions.is_empty()).then_some(restrictions),
                    ),
                    ("violation_type", a.violation_type),
                    ("ban_state", a.ban_state),
                ],
            )
        }
        _ => return Ok(Applied::Kept),
    };
    store.record_account(&rec).await?;
    Ok(Applied::Account)
}

/// Keeps the template registry current from a template webhook (the account record above
/// keeps the webhook itself).
async fn registry<S: TemplateStore>(
    store: &S,
    waba: &str,
    update: &FieldUpdate,
    at: i64,
) -> Result<(), StoreError> {
    let (name, language, id, change) = match update {
        FieldUpdate::TemplateStatus(t) => {
            let Some(status) = status_of_event(&t.event) else {
                return Ok(());
            };
            let category = t.category.clone().map(TemplateCategory::from);
            (
                &t.name,
                &t.language,
                &t.template_id,
                TemplateChange::Status { status, category },
            )
        }
        FieldUpdate::TemplateCategory(t) => match &t.new_category {
            // An impending change (`correct_category` given) takes effect 24 h later: the
            // category in force is still `new_category`.
            Some(c) => (
                &t.name,
                &t.language,
                &t.template_id,
                TemplateChange::Category(TemplateCategory::from(c.clone())),
            ),
            None => return Ok(()),
        },
        FieldUpdate::TemplateQuality(t) => match &t.new_quality_score {
            Some(q) => (
                &t.name,
                &t.language,
                &t.template_id,
                TemplateChange::Quality(q.clone()),
            ),
            None => return Ok(()),
        },
        _ => return Ok(()),
    };
    let (Some(name), Some(language)) = (name, language) else {
        return Ok(());
    };
    let t = TemplateRef {
        waba_id: waba,
        name,
        language,
        id: id.as_deref(),
    };
    apply_change(store, t, change, at).await.map(|_| ())
}

async fn keep<S: InboundStore>(
    store: &S,
    ev: &InboundEvent,
    cfg: &InboundConfig,
    now: i64,
) -> Result<Applied, StoreError> {
    let at = ev.entry_time.unwrap_or(now);
    store
        .record_event(&EventRecord {
            natural_key: ev.natural_key.clone(),
            waba_id: ev.waba_id.clone(),
            phone_number_id: ev.phone_number_id.clone(),
            field: ev.field.clone(),
            kind: ev.kind.as_str().to_owned(),
            at,
            raw: ev.item.get().to_owned(),
            expires_at: at.max(now).saturating_add(cfg.retention_secs),
        })
        .await?;
    Ok(Applied::Kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::DeliveryStatus;
    use crate::testing::InMemoryStore;
    use crate::webhook::split;

    const PNID: &str = "PN1";
    const T0: i64 = 1_795_420_800;

    fn webhook(value: &str, field: &str) -> Vec<InboundEvent> {
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA1","time":{T0},"changes":[{{"field":"{field}","value":{value}}}]}}]}}"#
        );
        split(body.as_bytes()).unwrap()
    }

    fn text(wamid: &str, ts: i64, body: &str, extra: &str) -> Vec<InboundEvent> {
        webhook(
            &format!(
                r#"{{"metadata":{{"phone_number_id":"{PNID}"}},"contacts":[{{"profile":{{"name":"Ana"}},"wa_id":"5511999","user_id":"BR.42"}}],"messages":[{{"from":"5511999","from_user_id":"BR.42","id":"{wamid}","timestamp":"{ts}","type":"text","text":{{"body":"{body}"}}{extra}}}]}}"#
            ),
            "messages",
        )
    }

    /// A message of Ana's whose content is `content` (`"type":"…","…":{…}`).
    fn from_ana(wamid: &str, ts: i64, content: &str) -> Vec<InboundEvent> {
        webhook(
            &format!(
                r#"{{"metadata":{{"phone_number_id":"{PNID}"}},"contacts":[{{"profile":{{"name":"Ana"}},"wa_id":"5511999","user_id":"BR.42"}}],"messages":[{{"from":"5511999","from_user_id":"BR.42","id":"{wamid}","timestamp":"{ts}",{content}}}]}}"#
            ),
            "messages",
        )
    }

    /// A tap on a template's quick-reply button.
    fn template_button(wamid: &str, ts: i64, text: &str, payload: &str) -> Vec<InboundEvent> {
        from_ana(
            wamid,
            ts,
            &format!(r#""type":"button","button":{{"payload":"{payload}","text":"{text}"}}"#),
        )
    }

    /// A tap on an interactive reply button (`button_reply`).
    fn reply_button(wamid: &str, ts: i64, id: &str, title: &str) -> Vec<InboundEvent> {
        from_ana(
            wamid,
            ts,
            &format!(
                r#""type":"interactive","interactive":{{"type":"button_reply","button_reply":{{"id":"{id}","title":"{title}"}}}}"#
            ),
        )
    }

    async fn apply_all(store: &InMemoryStore, events: &[InboundEvent]) -> Vec<Applied> {
        apply_with(store, events, &InboundConfig::default()).await
    }

    async fn apply_with(
        store: &InMemoryStore,
        events: &[InboundEvent],
        cfg: &InboundConfig,
    ) -> Vec<Applied> {
        let mut out = Vec::new();
        for e in events {
            out.push(apply(store, e, cfg, T0 + 10).await.unwrap());
        }
        out
    }

    fn key() -> CustomerKey {
        CustomerKey::Bsuid("BR.42".into())
    }

    #[tokio::test]
    async fn a_message_is_recorded_once_however_often_it_is_delivered() {
        let store = InMemoryStore::default();
        let ev = text("wamid.1", T0, "hola", "");
        assert_eq!(apply_all(&store, &ev).await, vec![Applied::NewMessage]);
        assert_eq!(
            apply_all(&store, &ev).await,
            vec![Applied::DuplicateMessage]
        );
        assert_eq!(store.message_count(), 1);
        let m = store.message("wamid.1").unwrap();
        assert_eq!(
            (m.customer, m.timestamp, m.message_type.as_str()),
            (key(), T0, "text")
        );
    }

    #[tokio::test]
    async fn the_window_follows_the_newest_message_and_an_old_redelivery_changes_nothing() {
        let store = InMemoryStore::default();
        apply_all(&store, &text("wamid.new", T0, "b", "")).await;
        apply_all(&store, &text("wamid.old", T0 - 3 * 86_400, "a", "")).await;
        let w = store.window_of(PNID, &key()).unwrap();
        assert_eq!(w.customer_service_until, Some(T0 + 86_400));
        assert_eq!(w.last_inbound_at, Some(T0));
    }

    #[tokio::test]
    async fn a_referral_message_opens_the_free_entry_point_window() {
        let store = InMemoryStore::default();
        apply_all(
            &store,
            &text(
                "wamid.ad",
                T0,
                "hi",
                r#","referral":{"source_type":"ad","source_id":"1","ctwa_clid":"x"}"#,
            ),
        )
        .await;
        let w = store.window_of(PNID, &key()).unwrap();
        assert_eq!(w.free_entry_point_until, Some(T0 + 72 * 3600));
    }

    #[tokio::test]
    async fn the_phone_resolves_to_the_bsuid_customer() {
        let store = InMemoryStore::default();
        apply_all(&store, &text("wamid.1", T0, "x", "")).await;
        // A later status that only names the phone resolves to the same customer.
        let who = CustomerRef::new(None, Some("5511999")).unwrap();
        assert_eq!(store.resolve_customer(PNID, &who).await.unwrap(), key());
    }

    /// A text message that names the customer by phone only (no BSUID yet).
    fn phone_text(wamid: &str, ts: i64, body: &str, extra: &str) -> Vec<InboundEvent> {
        webhook(
            &format!(
                r#"{{"metadata":{{"phone_number_id":"{PNID}"}},"contacts":[{{"wa_id":"5511999"}}],"messages":[{{"from":"5511999","id":"{wamid}","timestamp":"{ts}","type":"text","text":{{"body":"{body}"}}{extra}}}]}}"#
            ),
            "messages",
        )
    }

    #[tokio::test]
    async fn a_stop_sent_by_phone_alone_still_holds_once_the_customer_has_a_bsuid() {
        use crate::consent::{Purpose, may_send};
        use crate::ports::{ConversationReader, SendStore};
        let store = InMemoryStore::default();
        let phone = CustomerKey::Phone("5511999".into());
        let referral = r#","referral":{"source_type":"ad","source_id":"1","ctwa_clid":"x"}"#;
        apply_all(&store, &phone_text("wamid.ad", T0 - 100, "hi", referral)).await;
        apply_all(&store, &phone_text("wamid.stop", T0, "STOP", "")).await;
        assert_eq!(store.lookup_customer(PNID, &phone).await.unwrap(), phone);

        // Meta now sends the BSUID with the phone: the phone becomes its alias.
        apply_all(&store, &text("wamid.bsuid", T0 + 60, "hola", "")).await;
        assert_eq!(store.lookup_customer(PNID, &phone).await.unwrap(), key());
        for asked in [phone.clone(), key()] {
            let found = store.lookup_customer(PNID, &asked).await.unwrap();
            let consents = store.consents(PNID, &found).await.unwrap();
            assert!(
                may_send(&consents, Purpose::Marketing, false).is_err(),
                "asked by {asked:?}: the STOP must still hold"
            );
            let stop = store.consent_of(PNID, &found, "all").unwrap();
            assert_eq!(
                (stop.consent, stop.source, stop.at, stop.customer),
                (Consent::OptedOut, ConsentSource::Keyword, T0, key())
            );
        }
        // The window came along: the ad's 72-hour window opened under the phone.
        let w = store.window_of(PNID, &key()).unwrap();
        assert_eq!(w.free_entry_point_until, Some(T0 - 100 + 72 * 3600));
        assert_eq!(w.last_inbound_at, Some(T0 + 60));
    }

    #[tokio::test]
    async fn carrying_a_phone_over_keeps_the_newest_record_of_each_scope() {
        let store = InMemoryStore::default();
        let phone = CustomerKey::Phone("5511999".into());
        let rec = |customer: &CustomerKey, scope: &str, consent, at| ConsentRecord {
            phone_number_id: PNID.into(),
            customer: customer.clone(),
            scope: scope.into(),
            consent,
            source: ConsentSource::Api,
            at,
            detail: None,
        };
        let write = |c: ConsentRecord| {
            let store = &store;
            async move { store.record_consent(&c).await.unwrap() }
        };
        write(rec(&phone, "marketing", Consent::OptedOut, T0)).await;
        write(rec(&phone, "all", Consent::OptedOut, T0)).await;
        write(rec(&key(), "marketing", Consent::OptedIn, T0 + 5)).await;
        let both = CustomerRef::new(Some("BR.42"), Some("5511999")).unwrap();
        assert_eq!(store.resolve_customer(PNID, &both).await.unwrap(), key());
        let marketing = store.consent_of(PNID, &key(), "marketing").unwrap();
        assert_eq!(
            (marketing.consent, marketing.at),
            (Consent::OptedIn, T0 + 5),
            "the newer opt-in under the BSUID stays"
        );
        assert_eq!(
            store.consent_of(PNID, &key(), "all").unwrap().consent,
            Consent::OptedOut
        );
        // A writer that resolved the phone before the alias existed still reaches the BSUID.
        write(rec(&phone, "marketing", Consent::OptedOut, T0 + 9)).await;
        let marketing = store.consent_of(PNID, &key(), "marketing").unwrap();
        assert_eq!(
            (marketing.consent, marketing.at),
            (Consent::OptedOut, T0 + 9)
        );
    }

    #[tokio::test]
    async fn a_stop_keyword_opts_the_customer_out_and_start_opts_back_in() {
        let store = InMemoryStore::default();
        apply_all(&store, &text("wamid.s", T0, "STOP", "")).await;
        let c = store.consent_of(PNID, &key(), "all").unwrap();
        assert_eq!(
            (c.consent, c.source),
            (Consent::OptedOut, ConsentSource::Keyword)
        );
        apply_all(&store, &text("wamid.r", T0 + 5, "start", "")).await;
        assert_eq!(
            store.consent_of(PNID, &key(), "all").unwrap().consent,
            Consent::OptedIn
        );
        // An old STOP redelivered afterwards does not undo the newer START.
        apply_all(&store, &text("wamid.s", T0, "STOP", "")).await;
        assert_eq!(
            store.consent_of(PNID, &key(), "all").unwrap().consent,
            Consent::OptedIn
        );
    }

    #[tokio::test]
    async fn typed_generic_stop_words_still_opt_out_of_everything() {
        let store = InMemoryStore::default();
        apply_all(&store, &text("wamid.c", T0, "cancel", "")).await;
        let c = store.consent_of(PNID, &key(), "all").unwrap();
        assert_eq!(
            (c.consent, c.source, c.at),
            (Consent::OptedOut, ConsentSource::Keyword, T0)
        );
        assert_eq!(store.consent_of(PNID, &key(), "marketing"), None);
    }

    #[tokio::test]
    async fn an_interactive_cancel_button_changes_no_consent_and_the_reply_goes_out() {
        use crate::outbound::SendKind;
        use crate::outbound::policy::check;
        let store = InMemoryStore::default();
        // Meta's own example of a button reply, then a list row and a button titled STOP: the
        // business's menu, whatever its words.
        let mut events = reply_button("wamid.i1", T0, "cancel-button", "Cancel");
        events.extend(from_ana(
            "wamid.i2",
            T0 + 1,
            r#""type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"q","title":"Quit"}}"#,
        ));
        events.extend(reply_button("wamid.i3", T0 + 2, "s", "STOP"));
        assert_eq!(
            apply_all(&store, &events).await,
            vec![Applied::NewMessage; 3]
        );
        let consents = store.consents(PNID, &key()).await.unwrap();
        assert_eq!(consents, vec![]);
        let w = store.window_of(PNID, &key()).unwrap();
        assert_eq!(
            check(SendKind::Session, Some(&w), &consents, T0 + 10, 60),
            Ok(()),
            "the business answers the tap"
        );
    }

    #[tokio::test]
    async fn a_stop_promotions_button_opts_out_of_marketing_only() {
        use crate::outbound::SendKind;
        use crate::outbound::policy::{Refusal, check_for};
        let store = InMemoryStore::default();
        apply_all(
            &store,
            &template_button("wamid.b", T0, "Stop promotions", "Stop promotions"),
        )
        .await;
        let c = store.consent_of(PNID, &key(), "marketing").unwrap();
        assert_eq!(
            (c.consent, c.source, c.at),
            (Consent::OptedOut, ConsentSource::Keyword, T0)
        );
        assert_eq!(store.consent_of(PNID, &key(), "all"), None);
        let consents = store.consents(PNID, &key()).await.unwrap();
        let w = store.window_of(PNID, &key()).unwrap();
        let now = T0 + 10;
        assert_eq!(
            check_for(SendKind::Template, true, Some(&w), &consents, now, 60),
            Err(Refusal::OptedOut {
                scope: "marketing".into()
            }),
            "a marketing template is refused"
        );
        assert_eq!(
            check_for(SendKind::Template, false, Some(&w), &consents, now, 60),
            Ok(()),
            "a utility template goes out"
        );
        assert_eq!(
            check_for(SendKind::Session, false, Some(&w), &consents, now, 60),
            Ok(()),
            "a reply goes out"
        );
    }

    #[tokio::test]
    async fn generic_words_on_a_template_button_change_no_consent() {
        let store = InMemoryStore::default();
        apply_all(&store, &template_button("wamid.b1", T0, "Cancel", "cancel")).await;
        apply_all(&store, &template_button("wamid.b2", T0 + 1, "End", "QUIT")).await;
        assert_eq!(store.consents(PNID, &key()).await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn a_voltar_or_iniciar_button_does_not_opt_back_in() {
        let store = InMemoryStore::default();
        apply_all(&store, &text("wamid.s", T0, "SAIR", "")).await;
        apply_all(
            &store,
            &template_button("wamid.v", T0 + 1, "Voltar", "Voltar"),
        )
        .await;
        apply_all(&store, &reply_button("wamid.i", T0 + 2, "menu", "Iniciar")).await;
        let c = store.consent_of(PNID, &key(), "all").unwrap();
        assert_eq!((c.consent, c.at), (Consent::OptedOut, T0));
        // Typed, it still does.
        apply_all(&store, &text("wamid.t", T0 + 3, "voltar", "")).await;
        assert_eq!(
            store.consent_of(PNID, &key(), "all").unwrap().consent,
            Consent::OptedIn
        );
    }

    #[tokio::test]
    async fn the_opt_out_buttons_come_from_the_config() {
        use crate::optout::{DEFAULT_START, DEFAULT_STOP};
        let cfg = InboundConfig {
            keywords: Keywords::parse(DEFAULT_STOP, DEFAULT_START, "Sair das promoções"),
            ..InboundConfig::default()
        };
        let store = InMemoryStore::default();
        apply_with(
            &store,
            &template_button("wamid.en", T0, "Stop promotions", "promo-stop"),
            &cfg,
        )
        .await;
        assert_eq!(store.consents(PNID, &key()).await.unwrap(), vec![]);
        apply_with(
            &store,
            &template_button("wamid.pt", T0 + 1, "Sair das promoções", "promo-stop"),
            &cfg,
        )
        .await;
        let c = store.consent_of(PNID, &key(), "marketing").unwrap();
        assert_eq!((c.consent, c.at), (Consent::OptedOut, T0 + 1));
    }

    #[tokio::test]
    async fn statuses_out_of_order_end_at_the_highest_and_failed_is_terminal() {
        let store = InMemoryStore::default();
        let st = |id: &str, s: &str, ts: i64, extra: &str| {
            webhook(
                &format!(
                    r#"{{"metadata":{{"phone_number_id":"{PNID}"}},"statuses":[{{"id":"{id}","status":"{s}","timestamp":"{ts}","recipient_id":"5511999"{extra}}}]}}"#
                ),
                "messages",
            )
        };
        for ev in [
            st("w1", "read", T0 + 3, ""),
            st("w1", "sent", T0 + 1, ""),
            st("w1", "delivered", T0 + 2, ""),
        ] {
            assert_eq!(apply_all(&store, &ev).await, vec![Applied::Status]);
        }
        assert_eq!(
            store.delivery("w1").unwrap().current(),
            Some(DeliveryStatus::Read)
        );
        let failed = r#","errors":[{"code":131050,"title":"User stopped marketing"}]"#;
        apply_all(&store, &st("w2", "failed", T0, failed)).await;
        apply_all(&store, &st("w2", "delivered", T0 + 1, "")).await;
        let d = store.delivery("w2").unwrap();
        assert_eq!(d.current(), Some(DeliveryStatus::Failed));
        assert_eq!(d.error, Some((131_050, "User stopped marketing".into())));
        // 131050 records a marketing opt-out for the recipient.
        let c = store
            .consent_of(PNID, &CustomerKey::Phone("5511999".into()), "marketing")
            .unwrap();
        assert_eq!(
            (c.consent, c.source),
            (Consent::OptedOut, ConsentSource::Error131050)
        );
    }

    #[tokio::test]
    async fn user_preferences_stop_and_resume_are_recorded_newest_wins() {
        let store = InMemoryStore::default();
        let pref = |v: &str, ts: i64| {
            webhook(
                &format!(
                    r#"{{"metadata":{{"phone_number_id":"{PNID}"}},"contacts":[{{"wa_id":"5511999","user_id":"BR.42"}}],"user_preferences":[{{"wa_id":"5511999","category":"marketing_messages","value":"{v}","timestamp":{ts}}}]}}"#
                ),
                "user_preferences",
            )
        };
        apply_all(&store, &pref("resume", T0 + 10)).await;
        apply_all(&store, &pref("stop", T0)).await;
        assert_eq!(
            store.consent_of(PNID, &key(), "marketing").unwrap().consent,
            Consent::OptedIn
        );
    }

    #[tokio::test]
    async fn template_and_limit_updates_are_recorded_and_kept() {
        let store = InMemoryStore::default();
        let ev = webhook(
            r#"{"event":"APPROVED","message_template_id":123,"message_template_name":"order_update","message_template_language":"es","reason":"NONE"}"#,
            "message_template_status_update",
        );
        assert_eq!(apply_all(&store, &ev).await, vec![Applied::Account]);
        let t = store
            .account("WABA1", "template#order_update#es#status")
            .unwrap();
        assert!(t.attributes.contains(&("status".into(), "APPROVED".into())));
        assert!(t.attributes.contains(&("template_id".into(), "123".into())));
        let ev = webhook(
            r#"{"display_phone_number":"15550783881","event":"THROUGHPUT_UPGRADE","max_daily_conversations_per_business":"TIER_2K"}"#,
            "phone_number_quality_update",
        );
        apply_all(&store, &ev).await;
        let limit = store.account("WABA1", "messaging_limit").unwrap();
        assert!(
            limit
                .attributes
                .contains(&("tier".into(), "TIER_2K".into()))
        );
        assert_eq!(store.events().len(), 2, "each update is also kept whole");
    }

    #[tokio::test]
    async fn template_webhooks_keep_the_registry_current() {
        use crate::templates::{TemplateCategory, TemplateStatus, TemplateStore};
        let store = InMemoryStore::default();
        let status = |event: &str, at: i64| {
            let body = format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA1","time":{at},"changes":[{{"field":"message_template_status_update","value":{{"event":"{event}","message_template_id":123,"message_template_name":"order_update","message_template_language":"es","message_template_category":"UTILITY","reason":"NONE"}}}}]}}]}}"#
            );
            split(body.as_bytes()).unwrap()
        };
        let get = || async { store.template("WABA1", "order_update", "es").await.unwrap() };
        // Not known: added with the status the webhook gives (not sendable while pending).
        apply_all(&store, &status("PENDING", T0)).await;
        let pending = get().await.unwrap();
        assert_eq!(pending.status, TemplateStatus::Pending);
        assert!(!pending.status.sendable());
        apply_all(&store, &status("APPROVED", T0 + 1)).await;
        let t = get().await.unwrap();
        assert_eq!(
            (
                t.status,
                t.category,
                t.id.as_deref(),
                t.components.is_null()
            ),
            (
                TemplateStatus::Approved,
                TemplateCategory::Utility,
                Some("123"),
                true
            )
        );
        apply_all(&store, &status("PAUSED", T0 + 3)).await;
        // FLAGGED warns without changing the status; a late APPROVED is older news.
        apply_all(&store, &status("FLAGGED", T0 + 4)).await;
        apply_all(&store, &status("APPROVED", T0 + 2)).await;
        assert_eq!(get().await.unwrap().status, TemplateStatus::Paused);
        apply_all(&store, &status("REINSTATED", T0 + 5)).await;
        assert_eq!(get().await.unwrap().status, TemplateStatus::Approved);

        let at = |field: &str, value: &str| {
            let body = format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA1","time":{},"changes":[{{"field":"{field}","value":{value}}}]}}]}}"#,
                T0 + 10
            );
            split(body.as_bytes()).unwrap()
        };
        let cat = at(
            "template_category_update",
            r#"{"message_template_id":123,"message_template_name":"order_update","message_template_language":"es","previous_category":"UTILITY","new_category":"MARKETING"}"#,
        );
        let quality = at(
            "message_template_quality_update",
            r#"{"previous_quality_score":"GREEN","new_quality_score":"RED","message_template_id":123,"message_template_name":"order_update","message_template_language":"es"}"#,
        );
        apply_all(&store, &cat).await;
        apply_all(&store, &quality).await;
        let t = get().await.unwrap();
        assert_eq!(t.category, TemplateCategory::Marketing);
        assert_eq!(t.quality.as_deref(), Some("RED"));
        // The account records are kept as before.
        assert!(
            store
                .account("WABA1", "template#order_update#es#status")
                .is_some()
        );
    }

    #[tokio::test]
    async fn every_event_teaches_the_number_its_account_once() {
        use crate::templates::TemplateStore;
        let store = InMemoryStore::default();
        apply_all(&store, &text("wamid.a", T0, "hola", "")).await;
        apply_all(&store, &text("wamid.b", T0 + 1, "otra", "")).await;
        assert_eq!(store.waba_of(PNID).await.unwrap().as_deref(), Some("WABA1"));
        assert_eq!(store.number_writes(), 1);
    }

    #[tokio::test]
    async fn unknown_fields_errors_and_unparseable_items_are_kept_not_dropped() {
        let store = InMemoryStore::default();
        let mut events = webhook(r#"{"brand_new":true}"#, "brand_new_field");
        events.extend(webhook(
            r#"{"metadata":{"phone_number_id":"PN1"},"errors":[{"code":131000}]}"#,
            "messages",
        ));
        events.extend(webhook(
            r#"{"metadata":{"phone_number_id":"PN1"},"messages":[{"type":"text"}]}"#,
            "messages",
        ));
        events.extend(webhook(r#"{"metadata":{"phone_number_id":"PN1"},"statuses":[{"id":"c1","status":"RINGING","timestamp":"1","type":"call"}]}"#, "calls"));
        assert_eq!(apply_all(&store, &events).await, vec![Applied::Kept; 4]);
        assert_eq!(store.events().len(), 4);
        assert_eq!(apply_all(&store, &events).await, vec![Applied::Kept; 4]);
        assert_eq!(store.events().len(), 4, "kept once");
    }

    #[tokio::test]
    async fn system_messages_do_not_open_the_window_and_a_number_change_adds_an_alias() {
        let store = InMemoryStore::default();
        apply_all(&store, &text("wamid.1", T0 - 100, "hi", "")).await;
        let ev = webhook(
            &format!(
                r#"{{"metadata":{{"phone_number_id":"{PNID}"}},"messages":[{{"from":"5511999","from_user_id":"BR.42","id":"wamid.sys","timestamp":"{T0}","type":"system","system":{{"body":"changed","type":"user_changed_number","wa_id":"5511888"}}}}]}}"#
            ),
            "messages",
        );
        apply_all(&store, &ev).await;
        assert_eq!(
            store.window_of(PNID, &key()).unwrap().last_inbound_at,
            Some(T0 - 100)
        );
        let new_phone = CustomerRef::new(None, Some("5511888")).unwrap();
        assert_eq!(
            store.resolve_customer(PNID, &new_phone).await.unwrap(),
            key()
        );
    }

    #[tokio::test]
    async fn a_changed_bsuid_takes_the_old_ones_opt_out_and_window_and_the_phone_follows_it() {
        let store = InMemoryStore::default();
        // BR.42 wrote (its phone became its alias) and opted out of marketing.
        apply_all(&store, &text("wamid.1", T0 - 100, "hi", "")).await;
        store
            .record_consent(&ConsentRecord {
                phone_number_id: PNID.into(),
                customer: key(),
                scope: "marketing".into(),
                consent: Consent::OptedOut,
                source: ConsentSource::Api,
                at: T0 - 50,
                detail: None,
            })
            .await
            .unwrap();
        let ev = webhook(
            &format!(
                r#"{{"metadata":{{"phone_number_id":"{PNID}"}},"contacts":[{{"wa_id":"5511999","user_id":"BR.77"}}],"messages":[{{"from":"5511999","from_user_id":"BR.77","id":"wamid.uid","timestamp":"{T0}","type":"system","system":{{"body":"changed","type":"user_changed_user_id","user_id":"BR.77","previous_user_id":"BR.42"}}}}]}}"#
            ),
            "messages",
        );
        let new = CustomerKey::Bsuid("BR.77".into());
        for _ in 0..2 {
            // Redelivered, the same.
            apply_all(&store, &ev).await;
            let c = store.consent_of(PNID, &new, "marketing").unwrap();
            assert_eq!((c.consent, c.at), (Consent::OptedOut, T0 - 50));
            assert_eq!(
                store.window_of(PNID, &new).unwrap().last_inbound_at,
                Some(T0 - 100)
            );
            let by_phone = CustomerRef::new(None, Some("5511999")).unwrap();
            assert_eq!(store.resolve_customer(PNID, &by_phone).await.unwrap(), new);
        }
        // The old BSUID keeps its own records.
        assert!(store.consent_of(PNID, &key(), "marketing").is_some());
    }

    #[tokio::test]
    async fn a_message_without_a_phone_number_is_recorded_under_its_bsuid() {
        let store = InMemoryStore::default();
        let ev = webhook(
            &format!(
                r#"{{"metadata":{{"phone_number_id":"{PNID}"}},"contacts":[{{"user_id":"BR.42","profile":{{"username":"@ana"}}}}],"messages":[{{"from_user_id":"BR.42","id":"wamid.np","timestamp":"{T0}","type":"text","text":{{"body":"x"}}}}]}}"#
            ),
            "messages",
        );
        assert_eq!(apply_all(&store, &ev).await, vec![Applied::NewMessage]);
        assert_eq!(store.message("wamid.np").unwrap().customer, key());
        assert!(store.window_of(PNID, &key()).is_some());
    }

    #[tokio::test]
    async fn history_items_carry_a_ttl_from_the_retention() {
        let store = InMemoryStore::default();
        apply_all(&store, &text("wamid.ttl", T0, "x", "")).await;
        assert_eq!(
            store.message("wamid.ttl").unwrap().expires_at,
            T0 + 10 + 90 * 86_400
        );
    }
}
