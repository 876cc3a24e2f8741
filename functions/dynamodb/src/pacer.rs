//! [`LeaseStore`], [`PairStore`] and [`BrakeStore`]: the outbound pacer's slot counters, the
//! per-recipient pair-rate state and each number's brakes (the algorithm and its bounds:
//! `wa_domain::pacing`).
//!
//! | what | `pk` | `sk` | attributes | written with |
//! |---|---|---|---|---|
//! | slot counter | `PACE#{pnid}#{slot}#{shard}` | `PACE` | `used`, `cap` (N), `ttl` | one UpdateItem `ADD used :n`, if `attribute_not_exists(used) OR used <= :cap − n`; `UPDATED_NEW` on success, `ALL_OLD` on a failed condition, so the caller learns the counter either way |
//! | pair state | `PAIR#{pnid}#{customer}` | `PAIR` | `tat_ms`, `strikes`, `blocked_until_ms`, `rev` (N), `ttl` | PutItem if `rev` is the previous version (`attribute_not_exists(pk)` for the first) |
//!
//! | brakes | `NUMBER#{pnid}` | `BRAKES` | `slow_until_ms`, `hold_until_ms`, `hold_code` (N) | UpdateItem `SET` if the stored time is absent or earlier (the later brake stays); read with an eventually consistent GetItem, at most once a second per number and worker |
//!
//! A slot key is written for about two slots (≈ 200 ms) and never again; each item is under
//! 100 bytes, so every request costs one write unit (a refused one too). Both kinds carry
//! `ttl`: a slot counter a minute after its slot, a pair state once it no longer constrains
//! anything. Neither is history, and neither is ever read back by the pacer (the counter
//! comes back with the write).

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use wa_domain::customer::CustomerKey;
use wa_domain::pacing::pair::{PairState, PairStore};
use wa_domain::pacing::{BrakeStore, Brakes, Lease, LeaseStore, ShardKey};
use wa_domain::ports::StoreError;

use crate::DynamoStore;
use crate::attr::{Item, Update, conditional, n, opt_n, req_n, unavailable};
use crate::keys::{TTL, key};

const PACE_SK: &str = "PACE";
const BRAKES_SK: &str = "BRAKES";
const SLOW_UNTIL: &str = "slow_until_ms";
const HOLD_UNTIL: &str = "hold_until_ms";
const HOLD_CODE: &str = "hold_code";
const PAIR_SK: &str = "PAIR";

const USED: &str = "used";
const CAP: &str = "cap";
const TAT: &str = "tat_ms";
const STRIKES: &str = "strikes";
const BLOCKED_UNTIL: &str = "blocked_until_ms";
const REV: &str = "rev";

fn pace_pk(k: &ShardKey<'_>) -> String {
    format!("PACE#{}#{}#{}", k.phone_number_id, k.slot, k.shard)
}

fn pair_pk(pnid: &str, customer: &CustomerKey) -> String {
    format!("PAIR#{pnid}#{}", customer.as_storage())
}

/// The counter in a returned item, if there is one.
fn used_in(item: Option<&Item>) -> Result<Option<u32>, StoreError> {
    let Some(used) = item.map(|i| opt_n(i, USED)).transpose()?.flatten() else {
        return Ok(None);
    };
    u32::try_from(used)
        .map(Some)
        .map_err(|_| StoreError::Corrupt(format!("slot counter out of range: {used}")))
}

impl LeaseStore for DynamoStore {
    async fn try_lease(
        &self,
        slot: &ShardKey<'_>,
        count: u32,
        capacity: u32,
        expires_at: i64,
    ) -> Result<Lease, StoreError> {
        if count == 0 || count > capacity {
            return Ok(Lease {
                granted: 0,
                used: None,
            });
        }
        self.metrics.write();
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pace_pk(slot), PACE_SK)))
            .update_expression("ADD #used :n SET #ttl = :ttl, #cap = :cap")
            .condition_expression("attribute_not_exists(#used) OR #used <= :max")
            .expression_attribute_names("#used", USED)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_names("#cap", CAP)
            .expression_attribute_values(":n", n(i64::from(count)))
            .expression_attribute_values(":max", n(i64::from(capacity - count)))
            .expression_attribute_values(":cap", n(i64::from(capacity)))
            .expression_attribute_values(":ttl", n(expires_at))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => Ok(Lease {
                granted: count,
                used: used_in(out.attributes.as_ref())?,
            }),
            Err(e) => match e.as_service_error() {
                // Too few tokens left: not an error, and the counter comes back with it.
                Some(UpdateItemError::ConditionalCheckFailedException(refused)) => Ok(Lease {
                    granted: 0,
                    used: used_in(refused.item())?,
                }),
                _ => Err(unavailable(e)),
            },
        }
    }
}

fn brakes_pk(pnid: &str) -> String {
    format!("NUMBER#{pnid}")
}

impl DynamoStore {
    /// Sets `until` (an attribute and its time), and `also` with it, on the number's brakes
    /// item if that time is absent there or earlier: the later brake stays.
    async fn set_brake(
        &self,
        pnid: &str,
        until: (&str, i64),
        also: Option<(&str, i64)>,
    ) -> Result<(), StoreError> {
        let mut u = Update::default();
        u.set(until.0, n(until.1));
        if let Some((name, value)) = also {
            u.set(name, n(value));
        }
        let (t, v) = u.bind(until.0, n(until.1));
        // A later brake already there (the condition fails): nothing to do.
        self.update(
            key(brakes_pk(pnid), BRAKES_SK),
            u,
            Some(&format!("attribute_not_exists({t}) OR {t} < {v}")),
        )
        .await
        .map(|_| ())
    }
}

impl BrakeStore for DynamoStore {
    async fn brakes(&self, phone_number_id: &str) -> Result<Brakes, StoreError> {
        let Some(item) = self
            .get(key(brakes_pk(phone_number_id), BRAKES_SK), false)
            .await?
        else {
            return Ok(Brakes::default());
        };
        Ok(Brakes {
            slow_until_ms: opt_n(&item, SLOW_UNTIL)?,
            hold: match (opt_n(&item, HOLD_UNTIL)?, opt_n(&item, HOLD_CODE)?) {
                (Some(until), Some(code)) => Some((until, code)),
                _ => None,
            },
        })
    }

    async fn slow_down(&self, phone_number_id: &str, until_ms: i64) -> Result<(), StoreError> {
        self.set_brake(phone_number_id, (SLOW_UNTIL, until_ms), None)
            .await
    }

    async fn hold(
        &self,
        phone_number_id: &str,
        until_ms: i64,
        code: i64,
    ) -> Result<(), StoreError> {
        self.set_brake(
            phone_number_id,
            (HOLD_UNTIL, until_ms),
            Some((HOLD_CODE, code)),
        )
        .await
    }
}

fn number<T: TryFrom<i64>>(item: &Item, name: &str) -> Result<T, StoreError> {
    let v = req_n(item, name)?;
    T::try_from(v).map_err(|_| StoreError::Corrupt(format!("attribute `{name}` out of range")))
}

impl PairStore for DynamoStore {
    async fn pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        consistent: bool,
    ) -> Result<Option<PairState>, StoreError> {
        let Some(item) = self
            .get(key(pair_pk(phone_number_id, customer), PAIR_SK), consistent)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(PairState {
            tat_ms: req_n(&item, TAT)?,
            strikes: number(&item, STRIKES)?,
            blocked_until_ms: req_n(&item, BLOCKED_UNTIL)?,
            rev: number(&item, REV)?,
        }))
    }

    async fn put_pair_state(
        &self,
        phone_number_id: &str,
        customer: &CustomerKey,
        state: &PairState,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let (Some(previous), Ok(rev)) = (state.rev.checked_sub(1), i64::try_from(state.rev)) else {
            return Ok(false);
        };
        let mut item = key(pair_pk(phone_number_id, customer), PAIR_SK);
        item.extend([
            (TAT.to_owned(), n(state.tat_ms)),
            (STRIKES.to_owned(), n(i64::from(state.strikes))),
            (BLOCKED_UNTIL.to_owned(), n(state.blocked_until_ms)),
            (REV.to_owned(), n(rev)),
            (TTL.to_owned(), n(expires_at)),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = if previous == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#rev = :previous")
                .expression_attribute_names("#rev", REV)
                .expression_attribute_values(
                    ":previous",
                    n(i64::try_from(previous).unwrap_or(i64::MAX)),
                )
        };
        self.metrics.write();
        conditional(put.send().await)
    }
}
