//! [`ApiKeyStore`]: API keys by hash.

use aws_sdk_dynamodb::types::AttributeValue;
use wa_domain::ports::{ApiKeyStore, KeyScope, StoreError};

use crate::DynamoStore;
use crate::attr::{Update, conditional, flag, n, opt_s, s, unavailable};
use crate::keys::*;

const SCOPE: &str = "scope";
const NUMBERS: &str = "numbers";
const REVOKED: &str = "revoked";
const ANY_NUMBER: &str = "*";

impl DynamoStore {
    /// Revokes the key with this hash; `Ok(false)` if there is no such key.
    pub async fn revoke_key(&self, key_hash: &str) -> Result<bool, StoreError> {
        let mut u = Update::default();
        u.set(REVOKED, AttributeValue::Bool(true));
        let (expr, names, values) = u.finish();
        self.metrics.write();
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(apikey_pk(key_hash), APIKEY_SK)))
            .update_expression(expr)
            .condition_expression("attribute_exists(pk)")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional(r)
    }
}

impl ApiKeyStore for DynamoStore {
    async fn find_key(&self, key_hash: &str) -> Result<Option<KeyScope>, StoreError> {
        // Eventually consistent (half price, on every API request): a new or revoked key
        // takes effect within about a second.
        let Some(item) = self.get(key(apikey_pk(key_hash), APIKEY_SK), false).await? else {
            return Ok(None);
        };
        if flag(&item, REVOKED)? {
            return Ok(None);
        }
        if opt_s(&item, SCOPE)? == Some(ANY_NUMBER) {
            return Ok(Some(KeyScope::AnyNumber));
        }
        match item.get(NUMBERS) {
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|v| match v {
                    AttributeValue::S(n) => Ok(n.clone()),
                    _ => Err(StoreError::Corrupt("API key number is not a string".into())),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|numbers| Some(KeyScope::Numbers(numbers))),
            _ => Err(StoreError::Corrupt("API key without a scope".into())),
        }
    }

    async fn put_key(
        &self,
        key_hash: &str,
        scope: &KeyScope,
        label: &str,
    ) -> Result<(), StoreError> {
        let created_at = wa_domain::clock::unix_now();
        let mut item = key(apikey_pk(key_hash), APIKEY_SK);
        item.extend([
            ("label".into(), s(label)),
            ("created_at".into(), n(created_at)),
        ]);
        match scope {
            KeyScope::AnyNumber => {
                item.insert(SCOPE.into(), s(ANY_NUMBER));
            }
            KeyScope::Numbers(numbers) => {
                item.insert(
                    NUMBERS.into(),
                    AttributeValue::L(numbers.iter().map(s).collect()),
                );
            }
        }
        self.metrics.write();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
