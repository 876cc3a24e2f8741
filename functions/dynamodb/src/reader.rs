//! [`ConversationReader`], and reads of single records for the APIs and tests.

use std::collections::HashMap;

use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::outbound::SendId;
use wa_domain::ports::{
    AccountRecord, Consent, ConsentDetail, ConsentRecord, ConsentSource, ConversationReader,
    DeliveryState, Direction, EventRecord, HistoryItem, HistoryPage, MessageRecord, StoreError,
};
use wa_domain::status::DeliveryStatus;
use wa_domain::window::Window;

use crate::DynamoStore;
use crate::attr::{Item, opt_n, opt_s, req_n, req_s, s, unavailable};
use crate::inbound::{AT, msg, status_attr, statuses_of, win};
use crate::keys::*;
use crate::sends::SEND_WAMID;
use crate::{cursor, inbound};

/// Reads a message item into its record.
fn message_from(item: &Item) -> Result<MessageRecord, StoreError> {
    let customer = req_s(item, msg::CUSTOMER)?;
    let direction = match req_s(item, msg::DIRECTION)? {
        "inbound" => Direction::Inbound,
        "outbound" => Direction::Outbound,
        other => return Err(StoreError::Corrupt(format!("unknown direction {other:?}"))),
    };
    Ok(MessageRecord {
        id: req_s(item, msg::ID)?.to_owned(),
        wamid: req_s(item, msg::WAMID)?.to_owned(),
        phone_number_id: req_s(item, msg::PNID)?.to_owned(),
        customer: CustomerKey::from_storage(customer).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "unreadable customer {:?}",
                wa_domain::redact::mask_digit_runs(customer)
            ))
        })?,
        who: CustomerRef {
            user_id: opt_s(item, msg::USER_ID)?.map(str::to_owned),
            wa_id: opt_s(item, msg::WA_ID)?.map(str::to_owned),
        },
        direction,
        message_type: req_s(item, msg::TYPE)?.to_owned(),
        timestamp: req_n(item, msg::TIMESTAMP)?,
        raw: req_s(item, msg::RAW)?.to_owned(),
        expires_at: req_n(item, TTL)?,
    })
}

/// Reads the statuses of a message item; `None` if it has none.
fn delivery_from(item: &Item) -> Result<Option<DeliveryState>, StoreError> {
    let mut state = DeliveryState {
        history: statuses_of(item)?,
        ..DeliveryState::default()
    };
    if state.history.current().is_none() {
        return Ok(None);
    }
    state.error = match opt_n(item, msg::ERR_CODE)? {
        Some(code) => Some((
            code,
            opt_s(item, msg::ERR_MESSAGE)?
                .unwrap_or_default()
                .to_owned(),
        )),
        None => None,
    };
    state.callback_data = opt_s(item, msg::CALLBACK_DATA)?.map(str::to_owned);
    Ok(Some(state))
}

/// Reads a consent item of `customer` of `phone_number_id` (the item's partition).
pub(crate) fn consent_from(
    item: &Item,
    phone_number_id: &str,
    customer: &CustomerKey,
) -> Result<ConsentRecord, StoreError> {
    let consent = match req_s(item, "consent")? {
        c if c == inbound::consent_str(Consent::OptedOut) => Consent::OptedOut,
        c if c == inbound::consent_str(Consent::OptedIn) => Consent::OptedIn,
        other => return Err(StoreError::Corrupt(format!("unknown consent {other:?}"))),
    };
    let source = req_s(item, "source")?;
    let source = [
        ConsentSource::UserPreferences,
        ConsentSource::Keyword,
        ConsentSource::Error131050,
        ConsentSource::Api,
    ]
    .into_iter()
    .find(|s| s.as_str() == source)
    .ok_or_else(|| StoreError::Corrupt(format!("unknown consent source {source:?}")))?;
    Ok(ConsentRecord {
        phone_number_id: phone_number_id.to_owned(),
        customer: customer.clone(),
        scope: req_s(item, "scope")?.to_owned(),
        consent,
        source,
        at: req_n(item, AT)?,
        detail: match opt_s(item, inbound::CONSENT_ORIGIN)? {
            Some(origin) => Some(ConsentDetail {
                origin: origin.to_owned(),
                proof: opt_s(item, inbound::CONSENT_PROOF)?.map(str::to_owned),
            }),
            None => None,
        },
    })
}

fn event_from(item: &Item) -> Result<EventRecord, StoreError> {
    Ok(EventRecord {
        natural_key: req_s(item, "natural_key")?.to_owned(),
        waba_id: opt_s(item, "waba_id")?.map(str::to_owned),
        phone_number_id: opt_s(item, msg::PNID)?.map(str::to_owned),
        field: req_s(item, "field")?.to_owned(),
        kind: req_s(item, "kind")?.to_owned(),
        at: req_n(item, AT)?,
        raw: req_s(item, msg::RAW)?.to_owned(),
        expires_at: req_n(item, TTL)?,
    })
}

/// The sort keys a [`DynamoStore::query_partition`] reads.
pub(crate) enum SortKeys<'a> {
    /// Those that begin with this.
    Prefix(&'a str),
    /// Those from the first to the second, both included.
    Between(&'a str, &'a str),
}

impl DynamoStore {
    /// GetItem, counted.
    pub(crate) async fn get(
        &self,
        key: Item,
        consistent: bool,
    ) -> Result<Option<Item>, StoreError> {
        self.metrics.read();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    /// Every item of partition `pk` whose sort key is in `sort`, in sort-key order, over as
    /// many Query pages as it takes (each counted as a read).
    pub(crate) async fn query_partition(
        &self,
        pk: &str,
        sort: SortKeys<'_>,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let (condition, values) = match sort {
            SortKeys::Prefix(p) => ("#pk = :pk AND begins_with(#sk, :a)", vec![(":a", p)]),
            SortKeys::Between(from, to) => (
                "#pk = :pk AND #sk BETWEEN :a AND :b",
                vec![(":a", from), (":b", to)],
            ),
        };
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            self.metrics.read();
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(condition)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(consistent)
                .set_exclusive_start_key(start.take());
            for (name, value) in &values {
                q = q.expression_attribute_values(*name, s(*value));
            }
            let out = q.send().await.map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Adds to each outbound message of a history page the receipts its send holds: a
    /// receipt for an accepted send is written to the send only (not indexed), not to the
    /// history record, whose every write would rewrite its index entry too. One
    /// BatchGetItem of the sends' wamid and status attributes (eventually consistent, as the
    /// page). A send's receipts are those of its own wamid: a record of another wamid of the
    /// same send (a resend after a timeout) keeps its own.
    async fn add_send_receipts(&self, items: &mut [HistoryItem]) -> Result<(), StoreError> {
        let mut by_send: HashMap<String, Vec<usize>> = HashMap::new();
        for (n, i) in items.iter().enumerate() {
            if i.message.direction == Direction::Outbound
                && let Some(id) = SendId::parse(&i.message.id)
            {
                by_send.entry(send_pk(id.as_str())).or_default().push(n);
            }
        }
        if by_send.is_empty() {
            return Ok(());
        }
        let keys = by_send.keys().map(|pk| key(pk.clone(), SEND_SK)).collect();
        let projection = [PK.to_owned(), SEND_WAMID.to_owned()]
            .into_iter()
            .chain(DeliveryStatus::ALL.into_iter().map(status_attr))
            .collect::<Vec<_>>()
            .join(", ");
        for send in self
            .batch_get_projected(keys, false, Some(&projection))
            .await?
        {
            let (Some(records), Some(wamid)) = (
                opt_s(&send, PK)?.and_then(|pk| by_send.get(pk)),
                opt_s(&send, SEND_WAMID)?,
            ) else {
                continue;
            };
            let receipts = statuses_of(&send)?;
            for n in records {
                let item = &mut items[*n];
                if item.message.wamid == wamid {
                    item.delivery = DeliveryState::with_receipts(item.delivery.take(), &receipts);
                }
            }
        }
        Ok(())
    }

    /// The delivery state of an outbound message, from its statuses (strongly consistent).
    pub async fn delivery(&self, wamid: &str) -> Result<Option<DeliveryState>, StoreError> {
        match self.get(key(msg_pk(wamid), MSG_SK), true).await? {
            Some(item) => delivery_from(&item),
            None => Ok(None),
        }
    }

    /// The consent stored for a customer and scope (strongly consistent).
    pub async fn consent(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        scope: &str,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        let key = key(conv_pk(phone_number_id, customer), &consent_sk(scope));
        match self.get(key, true).await? {
            Some(item) => consent_from(&item, phone_number_id, customer).map(Some),
            None => Ok(None),
        }
    }

    /// The account record stored for a key (strongly consistent); attributes sorted by name.
    pub async fn account(
        &self,
        waba_id: &str,
        record_key: &str,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let key = key(account_pk(waba_id), &account_sk(record_key));
        let Some(item) = self.get(key, true).await? else {
            return Ok(None);
        };
        let mut attributes = Vec::new();
        for name in item.keys() {
            if let Some(short) = name.strip_prefix(ACCOUNT_ATTR_PREFIX) {
                attributes.push((short.to_owned(), req_s(&item, name)?.to_owned()));
            }
        }
        attributes.sort();
        Ok(Some(AccountRecord {
            waba_id: waba_id.to_owned(),
            key: record_key.to_owned(),
            at: req_n(&item, AT)?,
            attributes,
        }))
    }

    /// The event kept under this natural key (strongly consistent).
    pub async fn event(&self, natural_key: &str) -> Result<Option<EventRecord>, StoreError> {
        let hash = sha256_hex(natural_key.as_bytes());
        match self.get(key(event_pk(&hash), EVENT_SK), true).await? {
            Some(item) => event_from(&item).map(Some),
            None => Ok(None),
        }
    }

    /// The newest events of an account (or of a number when the event had no account, or
    /// `-`), newest first, at most `limit` (one page; the index is eventually consistent).
    pub async fn recent_events(
        &self,
        scope: &str,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let (items, _) = self
            .query_gsi1_below(&events_gsi_pk(scope), None, limit.max(1))
            .await?;
        items.iter().take(limit).map(event_from).collect()
    }

    /// One backwards Query of the `gsi1` partition `gsi1pk`: up to `limit` items whose sort
    /// key is below `below` (all when `None`), and whether the 1 MB page limit cut it short.
    async fn query_gsi1_below(
        &self,
        gsi1pk: &str,
        below: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Item>, bool), StoreError> {
        self.metrics.read();
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .expression_attribute_names("#pk", GSI1PK)
            .expression_attribute_values(":pk", s(gsi1pk))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        q = match below {
            Some(sk) => q
                .key_condition_expression("#pk = :pk AND #sk < :sk")
                .expression_attribute_names("#sk", GSI1SK)
                .expression_attribute_values(":sk", s(sk)),
            None => q.key_condition_expression("#pk = :pk"),
        };
        let out = q.send().await.map_err(unavailable)?;
        let items = out.items.unwrap_or_default();
        let cut = items.len() < limit && out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        Ok((items, cut))
    }

    /// The `gsi1` partitions of a customer's history: their own, then those of the earlier
    /// keys linked to it (`PREVIOUS#…` items: the phone before its BSUID was known, a BSUID
    /// that changed), and theirs in turn, at most [`MAX_HISTORY_KEYS`] in all.
    async fn history_partitions(
        &self,
        pnid: &str,
        customer: &CustomerKey,
    ) -> Result<Vec<String>, StoreError> {
        let mut partitions = vec![conv_pk(pnid, customer)];
        let mut next = 0;
        while next < partitions.len() && partitions.len() < MAX_HISTORY_KEYS {
            let links = self
                .query_partition(&partitions[next], SortKeys::Prefix(PREVIOUS_PREFIX), false)
                .await?;
            for link in links {
                let earlier = req_s(&link, msg::CUSTOMER)?;
                let earlier = CustomerKey::from_storage(earlier)
                    .ok_or_else(|| StoreError::Corrupt(format!("bad earlier key {earlier}")))?;
                let pk = conv_pk(pnid, &earlier);
                if !partitions.contains(&pk) {
                    partitions.push(pk);
                }
            }
            next += 1;
        }
        partitions.truncate(MAX_HISTORY_KEYS);
        Ok(partitions)
    }
}

/// Most keys one customer's history is read under (their own and earlier ones).
const MAX_HISTORY_KEYS: usize = 8;

/// The `gsi1` key of an item, as a cursor needs it.
fn gsi1_key_of(item: &Item) -> Item {
    [PK, SK, GSI1PK, GSI1SK]
        .into_iter()
        .filter_map(|k| item.get(k).map(|v| (k.to_owned(), v.clone())))
        .collect()
}

impl ConversationReader for DynamoStore {
    async fn lookup_customer(
        &self,
        pnid: &str,
        asked: &CustomerKey,
    ) -> Result<CustomerKey, StoreError> {
        match asked {
            // Strongly consistent, as the window and consent reads that follow: a phone made
            // an alias a moment ago must resolve to the BSUID, under which everything about
            // the customer is recorded from then on.
            CustomerKey::Phone(p) => Ok(self
                .get_alias(pnid, p, true)
                .await?
                .map_or_else(|| asked.clone(), |a| a.customer)),
            CustomerKey::Bsuid(_) => Ok(asked.clone()),
        }
    }

    async fn window(
        &self,
        pnid: &str,
        customer: &CustomerKey,
    ) -> Result<Option<(Window, CustomerRef)>, StoreError> {
        // Strongly consistent: send-api must see a message processed a moment ago.
        let Some(item) = self
            .get(key(conv_pk(pnid, customer), WINDOW_SK), true)
            .await?
        else {
            return Ok(None);
        };
        let window = Window {
            last_inbound_at: opt_n(&item, win::LAST_INBOUND_AT)?,
            customer_service_until: opt_n(&item, win::CS_UNTIL)?,
            free_entry_point_until: opt_n(&item, win::FEP_UNTIL)?,
        };
        let who = CustomerRef {
            user_id: opt_s(&item, msg::USER_ID)?.map(str::to_owned),
            wa_id: opt_s(&item, msg::WA_ID)?.map(str::to_owned),
        };
        Ok(Some((window, who)))
    }

    async fn history(
        &self,
        pnid: &str,
        customer: &CustomerKey,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<HistoryPage, StoreError> {
        let partitions = self.history_partitions(pnid, customer).await?;
        // A cursor names the last message of the page before; the next page is everything
        // older, in every partition of the customer.
        let below = cursor
            .map(|c| cursor::decode(c, &partitions))
            .transpose()?
            .map(|k| req_s(&k, GSI1SK).map(str::to_owned))
            .transpose()?;
        if limit == 0 {
            return Ok(HistoryPage::default());
        }
        // One item more than asked tells whether there is a next page, so the last page
        // carries no cursor.
        let want = limit.saturating_add(1);
        let reads = partitions
            .iter()
            .map(|p| self.query_gsi1_below(p, below.as_deref(), want));
        let mut items = Vec::new();
        // A partition cut short by the 1 MB page limit is known only down to its last item:
        // the page stops there, whatever the other partitions hold below it.
        let mut known_to: Option<String> = None;
        for (got, cut) in futures::future::try_join_all(reads).await? {
            if got.len() < want && cut {
                let last = got.last().map(|i| req_s(i, GSI1SK)).transpose()?;
                known_to = known_to.max(last.map(str::to_owned));
            }
            items.extend(got);
        }
        let mut keyed = items
            .into_iter()
            .map(|i| Ok((req_s(&i, GSI1SK)?.to_owned(), i)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        keyed.sort_by(|a, b| b.0.cmp(&a.0));
        if let Some(floor) = &known_to {
            keyed.retain(|(sk, _)| sk >= floor);
        }
        let more = keyed.len() > limit || known_to.is_some();
        keyed.truncate(limit);
        let next_cursor = match keyed.last() {
            Some((_, last)) if more => Some(cursor::encode(&gsi1_key_of(last))?),
            _ => None,
        };
        let items: Vec<Item> = keyed.into_iter().map(|(_, i)| i).collect();
        let mut items = items
            .iter()
            .map(|item| {
                Ok(HistoryItem {
                    message: message_from(item)?,
                    delivery: delivery_from(item)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.add_send_receipts(&mut items).await?;
        Ok(HistoryPage { items, next_cursor })
    }
}
