//! The template registry ([`TemplateStore`]).
//!
//! | what | `pk` | `sk` | written with |
//! |---|---|---|---|
//! | template | `WABA#{waba_id}` | `TEMPLATE#{name}#{language}` | PutItem, `at` (= `updated_at`) newest-wins; the whole [`TemplateDef`] as JSON in `doc`, plus `name`, `language`, `status`, `category` for people |
//! | last whole sync | `WABA#{waba_id}` | `TEMPLATES_SYNCED` | PutItem, `at` newest-wins |
//! | number's account | `NUMBER#{pnid}` | `WABA` | PutItem `attribute_not_exists(pk) OR waba_id <> :w`, at most once per process and number |
//!
//! Templates live in their account's partition next to its account records: one Query lists
//! them in name then language order (`#` sorts before `_` and every letter and digit, the only
//! characters a name may have). An account has at most 6,000 templates and they change at
//! human speed, so the partition is never hot. Reads are eventually consistent (half a read
//! unit): a template approved a second ago may be seen a second late. Every webhook event
//! remembers its number's account, so [`TemplateStore::remember_number`] keeps a per-process
//! set of what it already wrote: the steady state costs no request at all.

use aws_sdk_dynamodb::types::AttributeValue;
use wa_domain::ports::StoreError;
use wa_domain::templates::{TemplateDef, TemplateStore};

use crate::DynamoStore;
use crate::attr::{Item, n, opt_n, req_s, s};
use crate::inbound::AT;
use crate::keys::{PK, account_pk, key};
use crate::reader::SortKeys;

const TEMPLATE_PREFIX: &str = "TEMPLATE#";
const SYNCED_SK: &str = "TEMPLATES_SYNCED";
const NUMBER_SK: &str = "WABA";
const DOC: &str = "doc";
const WABA_ID: &str = "waba_id";

fn template_sk(name: &str, language: &str) -> String {
    format!("{TEMPLATE_PREFIX}{name}#{language}")
}

fn number_pk(pnid: &str) -> String {
    format!("NUMBER#{pnid}")
}

fn from_item(item: &Item) -> Result<TemplateDef, StoreError> {
    serde_json::from_str(req_s(item, DOC)?)
        .map_err(|e| StoreError::Corrupt(format!("template document: {e}")))
}

impl TemplateStore for DynamoStore {
    async fn template(
        &self,
        waba_id: &str,
        name: &str,
        language: &str,
    ) -> Result<Option<TemplateDef>, StoreError> {
        let k = key(account_pk(waba_id), &template_sk(name, language));
        self.get(k, false)
            .await?
            .as_ref()
            .map(from_item)
            .transpose()
    }

    async fn put_template(&self, t: &TemplateDef) -> Result<(), StoreError> {
        let doc = serde_json::to_string(t)
            .map_err(|e| StoreError::Corrupt(format!("template document: {e}")))?;
        let mut item = key(account_pk(&t.waba_id), &template_sk(&t.name, &t.language));
        item.extend([
            (DOC.into(), s(doc)),
            (AT.into(), n(t.updated_at)),
            ("name".into(), s(&t.name)),
            ("language".into(), s(&t.language)),
            ("status".into(), s(t.status.as_str())),
            ("category".into(), s(t.category.as_str())),
        ]);
        self.put_if(
            item,
            "attribute_not_exists(#at) OR #at <= :at",
            [("#at".to_owned(), AT.to_owned())],
            [(":at".to_owned(), n(t.updated_at))],
        )
        .await
        .map(|_| ())
    }

    async fn templates(&self, waba_id: &str) -> Result<Vec<TemplateDef>, StoreError> {
        self.query_partition(
            &account_pk(waba_id),
            SortKeys::Prefix(TEMPLATE_PREFIX),
            false,
        )
        .await?
        .iter()
        .map(from_item)
        .collect()
    }

    async fn waba_of(&self, phone_number_id: &str) -> Result<Option<String>, StoreError> {
        let item = self
            .get(key(number_pk(phone_number_id), NUMBER_SK), false)
            .await?;
        item.as_ref()
            .map(|i| req_s(i, WABA_ID).map(str::to_owned))
            .transpose()
    }

    async fn remember_number(
        &self,
        phone_number_id: &str,
        waba_id: &str,
    ) -> Result<(), StoreError> {
        if self.known_numbers(|m| m.get(phone_number_id).map(String::as_str) == Some(waba_id)) {
            return Ok(());
        }
        let mut item = key(number_pk(phone_number_id), NUMBER_SK);
        item.insert(WABA_ID.into(), s(waba_id));
        item.insert("pnid".into(), s(phone_number_id));
        // Written when new or changed; an unchanged mapping fails the condition (no change).
        self.put_if(
            item,
            "attribute_not_exists(#pk) OR #w <> :w",
            [
                ("#pk".to_owned(), PK.to_owned()),
                ("#w".to_owned(), WABA_ID.to_owned()),
            ],
            [(":w".to_owned(), s(waba_id))],
        )
        .await?;
        self.known_numbers(|m| {
            m.insert(phone_number_id.to_owned(), waba_id.to_owned());
            true
        });
        Ok(())
    }

    async fn mark_synced(&self, waba_id: &str, at: i64) -> Result<(), StoreError> {
        let mut item = key(account_pk(waba_id), SYNCED_SK);
        item.insert(AT.into(), n(at));
        self.put_if(
            item,
            "attribute_not_exists(#at) OR #at <= :at",
            [("#at".to_owned(), AT.to_owned())],
            [(":at".to_owned(), AttributeValue::N(at.to_string()))],
        )
        .await
        .map(|_| ())
    }

    async fn synced_at(&self, waba_id: &str) -> Result<Option<i64>, StoreError> {
        match self.get(key(account_pk(waba_id), SYNCED_SK), false).await? {
            Some(item) => opt_n(&item, AT),
            None => Ok(None),
        }
    }
}
