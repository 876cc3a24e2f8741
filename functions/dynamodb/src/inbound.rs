//! [`InboundStore`]: what inbound-processor writes.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::outbound::SendId;
use wa_domain::ports::{
    AccountRecord, ConsentRecord, ConversationReader, Direction, EventRecord, InboundStore,
    MessageRecord, Recorded, SendStore, StatusRecord, StoreError,
};
use wa_domain::status::{DeliveryStatus, StatusHistory};
use wa_domain::window::WindowUpdate;

use crate::DynamoStore;
use crate::attr::{Item, Update, conditional, flag, n, opt_n, opt_s, s, unavailable};
use crate::keys::*;

/// Attribute names of message items.
pub(crate) mod msg {
    pub(crate) const ID: &str = "id";
    pub(crate) const WAMID: &str = "wamid";
    pub(crate) const PNID: &str = "phone_number_id";
    pub(crate) const CUSTOMER: &str = "customer";
    pub(crate) const USER_ID: &str = "user_id";
    pub(crate) const WA_ID: &str = "wa_id";
    pub(crate) const DIRECTION: &str = "direction";
    pub(crate) const TYPE: &str = "type";
    pub(crate) const TIMESTAMP: &str = "timestamp";
    pub(crate) const RAW: &str = "raw";
    pub(crate) const ERR_CODE: &str = "err_code";
    pub(crate) const ERR_MESSAGE: &str = "err_message";
    pub(crate) const CALLBACK_DATA: &str = "callback_data";
    pub(crate) const PRICING: &str = "pricing";
}

/// Attribute names of window items.
pub(crate) mod win {
    pub(crate) const CS_UNTIL: &str = "cs_until";
    pub(crate) const FEP_UNTIL: &str = "fep_until";
    pub(crate) const LAST_INBOUND_AT: &str = "last_inbound_at";
    pub(crate) const PROFILE_NAME: &str = "profile_name";
}

/// The attribute holding the first timestamp of a status.
pub(crate) fn status_attr(status: DeliveryStatus) -> String {
    format!("st_{}", status.as_str())
}

/// The statuses an item holds in its [`status_attr`] attributes (a message's history record,
/// or a send beside its doc).
pub(crate) fn statuses_of(item: &Item) -> Result<StatusHistory, StoreError> {
    let mut h = StatusHistory::default();
    for status in DeliveryStatus::ALL {
        if let Some(at) = opt_n(item, &status_attr(status))? {
            h.record(status, at);
        }
    }
    Ok(h)
}

/// Attribute names shared by several items.
pub(crate) const AT: &str = "at";
pub(crate) const ALIAS_CUSTOMER: &str = "customer";
/// Set on an alias item once the phone's consents and window were carried over to its
/// customer (see [`DynamoStore::alias_phone`]).
pub(crate) const ALIAS_CARRIED: &str = "carried";

/// A phone alias as stored.
pub(crate) struct Alias {
    /// The customer the phone resolves to.
    pub(crate) customer: CustomerKey,
    /// Whether what was recorded under the phone alone was carried over to `customer`.
    carried: bool,
}

impl DynamoStore {
    /// The alias of a phone, if it is one.
    pub(crate) async fn get_alias(
        &self,
        pnid: &str,
        wa_id: &str,
        consistent: bool,
    ) -> Result<Option<Alias>, StoreError> {
        self.metrics.read();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(alias_pk(pnid, wa_id), ALIAS_SK)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let stored = opt_s(&item, ALIAS_CUSTOMER)?
            .ok_or_else(|| StoreError::Corrupt("alias without customer".into()))?;
        let customer = CustomerKey::from_storage(stored).ok_or_else(|| {
            StoreError::Corrupt(format!("alias to unreadable customer {stored:?}"))
        })?;
        Ok(Some(Alias {
            customer,
            carried: flag(&item, ALIAS_CARRIED)?,
        }))
    }

    /// Records `wa_id` as an alias of `customer`, not yet carried over; `Ok(false)` when the
    /// phone already has an alias.
    async fn put_alias(
        &self,
        pnid: &str,
        wa_id: &str,
        customer: &CustomerKey,
    ) -> Result<bool, StoreError> {
        let mut item = key(alias_pk(pnid, wa_id), ALIAS_SK);
        item.insert(ALIAS_CUSTOMER.into(), s(customer.as_storage()));
        self.put_if(item, "attribute_not_exists(pk)", [], []).await
    }

    /// Makes `phone` an alias of the BSUID `customer` (unless it already is another
    /// customer's: the first alias is kept) and carries what was recorded under the phone
    /// alone over to `customer`: every consent, newest wins per scope (the rule of
    /// `record_consent`), and the window, forward only (the conditions of `advance_window`).
    /// Message history stays where it is, and so do the phone's own records; a link item
    /// under `customer` (`PREVIOUS#p:<phone>`) makes its history include the phone's.
    ///
    /// Why no opt-out recorded under the phone can be lost:
    /// 1. The alias is put first, without [`ALIAS_CARRIED`]. Only then are the phone's
    ///    consents and window read (strongly consistent) and copied; the mark is set last.
    ///    Each copy is a conditional write by the record's own time, so copying twice, or
    ///    racing a newer write under the BSUID, changes nothing.
    /// 2. A failure or crash anywhere before the mark leaves an unmarked alias, and every
    ///    later call for this phone and BSUID copies again: the queue's redelivery of this
    ///    event, or any later event carrying both ids. (Aliases made before the mark existed
    ///    are unmarked too, so they are carried over the same way on their next such event.)
    /// 3. A consent written under the phone key by someone who resolved the phone before the
    ///    alias existed (send-api's `PUT` by phone, a phone-only STOP in another message
    ///    group, a worker's 131050 for a send accepted earlier) either lands before the read
    ///    of step 1, which copies it, or after it, so after the alias exists: then
    ///    `record_consent`'s strongly consistent alias read, made after its own write, finds
    ///    the alias and writes the record for the BSUID too.
    ///
    /// The steady state is unchanged: one eventually consistent read, no write.
    async fn alias_phone(
        &self,
        pnid: &str,
        phone: &str,
        customer: &CustomerKey,
        who: &CustomerRef,
    ) -> Result<(), StoreError> {
        // A stale read costs at most a failed put and a consistent read, or one more copy.
        let alias = match self.get_alias(pnid, phone, false).await? {
            Some(a) => Some(a),
            None if self.put_alias(pnid, phone, customer).await? => Some(Alias {
                customer: customer.clone(),
                carried: false,
            }),
            None => self.get_alias(pnid, phone, true).await?,
        };
        match alias {
            Some(a) if a.customer == *customer && !a.carried => {
                let from = CustomerKey::Phone(phone.to_owned());
                self.carry_over(pnid, &from, customer, who).await?;
                self.mark_carried(pnid, phone, customer).await
            }
            // Carried over before, or the phone is another customer's alias.
            _ => Ok(()),
        }
    }

    /// Copies the consents and window of `from` (a phone, or a BSUID that changed) to
    /// `customer` (see [`DynamoStore::alias_phone`]).
    async fn carry_over(
        &self,
        pnid: &str,
        from: &CustomerKey,
        customer: &CustomerKey,
        who: &CustomerRef,
    ) -> Result<(), StoreError> {
        // Both reads are strongly consistent.
        for c in self.consents(pnid, from).await? {
            let c = ConsentRecord {
                customer: customer.clone(),
                ..c
            };
            self.put_newest(consent_item(&c), c.at).await?;
        }
        let update = self
            .window(pnid, from)
            .await?
            .and_then(|(w, _)| w.as_update());
        if let Some(u) = update {
            // The profile name is not carried: the customer's next message brings it.
            self.advance_window(pnid, customer, who, &u, None).await?;
        }
        // The history stays under `from`; the link makes `customer`'s history read it too.
        // Written last, like the rest before the caller's mark: a retry writes it again.
        if from != customer {
            self.link_history(pnid, from, customer).await?;
        }
        Ok(())
    }

    /// Writes the link that makes `customer`'s history read `earlier`'s (idempotent).
    async fn link_history(
        &self,
        pnid: &str,
        earlier: &CustomerKey,
        customer: &CustomerKey,
    ) -> Result<(), StoreError> {
        let mut u = Update::default();
        u.set(msg::CUSTOMER, s(earlier.as_storage()));
        self.update(key(conv_pk(pnid, customer), &previous_sk(earlier)), u, None)
            .await
            .map(|_| ())
    }

    /// Marks the alias of `phone` to `customer` as carried over.
    async fn mark_carried(
        &self,
        pnid: &str,
        phone: &str,
        customer: &CustomerKey,
    ) -> Result<(), StoreError> {
        let mut u = Update::default();
        u.set(ALIAS_CARRIED, AttributeValue::Bool(true));
        let (c, v) = u.bind(ALIAS_CUSTOMER, s(customer.as_storage()));
        // The condition also keeps the update from creating an alias that is not there.
        self.update(
            key(alias_pk(pnid, phone), ALIAS_SK),
            u,
            Some(&format!("{c} = {v}")),
        )
        .await
        .map(|_| ())
    }

    /// Links the history of every phone aliased to a BSUID to that BSUID (the link
    /// `carry_over` writes for aliases made from now on), for aliases made before the
    /// link existed: one Scan of the table for alias items, then one idempotent write per
    /// alias to a BSUID. Returns (aliases seen, links written).
    pub async fn link_aliased_histories(&self) -> Result<(u64, u64), StoreError> {
        let (mut seen, mut linked) = (0, 0);
        let mut start: Option<Item> = None;
        loop {
            self.metrics.read();
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(#pk, :alias)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":alias", s("ALIAS#"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items.unwrap_or_default() {
                let Some((pnid, phone)) = opt_s(&item, PK)?
                    .and_then(|pk| pk.strip_prefix("ALIAS#"))
                    .and_then(|rest| rest.split_once('#'))
                else {
                    continue;
                };
                seen += 1;
                let Some(customer @ CustomerKey::Bsuid(_)) =
                    opt_s(&item, ALIAS_CUSTOMER)?.and_then(CustomerKey::from_storage)
                else {
                    continue;
                };
                let earlier = CustomerKey::Phone(phone.to_owned());
                self.link_history(pnid, &earlier, &customer).await?;
                linked += 1;
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok((seen, linked)),
            }
        }
    }

    /// Sends an UpdateItem on `key`, optionally conditional; `Ok(false)` when the condition
    /// failed.
    pub(crate) async fn update(
        &self,
        key: Item,
        update: Update,
        condition: Option<&str>,
    ) -> Result<bool, StoreError> {
        let written = self
            .update_returning(key, update, condition, ReturnValue::None)
            .await?;
        Ok(written.is_some())
    }

    /// An UpdateItem: `Ok(None)` when its condition failed, else the attributes `returning`
    /// asks for (the same write units whatever it asks for).
    async fn update_returning(
        &self,
        key: Item,
        update: Update,
        condition: Option<&str>,
        returning: ReturnValue,
    ) -> Result<Option<Item>, StoreError> {
        let (expr, names, values) = update.finish();
        self.metrics.write();
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(expr)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(returning)
            .send()
            .await;
        match r {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Puts `item` unless a newer one (by `at`) is stored; equal `at` overwrites.
    async fn put_newest(&self, item: Item, at: i64) -> Result<(), StoreError> {
        self.put_if(
            item,
            "attribute_not_exists(#at) OR #at <= :at",
            [("#at".to_owned(), AT.to_owned())],
            [(":at".to_owned(), n(at))],
        )
        .await
        .map(|_| ())
    }

    /// Sends a PutItem with a condition; `Ok(false)` when the condition failed.
    pub(crate) async fn put_if(
        &self,
        item: Item,
        condition: &str,
        names: impl IntoIterator<Item = (String, String)>,
        values: impl IntoIterator<Item = (String, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let names: std::collections::HashMap<_, _> = names.into_iter().collect();
        let values: std::collections::HashMap<_, _> = values.into_iter().collect();
        self.metrics.write();
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .send()
            .await;
        conditional(r)
    }
}

/// What a status sets besides its own timestamp: all first-wins.
fn status_extras(u: &mut Update, r: &StatusRecord) {
    if let Some(p) = &r.phone_number_id {
        u.set_once(msg::PNID, s(p));
    }
    if let Some((code, message)) = &r.error {
        u.set_once(msg::ERR_CODE, n(*code));
        u.set_once(msg::ERR_MESSAGE, s(message));
    }
    if let Some(c) = &r.callback_data {
        u.set_once(msg::CALLBACK_DATA, s(c));
    }
    if let Some(p) = &r.pricing {
        u.set_once(msg::PRICING, s(p));
    }
    if let Some(who) = &r.recipient {
        if let Some(id) = &who.user_id {
            u.set_once(msg::USER_ID, s(id));
        }
        if let Some(id) = &who.wa_id {
            u.set_once(msg::WA_ID, s(id));
        }
    }
}

impl InboundStore for DynamoStore {
    async fn resolve_customer(
        &self,
        pnid: &str,
        who: &CustomerRef,
    ) -> Result<CustomerKey, StoreError> {
        match (&who.user_id, &who.wa_id) {
            (Some(u), Some(phone)) => {
                let customer = CustomerKey::Bsuid(u.clone());
                self.alias_phone(pnid, phone, &customer, who).await?;
                Ok(customer)
            }
            (Some(u), None) => Ok(CustomerKey::Bsuid(u.clone())),
            (None, Some(phone)) => Ok(self
                .get_alias(pnid, phone, true)
                .await?
                .map_or_else(|| CustomerKey::Phone(phone.clone()), |a| a.customer)),
            (None, None) => Err(StoreError::Corrupt("customer without ids".into())),
        }
    }

    async fn change_customer(
        &self,
        pnid: &str,
        from: &CustomerKey,
        to: &CustomerKey,
        who: &CustomerRef,
        phone: Option<&str>,
    ) -> Result<(), StoreError> {
        // Copied first, re-pointed after: a crash in between leaves the phone on `from`, whose
        // records are all still there, and the redelivered event copies again (each copy is
        // conditional on the record's own time) and re-points.
        self.carry_over(pnid, from, to, who).await?;
        if let Some(phone) = phone {
            let mut u = Update::default();
            u.set(ALIAS_CUSTOMER, s(to.as_storage()));
            let (c, v) = u.bind(ALIAS_CUSTOMER, s(from.as_storage()));
            // Only an alias of `from`: another customer's stays, and none is created.
            self.update(
                key(alias_pk(pnid, phone), ALIAS_SK),
                u,
                Some(&format!("{c} = {v}")),
            )
            .await?;
        }
        Ok(())
    }

    async fn record_message(&self, m: &MessageRecord) -> Result<Recorded, StoreError> {
        // An UpdateItem rather than a PutItem: a status may have created the item first, and
        // its attributes must survive. The message's own attributes mark it as recorded.
        let mut u = Update::default();
        u.set(msg::ID, s(&m.id))
            .set(msg::WAMID, s(&m.wamid))
            .set(msg::PNID, s(&m.phone_number_id))
            .set(msg::CUSTOMER, s(m.customer.as_storage()))
            .set(msg::DIRECTION, s(m.direction.as_str()))
            .set(msg::TYPE, s(&m.message_type))
            .set(msg::TIMESTAMP, n(m.timestamp))
            .set(msg::RAW, s(&m.raw))
            .set(TTL, n(m.expires_at))
            .set(GSI1PK, s(conv_pk(&m.phone_number_id, &m.customer)))
            .set(GSI1SK, s(history_sk(m.timestamp, &m.wamid)));
        if let Some(id) = &m.who.user_id {
            u.set(msg::USER_ID, s(id));
        }
        if let Some(id) = &m.who.wa_id {
            u.set(msg::WA_ID, s(id));
        }
        let id = u.name(msg::ID);
        let written = self
            .update(
                key(msg_pk(&m.wamid), MSG_SK),
                u,
                Some(&format!("attribute_not_exists({id})")),
            )
            .await?;
        Ok(if written {
            Recorded::New
        } else {
            Recorded::Duplicate
        })
    }

    async fn advance_window(
        &self,
        pnid: &str,
        customer: &CustomerKey,
        who: &CustomerRef,
        update: &WindowUpdate,
        profile_name: Option<&str>,
    ) -> Result<(), StoreError> {
        let item_key = || key(conv_pk(pnid, customer), WINDOW_SK);
        let mut u = Update::default();
        u.set(win::LAST_INBOUND_AT, n(update.inbound_at))
            .set(msg::PNID, s(pnid))
            .set(msg::CUSTOMER, s(customer.as_storage()));
        if let Some(id) = &who.user_id {
            u.set(msg::USER_ID, s(id));
        }
        if let Some(id) = &who.wa_id {
            u.set(msg::WA_ID, s(id));
        }
        if let Some(p) = profile_name {
            u.set(win::PROFILE_NAME, s(p));
        }
        let (cs, v) = u.bind(win::CS_UNTIL, n(update.customer_service_until));
        u.set_raw(format!("{cs} = {v}"));
        // Equal counts as newer, so a replay refreshes the ids exactly as the first time.
        let cond = format!("attribute_not_exists({cs}) OR {cs} <= {v}");
        // A failed condition means a newer message is stored: nothing to do.
        self.update(item_key(), u, Some(&cond)).await?;

        if let Some(fep) = update.free_entry_point_until {
            let mut u = Update::default();
            let (f, v) = u.bind(win::FEP_UNTIL, n(fep));
            u.set_raw(format!("{f} = {v}"));
            let cond = format!("attribute_not_exists({f}) OR {f} < {v}");
            self.update(item_key(), u, Some(&cond)).await?;
        }
        Ok(())
    }

    async fn apply_status(&self, r: &StatusRecord) -> Result<Option<SendId>, StoreError> {
        let item_key = || key(msg_pk(&r.wamid), MSG_SK);
        // The earliest timestamp of each status wins; a repeat with the same timestamp passes
        // the condition and rewrites the same values.
        let mut u = Update::default();
        let (st, v) = u.bind(&status_attr(r.status), n(r.timestamp));
        u.set_raw(format!("{st} = {v}"));
        u.set_once(TTL, n(r.expires_at));
        status_extras(&mut u, r);
        let cond = format!("attribute_not_exists({st}) OR {st} >= {v}");
        // The item as it was comes back at no extra cost: whether it already was a send's
        // history record.
        if let Some(old) = self
            .update_returning(item_key(), u, Some(&cond), ReturnValue::AllOld)
            .await?
        {
            return Ok(
                match (opt_s(&old, msg::DIRECTION)?, opt_s(&old, msg::ID)?) {
                    (Some(d), Some(id)) if d == Direction::Outbound.as_str() => SendId::parse(id),
                    _ => None,
                },
            );
        }
        // An earlier timestamp of this status is stored; still keep what else this report
        // brings (each first-wins). The send is not known to hold this status: its own
        // write decides.
        let mut u = Update::default();
        status_extras(&mut u, r);
        if !u.is_empty() {
            self.update(item_key(), u, None).await?;
        }
        Ok(None)
    }

    async fn record_consent(&self, c: &ConsentRecord) -> Result<(), StoreError> {
        self.put_newest(consent_item(c), c.at).await?;
        // A phone key may have been resolved before the phone became an alias, and the
        // carry-over may have read the phone's consents before this write: the alias, read
        // strongly consistent after the write, tells (see `DynamoStore::alias_phone`).
        if let CustomerKey::Phone(phone) = &c.customer
            && let Some(alias) = self.get_alias(&c.phone_number_id, phone, true).await?
            && alias.customer != c.customer
        {
            let aliased = ConsentRecord {
                customer: alias.customer,
                ..c.clone()
            };
            self.put_newest(consent_item(&aliased), c.at).await?;
        }
        Ok(())
    }

    async fn record_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        let mut item = key(account_pk(&a.waba_id), &account_sk(&a.key));
        item.extend(
            a.attributes
                .iter()
                .map(|(k, v)| (format!("{ACCOUNT_ATTR_PREFIX}{k}"), s(v))),
        );
        item.extend([
            ("waba_id".into(), s(&a.waba_id)),
            ("key".into(), s(&a.key)),
            (AT.into(), n(a.at)),
        ]);
        self.put_newest(item, a.at).await
    }

    async fn record_event(&self, e: &EventRecord) -> Result<Recorded, StoreError> {
        let hash = sha256_hex(e.natural_key.as_bytes());
        let scope = e
            .waba_id
            .as_deref()
            .or(e.phone_number_id.as_deref())
            .unwrap_or("-");
        let mut item = key(event_pk(&hash), EVENT_SK);
        item.extend([
            ("natural_key".into(), s(&e.natural_key)),
            ("field".into(), s(&e.field)),
            ("kind".into(), s(&e.kind)),
            (AT.into(), n(e.at)),
            (msg::RAW.into(), s(&e.raw)),
            (TTL.into(), n(e.expires_at)),
            (GSI1PK.into(), s(events_gsi_pk(scope))),
            (GSI1SK.into(), s(format!("{:010}#{hash}", e.at))),
        ]);
        if let Some(w) = &e.waba_id {
            item.insert("waba_id".into(), s(w));
        }
        if let Some(p) = &e.phone_number_id {
            item.insert(msg::PNID.into(), s(p));
        }
        let written = self
            .put_if(item, "attribute_not_exists(pk)", [], [])
            .await?;
        Ok(if written {
            Recorded::New
        } else {
            Recorded::Duplicate
        })
    }
}

/// The item of a consent record.
fn consent_item(c: &ConsentRecord) -> Item {
    let mut item = key(
        conv_pk(&c.phone_number_id, &c.customer),
        &consent_sk(&c.scope),
    );
    item.extend([
        (msg::PNID.into(), s(&c.phone_number_id)),
        (msg::CUSTOMER.into(), s(c.customer.as_storage())),
        ("scope".into(), s(&c.scope)),
        ("consent".into(), s(consent_str(c.consent))),
        ("source".into(), s(c.source.as_str())),
        (AT.into(), n(c.at)),
    ]);
    if let Some(d) = &c.detail {
        item.insert(CONSENT_ORIGIN.into(), s(&d.origin));
        if let Some(p) = &d.proof {
            item.insert(CONSENT_PROOF.into(), s(p));
        }
    }
    item
}

/// The origin (`web_form`, …) of a consent set through the API.
pub(crate) const CONSENT_ORIGIN: &str = "origin";
/// Its proof.
pub(crate) const CONSENT_PROOF: &str = "proof";

pub(crate) fn consent_str(c: wa_domain::ports::Consent) -> &'static str {
    match c {
        wa_domain::ports::Consent::OptedOut => "opted_out",
        wa_domain::ports::Consent::OptedIn => "opted_in",
    }
}
