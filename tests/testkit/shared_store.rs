//! One store shared by several engines in one process: [`SharedStore`] hands the store ports
//! through an `Arc`, so that two `Deliverer`s (two "workers") read and write the same
//! `wa_domain::testing::InMemoryStore`, as two Lambda processes share one DynamoDB table.

use std::future::Future;
use std::sync::Arc;

use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::outbound::{SendId, SendRecord};
use wa_domain::ports::{
    AccountRecord, ApiKeyStore, ConsentRecord, ConversationReader, Created, EventRecord,
    HistoryPage, InboundStore, KeyScope, MessageRecord, Recorded, SendStore, StatusRecord,
    StoreError,
};
use wa_domain::window::{Window, WindowUpdate};

/// A store behind an `Arc`, implementing every store port by delegation.
#[derive(Debug, Default)]
pub struct SharedStore<T>(pub Arc<T>);

impl<T> Clone for SharedStore<T> {
    fn clone(&self) -> Self {
        SharedStore(Arc::clone(&self.0))
    }
}

impl<T> SharedStore<T> {
    /// Shares `store`.
    pub fn new(store: T) -> Self {
        SharedStore(Arc::new(store))
    }

    /// The store.
    pub fn inner(&self) -> &T {
        &self.0
    }
}

impl<T: InboundStore> InboundStore for SharedStore<T> {
    fn resolve_customer(
        &self,
        phone_number_id: &str,
        who: &CustomerRef,
    ) -> impl Future<Output = Result<CustomerKey, StoreError>> + Send {
        self.0.resolve_customer(phone_number_id, who)
    }

    fn change_customer(
        &self,
        phone_number_id: &str,
        from: &CustomerKey,
        to: &CustomerKey,
        who: &CustomerRef,
        phone: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0
            .change_customer(phone_number_id, from, to, who, phone)
    }

    fn record_message(
        &self,
        m: &MessageRecord,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send {
        self.0.record_message(m)
    }

    fn advance_window(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        who: &CustomerRef,
        update: &WindowUpdate,
        profile_name: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0
            .advance_window(phone_number_id, customer, who, update, profile_name)
    }

    fn apply_status(
        &self,
        s: &StatusRecord,
    ) -> impl Future<Output = Result<Option<SendId>, StoreError>> + Send {
        self.0.apply_status(s)
    }

    fn record_consent(
        &self,
        c: &ConsentRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.record_consent(c)
    }

    fn record_account(
        &self,
        a: &AccountRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.record_account(a)
    }

    fn record_event(
        &self,
        e: &EventRecord,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send {
        self.0.record_event(e)
    }
}

impl<T: ConversationReader> ConversationReader for SharedStore<T> {
    fn lookup_customer(
        &self,
        phone_number_id: &str,
        asked: &CustomerKey,
    ) -> impl Future<Output = Result<CustomerKey, StoreError>> + Send {
        self.0.lookup_customer(phone_number_id, asked)
    }

    fn window(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
    ) -> impl Future<Output = Result<Option<(Window, CustomerRef)>, StoreError>> + Send {
        self.0.window(phone_number_id, customer)
    }

    fn history(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        limit: usize,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<HistoryPage, StoreError>> + Send {
        self.0.history(phone_number_id, customer, limit, cursor)
    }
}

impl<T: SendStore> SendStore for SharedStore<T> {
    fn create_send(
        &self,
        r: &SendRecord,
        now_secs: i64,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send {
        self.0.create_send(r, now_secs)
    }

    fn get_send(
        &self,
        id: &SendId,
    ) -> impl Future<Output = Result<Option<SendRecord>, StoreError>> + Send {
        self.0.get_send(id)
    }

    fn find_idempotent(
        &self,
        key_hash: &str,
        now_secs: i64,
    ) -> impl Future<Output = Result<Option<SendRecord>, StoreError>> + Send {
        self.0.find_idempotent(key_hash, now_secs)
    }

    fn save_send(
        &self,
        r: &mut SendRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.0.save_send(r)
    }

    fn consents(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
    ) -> impl Future<Output = Result<Vec<ConsentRecord>, StoreError>> + Send {
        self.0.consents(phone_number_id, customer)
    }
}

impl<T: ApiKeyStore> ApiKeyStore for SharedStore<T> {
    fn find_key(
        &self,
        key_hash: &str,
    ) -> impl Future<Output = Result<Option<KeyScope>, StoreError>> + Send {
        self.0.find_key(key_hash)
    }

    fn put_key(
        &self,
        key_hash: &str,
        scope: &KeyScope,
        label: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.put_key(key_hash, scope, label)
    }
}

impl<T: wa_domain::templates::TemplateStore> wa_domain::templates::TemplateStore
    for SharedStore<T>
{
    fn template(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
    ) -> impl Future<Output = Result<Option<wa_domain::templates::TemplateDef>, StoreError>> + Send
    {
        self.0.template(waba_id, name, language)
    }

    fn put_template(
        &self,
        t: &wa_domain::templates::TemplateDef,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.put_template(t)
    }

    fn templates(
        &self,
        waba_id: &str,
    ) -> impl Future<Output = Result<Vec<wa_domain::templates::TemplateDef>, StoreError>> + Send
    {
        self.0.templates(waba_id)
    }

    fn waba_of(
        &self,
        phone_number_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        self.0.waba_of(phone_number_id)
    }

    fn remember_number(
        &self,
        phone_number_id: &str,
        waba_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.remember_number(phone_number_id, waba_id)
    }

    fn mark_synced(
        &self,
        waba_id: &str,
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.mark_synced(waba_id, at)
    }

    fn synced_at(
        &self,
        waba_id: &str,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send {
        self.0.synced_at(waba_id)
    }
}

impl<T: wa_domain::broadcast::LimitStore> wa_domain::broadcast::LimitStore for SharedStore<T> {
    fn tier(
        &self,
        portfolio: &str,
    ) -> impl Future<Output = Result<Option<wa_domain::model::MessagingLimit>, StoreError>> + Send
    {
        self.0.tier(portfolio)
    }

    fn charged_since(
        &self,
        portfolio: &str,
        customers: &[String],
        since: i64,
    ) -> impl Future<Output = Result<std::collections::HashMap<String, i64>, StoreError>> + Send
    {
        self.0.charged_since(portfolio, customers, since)
    }

    fn adjust_buckets(
        &self,
        portfolio: &str,
        deltas: &[(i64, i64)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.adjust_buckets(portfolio, deltas)
    }

    fn reserve(
        &self,
        portfolio: &str,
        want: u64,
        limit: u64,
        now: i64,
    ) -> impl Future<Output = Result<(u64, Option<i64>), StoreError>> + Send {
        self.0.reserve(portfolio, want, limit, now)
    }

    fn record_charges(
        &self,
        portfolio: &str,
        customers: &[String],
        at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.0.record_charges(portfolio, customers, at)
    }
}
