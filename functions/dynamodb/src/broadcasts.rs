//! [`BroadcastStore`] and [`LimitStore`]: broadcast jobs, their ledgers, recipient claims and
//! the messaging-limit items.
//!
//! | what | `pk` | `sk` | written with |
//! |---|---|---|---|
//! | broadcast | `BCAST#{id}` | `BCAST` (+ `gsi1`: `BCASTS#{pnid}` / `{created_ms:013}#{id}`) | PutItem `attribute_not_exists(pk)` to create, `version = :read` to save; `doc` = the job as JSON; `ttl` |
//! | ledger chunk | `BCASTL#{id}#{index / 1,000}` | `{first index:010}` | up to 100 entries of one page of 100 positions in one item, read-merged-written whole (see `ledger.rs`) |
//! | broadcast send | `SEND#{send id}` | `SEND` | a send item (`sends.rs`), its id derived from the broadcast and the customer; `bindex`: the list position of the row that made it, read alone (BatchGetItem, projection) to find a customer's earlier row |
//! | number's queue time | `NUMBER#{pnid}` | `QUEUED` | `until_ms`: UpdateItem `ADD` the page's time if not behind now, else `SET` to now + the page's time (absent or behind): one write while the queue runs; shared by the number's broadcasts to pace them together |
//! | limit charge | `LIMIT#{portfolio}#{customer}` | `CHARGE` | BatchWriteItem; `at`; `ttl` = at + 25 h |
//! | limit bucket | `LIMIT#{portfolio}` | `H#{hour start:010}` | one Query of the last 25 buckets, then UpdateItem `ADD n` on the current one if it stays ≤ limit − the others; `ttl` = hour + 26 h |
//!
//! The ledger is packed: see `ledger.rs` for its layout and why.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, PutRequest, ReturnValue, WriteRequest,
};
use wa_domain::broadcast::limit::{BUCKET_SECS, WINDOW_SECS, counted_buckets, grant};
use wa_domain::broadcast::{
    Audience, Broadcast, BroadcastId, BroadcastStore, LedgerEntry, LimitStore,
};
use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::model::MessagingLimit;
use wa_domain::outbound::{SendId, SendRecord};
use wa_domain::ports::{ConsentRecord, Recorded, StoreError};
use wa_domain::window::Window;

use crate::DynamoStore;
use crate::attr::{Item, conditional, n, opt_n, opt_s, req_n, req_s, s, unavailable};
use crate::inbound::statuses_of;
use crate::inbound::{ALIAS_CUSTOMER, win};
use crate::keys::*;
use crate::reader::{SortKeys, consent_from};
use crate::sends::{BROADCAST_INDEX, send_from, send_item};

const DOC: &str = "doc";
const VERSION: &str = "version";
const COUNT: &str = "count";
const BCAST_SK: &str = "BCAST";
const CHARGE_SK: &str = "CHARGE";
const QUEUED_SK: &str = "QUEUED";
const QUEUED_UNTIL: &str = "until_ms";
/// BatchGetItem's limit.
const GET_BATCH: usize = 100;
/// BatchWriteItem's limit.
pub(crate) const PUT_BATCH: usize = 25;
/// Conditional send puts in flight at once.
const PUTS_IN_FLIGHT: usize = 16;
/// Batch requests of one call in flight at once (a page's chunks go out together rather
/// than one after the other).
const IN_FLIGHT: usize = 8;

fn bcast_pk(id: &BroadcastId) -> String {
    format!("BCAST#{id}")
}

/// An `Idempotency-Key` of `POST /v1/broadcasts` (its hash): which broadcast holds it.
fn creation_pk(key: &str) -> String {
    format!("BCASTK#{key}")
}

const CREATION_SK: &str = "BCASTK";

fn charge_pk(portfolio: &str, customer: &str) -> String {
    format!("LIMIT#{portfolio}#{customer}")
}

fn limit_pk(portfolio: &str) -> String {
    format!("LIMIT#{portfolio}")
}

fn bucket_sk(bucket: i64) -> String {
    format!("H#{bucket:010}")
}

pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

pub(crate) fn encode_error(e: serde_json::Error) -> StoreError {
    corrupt(format!("cannot encode: {e}"))
}

pub(crate) fn encoded(r: serde_json::Result<String>) -> Result<AttributeValue, StoreError> {
    r.map(s).map_err(encode_error)
}

fn broadcast_from(item: &Item) -> Result<Broadcast, StoreError> {
    serde_json::from_str(req_s(item, DOC)?).map_err(doc_error)
}

pub(crate) fn doc_error(e: serde_json::Error) -> StoreError {
    {
        corrupt(format!(
            "doc unreadable ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    }
}

fn broadcast_item(b: &Broadcast, version: u64) -> Result<Item, StoreError> {
    let mut item = key(bcast_pk(&b.id), BCAST_SK);
    item.extend([
        (
            DOC.to_owned(),
            encoded(serde_json::to_string(&Broadcast {
                version,
                ..b.clone()
            }))?,
        ),
        (VERSION.to_owned(), AttributeValue::N(version.to_string())),
        ("state".to_owned(), s(b.state.name())),
        (TTL.to_owned(), n(b.expires_at)),
        (
            GSI1PK.to_owned(),
            s(format!("BCASTS#{}", b.phone_number_id)),
        ),
        (
            GSI1SK.to_owned(),
            s(format!("{:013}#{}", b.created_at_ms, b.id)),
        ),
    ]);
    Ok(item)
}

fn put(item: Item) -> Result<WriteRequest, StoreError> {
    Ok(WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(unavailable)?,
        )
        .build())
}

/// Keys of an item, for matching BatchGetItem answers to what was asked.
fn pk_of(item: &Item) -> Option<String> {
    item.get(PK).and_then(|v| v.as_s().ok()).cloned()
}

impl DynamoStore {
    /// BatchGetItem of any number of keys (in batches of 100, up to [`IN_FLIGHT`] at once,
    /// unprocessed keys retried); items in no particular order.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<Item>,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        self.batch_get_projected(keys, consistent, None).await
    }

    /// [`Self::batch_get`], returning only the attributes of `projection` when given (a
    /// ProjectionExpression of plain attribute names, e.g. `pk, bindex`).
    pub(crate) async fn batch_get_projected(
        &self,
        keys: Vec<Item>,
        consistent: bool,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let chunks: Vec<Vec<Item>> = keys.chunks(GET_BATCH).map(<[Item]>::to_vec).collect();
        let got: Vec<Vec<Item>> = stream::iter(chunks)
            .map(|chunk| self.batch_get_chunk(chunk, consistent, projection))
            .buffer_unordered(IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(got.into_iter().flatten().collect())
    }

    /// One BatchGetItem of at most 100 keys, unprocessed keys retried.
    async fn batch_get_chunk(
        &self,
        chunk: Vec<Item>,
        consistent: bool,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::with_capacity(chunk.len());
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(chunk))
                .consistent_read(consistent)
                .set_projection_expression(projection.map(str::to_owned))
                .build()
                .map_err(unavailable)?,
        );
        for attempt in 0..6u32 {
            let Some(ask) = pending.take() else { break };
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
            }
            self.metrics.read();
            let r = self
                .client
                .batch_get_item()
                .request_items(&self.table, ask)
                .send()
                .await
                .map_err(unavailable)?;
            if let Some(mut got) = r.responses {
                out.extend(got.remove(&self.table).unwrap_or_default());
            }
            pending = r
                .unprocessed_keys
                .and_then(|mut m| m.remove(&self.table))
                .filter(|k| !k.keys.is_empty());
        }
        if pending.is_some() {
            return Err(corrupt("batch read still unprocessed after retries"));
        }
        Ok(out)
    }

    /// BatchWriteItem of any number of puts, in batches of 25, up to [`IN_FLIGHT`] at once.
    pub(crate) async fn batch_put_all(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let mut batches = Vec::with_capacity(items.len().div_ceil(PUT_BATCH));
        let mut reqs = Vec::with_capacity(PUT_BATCH);
        for item in items {
            reqs.push(put(item)?);
            if reqs.len() == PUT_BATCH {
                batches.push(std::mem::take(&mut reqs));
            }
        }
        if !reqs.is_empty() {
            batches.push(reqs);
        }
        stream::iter(batches)
            .map(|b| self.batch_put(b))
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// The broadcasts of a number, newest first (one page of at most `limit`).
    pub async fn broadcasts_of(
        &self,
        phone_number_id: &str,
        limit: usize,
    ) -> Result<Vec<Broadcast>, StoreError> {
        self.metrics.read();
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", GSI1PK)
            .expression_attribute_values(":pk", s(format!("BCASTS#{phone_number_id}")))
            .scan_index_forward(false)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(unavailable)?;
        out.items
            .unwrap_or_default()
            .iter()
            .map(broadcast_from)
            .collect()
    }
}

impl BroadcastStore for DynamoStore {
    async fn claim_creation(
        &self,
        key_hash: &str,
        id: &BroadcastId,
        body_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Option<(BroadcastId, String)>, StoreError> {
        let mut item = key(creation_pk(key_hash), CREATION_SK);
        item.insert("broadcast".into(), s(id.as_str()));
        item.insert("body_hash".into(), s(body_hash));
        item.insert(TTL.into(), n(expires_at));
        // A claim past its time counts as gone (DynamoDB deletes expired items lazily).
        let claimed = self
            .put_if(
                item,
                "attribute_not_exists(pk) OR #t <= :now",
                [("#t".to_owned(), TTL.to_owned())],
                [(":now".to_owned(), n(now))],
            )
            .await?;
        if claimed {
            return Ok(None);
        }
        let held = self
            .get(key(creation_pk(key_hash), CREATION_SK), true)
            .await?
            .ok_or_else(|| corrupt("an Idempotency-Key claim vanished"))?;
        let id = BroadcastId::parse(req_s(&held, "broadcast")?)
            .ok_or_else(|| corrupt("an Idempotency-Key claim holds no broadcast id"))?;
        Ok(Some((id, req_s(&held, "body_hash")?.to_owned())))
    }

    async fn create_broadcast(&self, b: &Broadcast) -> Result<Recorded, StoreError> {
        let item = broadcast_item(b, 1)?;
        Ok(if self.put_new(item).await? {
            Recorded::New
        } else {
            Recorded::Duplicate
        })
    }

    async fn get_broadcast(&self, id: &BroadcastId) -> Result<Option<Broadcast>, StoreError> {
        let Some(item) = self.get(key(bcast_pk(id), BCAST_SK), true).await? else {
            return Ok(None);
        };
        let mut b = broadcast_from(&item)?;
        b.version = u64::try_from(req_n(&item, VERSION)?)
            .map_err(|_| corrupt("negative broadcast version"))?;
        Ok(Some(b))
    }

    async fn save_broadcast(&self, b: &mut Broadcast) -> Result<bool, StoreError> {
        let item = broadcast_item(b, b.version + 1)?;
        let ok = self
            .put_if(
                item,
                "#v = :v",
                [("#v".to_owned(), VERSION.to_owned())],
                [(":v".to_owned(), AttributeValue::N(b.version.to_string()))],
            )
            .await?;
        if ok {
            b.version += 1;
        }
        Ok(ok)
    }

    async fn put_entries(&self, entries: &[LedgerEntry]) -> Result<(), StoreError> {
        self.put_ledger_entries(entries).await
    }

    async fn entries(
        &self,
        id: &BroadcastId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.ledger_entries(id, from, limit).await
    }

    async fn send_owners(&self, ids: &[SendId]) -> Result<Vec<Option<u64>>, StoreError> {
        let keys = ids
            .iter()
            .map(|id| key(send_pk(id.as_str()), SEND_SK))
            .collect();
        let projection = format!("{PK}, {BROADCAST_INDEX}");
        let mut owners: HashMap<String, Option<u64>> = HashMap::new();
        for item in self
            .batch_get_projected(keys, true, Some(&projection))
            .await?
        {
            if let Some(pk) = pk_of(&item) {
                let row = opt_n(&item, BROADCAST_INDEX)?
                    .map(|i| u64::try_from(i).map_err(|_| corrupt("bindex")))
                    .transpose()?;
                owners.insert(pk, row);
            }
        }
        ids.iter()
            .map(|id| match owners.get(&send_pk(id.as_str())) {
                None => Ok(None),
                Some(Some(row)) => Ok(Some(*row)),
                Some(None) => Err(StoreError::Corrupt(format!(
                    "send {id} has no broadcast position"
                ))),
            })
            .collect()
    }

    async fn create_sends(
        &self,
        sends: &[SendRecord],
        first_attempt: bool,
    ) -> Result<(), StoreError> {
        let items = sends
            .iter()
            .map(|r| send_item(r, 1))
            .collect::<Result<Vec<_>, _>>()?;
        if first_attempt {
            // The planner holds the page's claim and the page was never planned: no send
            // exists, so BatchWriteItem (25 a request, the same write units) needs no check.
            return self.batch_put_all(items).await;
        }
        // A page planned again after a crash: one conditional put per send (an existing
        // send is kept as it is), up to [`PUTS_IN_FLIGHT`] at once. Not a transaction:
        // nothing needs the sends of a page to appear together, and a transaction's items
        // cost twice the write units (and moto copies the whole table for each one).
        let puts: Vec<_> = items.into_iter().map(|item| self.put_new(item)).collect();
        stream::iter(puts)
            .buffer_unordered(PUTS_IN_FLIGHT)
            .try_collect::<Vec<bool>>()
            .await?;
        Ok(())
    }

    async fn get_sends(&self, ids: &[SendId]) -> Result<Vec<Option<SendRecord>>, StoreError> {
        let keys = ids
            .iter()
            .map(|id| key(send_pk(id.as_str()), SEND_SK))
            .collect();
        let mut by_pk: HashMap<String, SendRecord> = HashMap::new();
        for item in self.batch_get(keys, true).await? {
            if let Some(pk) = pk_of(&item) {
                by_pk.insert(pk, send_from(&item)?);
            }
        }
        // The receipts on the sends' history records (see `get_send`).
        let wamids: HashMap<String, String> = by_pk
            .iter()
            .filter_map(|(pk, r)| r.wamid.as_ref().map(|w| (msg_pk(w), pk.clone())))
            .collect();
        let msg_keys = wamids.keys().map(|pk| key(pk.clone(), MSG_SK)).collect();
        for item in self.batch_get(msg_keys, true).await? {
            if let Some(send) = pk_of(&item)
                .and_then(|pk| wamids.get(&pk))
                .and_then(|pk| by_pk.get_mut(pk))
            {
                send.statuses.add_receipts(&statuses_of(&item)?);
            }
        }
        Ok(ids
            .iter()
            .map(|id| by_pk.remove(&send_pk(id.as_str())))
            .collect())
    }

    async fn audience(
        &self,
        pnid: &str,
        who: &[CustomerRef],
        marketing: bool,
    ) -> Result<Vec<Audience>, StoreError> {
        // Phones without a BSUID may have an alias to one.
        let alias_keys: Vec<Item> = who
            .iter()
            .filter(|w| w.user_id.is_none())
            .filter_map(|w| w.wa_id.as_ref())
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|p| key(alias_pk(pnid, p), ALIAS_SK))
            .collect();
        let mut aliases: HashMap<String, CustomerKey> = HashMap::new();
        for item in self.batch_get(alias_keys, false).await? {
            if let (Some(pk), Some(c)) = (pk_of(&item), opt_s(&item, ALIAS_CUSTOMER)?)
                && let Some(k) = CustomerKey::from_storage(c)
            {
                aliases.insert(pk, k);
            }
        }
        let keys: Vec<CustomerKey> = who
            .iter()
            .map(|w| match (&w.user_id, &w.wa_id) {
                (None, Some(p)) => aliases
                    .get(&alias_pk(pnid, p))
                    .cloned()
                    .unwrap_or_else(|| w.direct_key()),
                _ => w.direct_key(),
            })
            .collect();
        let mut asks = Vec::new();
        for k in keys.iter().collect::<HashSet<_>>() {
            let pk = conv_pk(pnid, k);
            asks.push(key(pk.clone(), WINDOW_SK));
            asks.push(key(pk.clone(), &consent_sk("all")));
            if marketing {
                asks.push(key(pk, &consent_sk("marketing")));
            }
        }
        let mut windows: HashMap<String, Window> = HashMap::new();
        let mut consents: HashMap<String, Vec<ConsentRecord>> = HashMap::new();
        let by_pk: HashMap<String, &CustomerKey> =
            keys.iter().map(|k| (conv_pk(pnid, k), k)).collect();
        for item in self.batch_get(asks, false).await? {
            let (Some(pk), Some(sk)) = (pk_of(&item), opt_s(&item, SK)?.map(str::to_owned)) else {
                continue;
            };
            let Some(customer) = by_pk.get(&pk) else {
                continue;
            };
            if sk == WINDOW_SK {
                windows.insert(
                    pk,
                    Window {
                        last_inbound_at: opt_n(&item, win::LAST_INBOUND_AT)?,
                        customer_service_until: opt_n(&item, win::CS_UNTIL)?,
                        free_entry_point_until: opt_n(&item, win::FEP_UNTIL)?,
                    },
                );
            } else {
                let c = consent_from(&item, pnid, customer)?;
                consents.entry(pk).or_default().push(c);
            }
        }
        Ok(keys
            .into_iter()
            .map(|k| {
                let pk = conv_pk(pnid, &k);
                Audience {
                    window: windows.get(&pk).copied(),
                    consents: consents.get(&pk).cloned().unwrap_or_default(),
                    key: Some(k),
                }
            })
            .collect())
    }

    async fn queue_pace(&self, pnid: &str, now_ms: i64, add_ms: i64) -> Result<i64, StoreError> {
        let until = |out: Option<&Item>| -> Result<i64, StoreError> {
            out.map(|i| req_n(i, QUEUED_UNTIL))
                .transpose()?
                .ok_or_else(|| corrupt("the number's queue time came back empty"))
        };
        // Ahead of now (the usual case while a number's broadcasts run): added to. Behind, or
        // never set: it starts now. Each is conditional on the case, so a planner racing
        // another lands in one or the other; a third turn is only for a queue that ran dry
        // and was restarted by someone else between the two.
        for _ in 0..3 {
            for (expr, condition, value) in [
                ("ADD #u :v", "#u >= :now", add_ms),
                (
                    "SET #u = :v",
                    "attribute_not_exists(#u) OR #u < :now",
                    now_ms.saturating_add(add_ms),
                ),
            ] {
                self.metrics.write();
                let r = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(format!("NUMBER#{pnid}"), QUEUED_SK)))
                    .update_expression(expr)
                    .condition_expression(condition)
                    .expression_attribute_names("#u", QUEUED_UNTIL)
                    .expression_attribute_values(":v", n(value))
                    .expression_attribute_values(":now", n(now_ms))
                    .return_values(ReturnValue::UpdatedNew)
                    .send()
                    .await;
                match r {
                    Ok(out) => return until(out.attributes.as_ref()),
                    Err(e) if e.code() == Some("ConditionalCheckFailedException") => {}
                    Err(e) => return Err(unavailable(e)),
                }
            }
        }
        Err(StoreError::Unavailable(
            format!("the queue time of {pnid} kept changing under the update").into(),
        ))
    }

    async fn quality_red(&self, waba_id: &str, _pnid: &str) -> Result<bool, StoreError> {
        // Quality updates name the number by its display phone number, which the job does
        // not know: any number of the account flagged RED pauses (the safe side).
        let numbers = account_sk("number#");
        let items = self
            .query_partition(&account_pk(waba_id), SortKeys::Prefix(&numbers), false)
            .await?;
        for item in items {
            let sk = opt_s(&item, SK)?.unwrap_or_default();
            let event = opt_s(&item, &format!("{ACCOUNT_ATTR_PREFIX}event"))?.unwrap_or_default();
            if sk.ends_with("#quality") && event.eq_ignore_ascii_case("FLAGGED") {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl LimitStore for DynamoStore {
    async fn tier(&self, portfolio: &str) -> Result<Option<MessagingLimit>, StoreError> {
        Ok(self
            .account(portfolio, "messaging_limit")
            .await?
            .and_then(|a| {
                a.attributes
                    .iter()
                    .find(|(k, _)| k == "tier")
                    .and_then(|(_, v)| MessagingLimit::parse(v))
            }))
    }

    async fn charged_since(
        &self,
        portfolio: &str,
        customers: &[String],
        since: i64,
    ) -> Result<HashMap<String, i64>, StoreError> {
        let keys = customers
            .iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|c| key(charge_pk(portfolio, c), CHARGE_SK))
            .collect();
        let prefix = format!("{}#", limit_pk(portfolio));
        let mut out = HashMap::new();
        for item in self.batch_get(keys, true).await? {
            if let Some(at) = opt_n(&item, "at")?.filter(|at| *at > since)
                && let Some(c) =
                    pk_of(&item).and_then(|pk| pk.strip_prefix(&prefix).map(str::to_owned))
            {
                out.insert(c, at);
            }
        }
        Ok(out)
    }

    async fn adjust_buckets(
        &self,
        portfolio: &str,
        deltas: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        for (bucket, delta) in deltas.iter().filter(|(_, d)| *d != 0) {
            self.metrics.write();
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(limit_pk(portfolio), &bucket_sk(*bucket))))
                .expression_attribute_names("#c", COUNT)
                .expression_attribute_values(":d", AttributeValue::N(delta.to_string()));
            let update = if *delta > 0 {
                // Counted up: the bucket lives as long as one made by a reservation.
                update
                    .update_expression("ADD #c :d SET #t = :ttl")
                    .expression_attribute_names("#t", TTL)
                    .expression_attribute_values(":ttl", n(bucket + WINDOW_SECS + 2 * BUCKET_SECS))
            } else {
                // Counted down: only a bucket that is still there (a gone one counts nothing).
                update
                    .update_expression("ADD #c :d")
                    .condition_expression("attribute_exists(#c)")
            };
            conditional(update.send().await)?;
        }
        Ok(())
    }

    async fn reserve(
        &self,
        portfolio: &str,
        want: u64,
        limit: u64,
        now: i64,
    ) -> Result<(u64, Option<i64>), StoreError> {
        let buckets = counted_buckets(now);
        let (Some(oldest), Some(current)) = (buckets.first().copied(), buckets.last().copied())
        else {
            return Ok((0, Some(now + BUCKET_SECS)));
        };
        // A concurrent reservation can win the race for the current bucket: read again.
        for _ in 0..5 {
            let (a, b) = (bucket_sk(oldest), bucket_sk(current));
            let items = self
                .query_partition(&limit_pk(portfolio), SortKeys::Between(&a, &b), true)
                .await?;
            let mut counts: HashMap<String, u64> = HashMap::new();
            for item in items {
                if let Some(sk) = opt_s(&item, SK)? {
                    let c = u64::try_from(opt_n(&item, COUNT)?.unwrap_or(0)).unwrap_or(0);
                    counts.insert(sk.to_owned(), c);
                }
            }
            let list: Vec<(i64, u64)> = buckets
                .iter()
                .map(|b| (*b, counts.get(&bucket_sk(*b)).copied().unwrap_or(0)))
                .collect();
            let (granted, retry) = grant(&list, want, limit);
            if granted == 0 {
                return Ok((0, retry));
            }
            let mine = counts.get(&bucket_sk(current)).copied().unwrap_or(0);
            let others: u64 = list.iter().map(|(_, c)| c).sum::<u64>() - mine;
            let max_before = limit.saturating_sub(others).saturating_sub(granted);
            self.metrics.write();
            let r = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(limit_pk(portfolio), &bucket_sk(current))))
                .update_expression("ADD #c :g SET #t = :ttl")
                .condition_expression("attribute_not_exists(#c) OR #c <= :max")
                .expression_attribute_names("#c", COUNT)
                .expression_attribute_names("#t", TTL)
                .expression_attribute_values(":g", AttributeValue::N(granted.to_string()))
                .expression_attribute_values(":max", AttributeValue::N(max_before.to_string()))
                .expression_attribute_values(":ttl", n(current + WINDOW_SECS + 2 * BUCKET_SECS))
                .send()
                .await;
            if conditional(r)? {
                return Ok((granted, retry));
            }
        }
        Ok((0, Some(now + 60)))
    }

    async fn record_charges(
        &self,
        portfolio: &str,
        customers: &[String],
        at: i64,
    ) -> Result<(), StoreError> {
        let items = customers
            .iter()
            .map(|c| {
                let mut item = key(charge_pk(portfolio, c), CHARGE_SK);
                item.insert("at".into(), n(at));
                item.insert(TTL.into(), n(at + WINDOW_SECS + BUCKET_SECS));
                item
            })
            .collect();
        self.batch_put_all(items).await
    }
}
