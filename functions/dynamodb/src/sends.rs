//! [`SendStore`]: sends and their idempotency keys (see the crate docs for the items).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use wa_domain::customer::CustomerKey;
use wa_domain::outbound::{Idempotency, SendId, SendRecord, SendState};
use wa_domain::ports::{ConsentRecord, Created, SendStore, StoreError};
use wa_domain::status::DeliveryStatus;

use crate::DynamoStore;
use crate::attr::{Item, conditional, n, opt_s, req_n, req_s, s, unavailable};
use crate::inbound::{status_attr, statuses_of};
use crate::keys::*;
use crate::reader::{SortKeys, consent_from};

/// The attribute of a send item holding its wamid (beside the doc), once it has one.
pub(crate) const SEND_WAMID: &str = "wamid";

/// Attribute names of send and idempotency items.
mod att {
    pub(super) const DOC: &str = "doc";
    pub(super) const VERSION: &str = "version";
    pub(super) const STATE: &str = "state";
    pub(super) const PNID: &str = "pnid";
    pub(super) const SEND_ID: &str = "send_id";
    pub(super) const EXPIRES_AT: &str = "expires_at";
    pub(super) const WAMID: &str = super::SEND_WAMID;
    pub(super) const PRICING: &str = "pricing";
}

/// A broadcast send's row position in its list, outside the doc too: the planner reads just
/// this (a projection) to tell whether a customer's send was made by another row.
pub(crate) const BROADCAST_INDEX: &str = "bindex";

/// DynamoDB's item size limit (names and values, UTF-8).
const ITEM_LIMIT: usize = 400 * 1024;

/// The DynamoDB code of a failed condition in a transaction's cancellation reasons.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";

fn version_value(version: u64) -> AttributeValue {
    AttributeValue::N(version.to_string())
}

/// The size DynamoDB counts for an item, near enough (numbers at most 21 bytes).
fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, v)| {
            name.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(_) => 21,
                    _ => 1,
                }
        })
        .sum()
}

/// The send item of `r`, stored at `version` (the doc says the same version).
pub(crate) fn send_item(r: &SendRecord, version: u64) -> Result<Item, StoreError> {
    let id = r.id.as_str();
    let doc = serde_json::to_string(&SendRecord {
        version,
        ..r.clone()
    })
    .map_err(|e| StoreError::Corrupt(format!("send {id} cannot be encoded: {e}")))?;
    let mut item = key(send_pk(id), SEND_SK);
    item.extend([
        (att::DOC.to_owned(), s(doc)),
        (att::VERSION.to_owned(), version_value(version)),
        (att::STATE.to_owned(), s(r.state.name())),
        (att::PNID.to_owned(), s(&r.phone_number_id)),
        (TTL.to_owned(), n(r.expires_at)),
    ]);
    // No `gsi1` keys: with the index's projection ALL, each of a send's writes (create, claim,
    // outcome, statuses) would write its index entry too, doubling its write units, and
    // nothing reads sends by number. A send saved over one written with them leaves the index.
    // The wamid and the statuses outside the doc too, for `add_status`'s condition (so a
    // replayed status is refused there, and writes nothing).
    if let Some(w) = &r.wamid {
        item.insert(att::WAMID.to_owned(), s(w));
    }
    if let Some(i) = r.broadcast_index {
        item.insert(BROADCAST_INDEX.to_owned(), AttributeValue::N(i.to_string()));
    }
    // Beside the doc too, where `add_status` keeps it (first wins).
    if let Some(p) = &r.pricing {
        item.insert(att::PRICING.to_owned(), s(p));
    }
    for (status, at) in r.statuses.entries() {
        item.insert(status_attr(status), n(at));
    }
    let size = item_size(&item);
    if size > ITEM_LIMIT {
        // Refused here, with a reason, rather than by DynamoDB as an opaque validation error.
        return Err(StoreError::Corrupt(format!(
            "send {id} is {size} bytes, over DynamoDB's 400 KB item limit"
        )));
    }
    Ok(item)
}

/// Reads a send item; the `version` attribute is the one that counts.
pub(crate) fn send_from(item: &Item) -> Result<SendRecord, StoreError> {
    let doc = req_s(item, att::DOC)?;
    let mut r: SendRecord = serde_json::from_str(doc).map_err(|e| {
        // Position and category only: serde's message may quote the message body.
        StoreError::Corrupt(format!(
            "send doc unreadable ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    r.version = u64::try_from(req_n(item, att::VERSION)?)
        .map_err(|_| StoreError::Corrupt(format!("send {} has a negative version", r.id)))?;
    // Statuses (and the pricing) `add_status` wrote beside the doc since the last save.
    for (status, at) in statuses_of(item)?.entries() {
        r.statuses.record(status, at);
    }
    if r.pricing.is_none() {
        r.pricing = opt_s(item, att::PRICING)?.map(str::to_owned);
    }
    Ok(r)
}

/// The idempotency item of a key held by send `id`.
fn idem_item(i: &Idempotency, id: &SendId) -> Item {
    let mut item = key(idem_pk(&i.key_hash), IDEM_SK);
    item.extend([
        (att::SEND_ID.to_owned(), s(id.as_str())),
        (att::EXPIRES_AT.to_owned(), n(i.expires_at)),
        (TTL.to_owned(), n(i.expires_at)),
    ]);
    item
}

/// Which of the transaction's conditions failed.
#[derive(Debug, Default)]
struct Cancelled {
    /// The send's id is taken.
    send: bool,
    /// The idempotency key is held; the holder's item if DynamoDB returned it.
    idem: Option<Option<Item>>,
}

impl DynamoStore {
    /// Puts a new send item; `Ok(false)` if the id is taken.
    pub(crate) async fn put_new(&self, item: Item) -> Result<bool, StoreError> {
        self.put_if(item, "attribute_not_exists(pk)", [], []).await
    }

    /// Writes the send and claims its key in one transaction. `stale` is a holder whose send
    /// is gone: the key is taken over from it too. `Ok(None)` when written.
    async fn put_with_key(
        &self,
        send: Item,
        r: &SendRecord,
        i: &Idempotency,
        now_secs: i64,
        stale: Option<&str>,
    ) -> Result<Option<Cancelled>, StoreError> {
        let put_send = Put::builder()
            .table_name(&self.table)
            .set_item(Some(send))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        // Held while `expires_at > now`, as `find_idempotent` reads it.
        let mut condition = "attribute_not_exists(pk) OR #exp <= :now".to_owned();
        let mut values = HashMap::from([(":now".to_owned(), n(now_secs))]);
        if let Some(holder) = stale {
            condition.push_str(" OR #sid = :stale");
            values.insert(":stale".to_owned(), s(holder));
        }
        let mut names = HashMap::from([("#exp".to_owned(), att::EXPIRES_AT.to_owned())]);
        if stale.is_some() {
            names.insert("#sid".to_owned(), att::SEND_ID.to_owned());
        }
        let put_idem = Put::builder()
            .table_name(&self.table)
            .set_item(Some(idem_item(i, &r.id)))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            // The holder comes back with the refusal: no read needed to name it.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(unavailable)?;
        // The token makes the SDK's own retries of this request harmless (a retry of a
        // transaction that did commit is not refused); the takeover is another request.
        let token = match stale {
            None => r.id.as_str().to_owned(),
            Some(_) => format!("{}.1", r.id),
        };
        self.metrics.write();
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_send).build())
            .transact_items(TransactWriteItem::builder().put(put_idem).build())
            .client_request_token(token)
            .send()
            .await;
        match out {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    let reasons = c.cancellation_reasons();
                    let failed = |i: usize| {
                        reasons
                            .get(i)
                            .and_then(|r| r.code())
                            .is_some_and(|code| code == CONDITION_FAILED)
                    };
                    let cancelled = Cancelled {
                        send: failed(0),
                        idem: failed(1).then(|| reasons.get(1).and_then(|r| r.item().cloned())),
                    };
                    if !cancelled.send && cancelled.idem.is_none() {
                        // Cancelled for another reason (a conflicting transaction, throttling).
                        return Err(unavailable(c));
                    }
                    Ok(Some(cancelled))
                }
                other => Err(unavailable(other)),
            },
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The idempotency item of a key (strongly consistent).
    async fn idem(&self, key_hash: &str) -> Result<Option<Item>, StoreError> {
        self.get(key(idem_pk(key_hash), IDEM_SK), true).await
    }

    /// A refused create of `r` whose id is taken: a retry of the same create (the stored
    /// send is `r`) succeeded after all; anything else is a collision.
    async fn created_already(&self, r: &SendRecord) -> Result<Created, StoreError> {
        match self.get_send(&r.id).await? {
            Some(stored)
                if stored
                    == SendRecord {
                        version: 1,
                        ..r.clone()
                    } =>
            {
                Ok(Created::New)
            }
            _ => Err(StoreError::Corrupt(format!(
                "send id {} collides with a stored send",
                r.id
            ))),
        }
    }
}

impl SendStore for DynamoStore {
    async fn create_send(&self, r: &SendRecord, now_secs: i64) -> Result<Created, StoreError> {
        let item = send_item(r, 1)?;
        let Some(i) = &r.idempotency else {
            return if self.put_new(item).await? {
                Ok(Created::New)
            } else {
                self.created_already(r).await
            };
        };
        let mut stale: Option<String> = None;
        // At most twice: once, and once more taking over a key whose send is gone.
        for _ in 0..2 {
            let Some(cancelled) = self
                .put_with_key(item.clone(), r, i, now_secs, stale.as_deref())
                .await?
            else {
                return Ok(Created::New);
            };
            if cancelled.send {
                return self.created_already(r).await;
            }
            let holder = match cancelled.idem.flatten() {
                Some(item) => Some(item),
                None => self.idem(&i.key_hash).await?,
            };
            // Released between the refusal and the read (expired items are only deleted
            // by TTL, so this is rare): try again as if new.
            let Some(holder) = holder else {
                continue;
            };
            let holder_id = req_s(&holder, att::SEND_ID)?;
            let send = SendId::parse(holder_id).ok_or_else(|| {
                StoreError::Corrupt(format!("idempotency key held by {holder_id:?}"))
            })?;
            match self.get_send(&send).await? {
                Some(existing) => return Ok(Created::Exists(Box::new(existing))),
                // Its send expired or was deleted: the key is free to take.
                None => stale = Some(holder_id.to_owned()),
            }
        }
        Err(StoreError::Corrupt(format!(
            "idempotency key of send {} could not be claimed",
            r.id
        )))
    }

    async fn get_send(&self, id: &SendId) -> Result<Option<SendRecord>, StoreError> {
        let Some(item) = self.get(key(send_pk(id.as_str()), SEND_SK), true).await? else {
            return Ok(None);
        };
        let mut r = send_from(&item)?;
        if let Some(w) = &r.wamid
            && let Some(m) = self.get(key(msg_pk(w), MSG_SK), true).await?
        {
            // The receipts on its history record: those that came before the send was
            // accepted, replays, and all of them from before receipts went to the send
            // itself (`add_status`).
            r.statuses.add_receipts(&statuses_of(&m)?);
        }
        Ok(Some(r))
    }

    async fn find_idempotent(
        &self,
        key_hash: &str,
        now_secs: i64,
    ) -> Result<Option<SendRecord>, StoreError> {
        let Some(item) = self.idem(key_hash).await? else {
            return Ok(None);
        };
        // TTL deletes expired items days late: the expiry is checked here.
        if req_n(&item, att::EXPIRES_AT)? <= now_secs {
            return Ok(None);
        }
        let Some(id) = opt_s(&item, att::SEND_ID)?.and_then(SendId::parse) else {
            return Err(StoreError::Corrupt(
                "idempotency key without a send id".into(),
            ));
        };
        self.get_send(&id).await
    }

    async fn save_send(&self, r: &mut SendRecord) -> Result<bool, StoreError> {
        let next = r.version + 1;
        let item = send_item(r, next)?;
        self.metrics.write();
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", att::VERSION)
            .expression_attribute_values(":v", version_value(r.version))
            .send()
            .await;
        let saved = conditional(out)?;
        if saved {
            r.version = next;
        }
        Ok(saved)
    }

    async fn add_status(
        &self,
        id: &SendId,
        wamid: &str,
        status: DeliveryStatus,
        at_secs: i64,
        pricing: Option<&str>,
    ) -> Result<bool, StoreError> {
        if status == DeliveryStatus::Failed {
            return Ok(false);
        }
        self.metrics.write();
        // The version moves on: a save over a read from before this write is refused,
        // re-reads, and so keeps the status (and the pricing, which `send_from` reads).
        let (set, pricing) = match pricing {
            Some(p) => (
                "SET #st = :at, #v = #v + :one, #pr = if_not_exists(#pr, :pr)",
                Some(s(p)),
            ),
            None => ("SET #st = :at, #v = #v + :one", None),
        };
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(send_pk(id.as_str()), SEND_SK)))
            .update_expression(set);
        let update = match pricing {
            Some(p) => update
                .expression_attribute_names("#pr", att::PRICING)
                .expression_attribute_values(":pr", p),
            None => update,
        };
        let out = update
            .condition_expression(
                "#state = :accepted AND #wamid = :wamid AND (attribute_not_exists(#st) OR #st > :at)",
            )
            .expression_attribute_names("#st", status_attr(status))
            .expression_attribute_names("#v", att::VERSION)
            .expression_attribute_names("#state", att::STATE)
            .expression_attribute_names("#wamid", att::WAMID)
            .expression_attribute_values(":at", n(at_secs))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(
                ":accepted",
                s(SendState::Accepted {
                    at_ms: 0,
                    by_webhook: false,
                }
                .name()),
            )
            .expression_attribute_values(":wamid", s(wamid))
            .send()
            .await;
        conditional(out)
    }

    async fn consents(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
    ) -> Result<Vec<ConsentRecord>, StoreError> {
        let pk = conv_pk(phone_number_id, customer);
        // Consistent: send-api must see an opt-out processed a moment ago.
        self.query_partition(&pk, SortKeys::Prefix(&consent_sk("")), true)
            .await?
            .iter()
            .map(|item| consent_from(item, phone_number_id, customer))
            .collect()
    }
}
