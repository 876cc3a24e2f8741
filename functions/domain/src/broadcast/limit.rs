//! The messaging limit: how many unique customers a portfolio may start business-initiated
//! conversations with in a rolling 24 hours (tiers 250 / 2,000 / 10,000 / 100,000 /
//! unlimited, from `business_capability_update` and `phone_number_quality_update` webhooks).
//!
//! # Scheme (what [`super::LimitStore`] keeps)
//!
//! - One *charge* item per portfolio and customer, holding when the customer was last
//!   charged (TTL 24 h + a margin). A customer charged in the last 24 hours takes no new
//!   unit, whichever broadcast or API send reaches them (they are already among the window's
//!   unique customers), but is moved to the current hour ([`recount`]) so that they stay
//!   counted for 24 hours from this send; a customer whose customer-service window is open
//!   is not charged (messages inside it are not business-initiated).
//! - One *bucket* counter per portfolio and hour (TTL 25 h). The rolling count is the sum of
//!   the 24 buckets that overlap the last 24 hours (the current hour included). A bucket is
//!   counted until its whole hour has left the window, so capacity comes back up to one hour
//!   late — never early: the count can over-state use, never under-state it.
//! - Capacity is taken in batches: a planner page reserves as many units as it has new
//!   customers in one conditional update of the current bucket (condition: the current
//!   bucket stays ≤ limit − the other 23), so the bucket is written once per page, not once
//!   per message, and is not a hot key.
//!
//! Worst cases (all conservative): a reservation whose customers turn out to be charged by a
//! concurrent sender in between wastes those units for 24 hours; a planner that dies between
//! reserving and recording the charges wastes the units it reserved (its re-run finds them
//! not charged and reserves again). Past buckets are never written after their hour, except
//! by a writer whose clock lags the hour boundary — that writer's reservation can exceed the
//! limit by its own batch at most once per hour.

use crate::model::MessagingLimit;

/// The rolling window, in seconds.
pub const WINDOW_SECS: i64 = 24 * 3600;

/// The bucket width, in seconds.
pub const BUCKET_SECS: i64 = 3600;

/// The number of unique customers a tier allows per rolling 24 hours; `None` = unlimited.
pub fn tier_count(tier: MessagingLimit) -> Option<u64> {
    match tier {
        MessagingLimit::Tier50 => Some(50),
        MessagingLimit::Tier250 => Some(250),
        MessagingLimit::Tier1K => Some(1_000),
        MessagingLimit::Tier2K => Some(2_000),
        MessagingLimit::Tier10K => Some(10_000),
        MessagingLimit::Tier100K => Some(100_000),
        MessagingLimit::Unlimited => None,
    }
}

/// The hour bucket `now` falls in (its start, unix s).
pub fn bucket_of(now: i64) -> i64 {
    now.div_euclid(BUCKET_SECS) * BUCKET_SECS
}

/// The buckets counted at `now`, oldest first: every hour that overlaps `(now − 24 h, now]`.
pub fn counted_buckets(now: i64) -> Vec<i64> {
    let current = bucket_of(now);
    let oldest = bucket_of(now - WINDOW_SECS + 1);
    (0..)
        .map(|i| oldest + i * BUCKET_SECS)
        .take_while(|b| *b <= current)
        .collect()
}

/// When the bucket starting at `bucket` stops being counted.
pub fn bucket_leaves_at(bucket: i64) -> i64 {
    bucket + BUCKET_SECS + WINDOW_SECS
}

/// Given the counts of the counted buckets (oldest first, as [`counted_buckets`]) and the
/// current bucket's count among them (the last), how many of `want` units fit under
/// `limit`, and when to try again if not all: when the oldest non-empty bucket leaves.
pub fn grant(counts: &[(i64, u64)], want: u64, limit: u64) -> (u64, Option<i64>) {
    let used: u64 = counts.iter().map(|(_, c)| c).sum();
    let granted = want.min(limit.saturating_sub(used));
    if granted == want {
        return (granted, None);
    }
    let retry = counts
        .iter()
        .find(|(_, c)| *c > 0)
        .map(|(b, _)| bucket_leaves_at(*b));
    (granted, retry)
}

/// The messaging limit is used up: what [`charge_one`] answers when a send does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitFull {
    /// The limit in force (unique customers per rolling 24 hours).
    pub limit: u64,
    /// When the oldest counted hour leaves the window (unix s), if any was counted.
    pub retry_at: Option<i64>,
}

/// Keeps customers charged earlier in the last 24 hours counted for 24 hours from `now`, as
/// they are sent to again (free: they are already among the unique customers of the window).
/// A customer is counted in the bucket of their last charge, and a bucket leaves the count
/// 24–25 h after its hour; sent to again in a later hour, they must stay counted until 24 h
/// after this send, so they move to the current hour's bucket: its count goes up first, then
/// the charge is recorded at `now`, then the older bucket's count goes down. The rolling sum
/// is the same once done; a crash in between leaves it higher (never lower) until the older
/// bucket leaves the window.
pub async fn recount<L: super::LimitStore>(
    limits: &L,
    portfolio: &str,
    charged: &std::collections::HashMap<String, i64>,
    now: i64,
) -> Result<(), crate::ports::StoreError> {
    let current = bucket_of(now);
    let mut from: std::collections::BTreeMap<i64, i64> = Default::default();
    let mut who = Vec::new();
    for (customer, at) in charged {
        let bucket = bucket_of(*at);
        if bucket < current {
            *from.entry(bucket).or_default() += 1;
            who.push(customer.clone());
        }
    }
    if who.is_empty() {
        return Ok(());
    }
    let moved = i64::try_from(who.len()).unwrap_or(i64::MAX);
    limits
        .adjust_buckets(portfolio, &[(current, moved)])
        .await?;
    limits.record_charges(portfolio, &who, now).await?;
    let back: Vec<(i64, i64)> = from.into_iter().map(|(b, n)| (b, -n)).collect();
    limits.adjust_buckets(portfolio, &back).await
}

/// The portfolio whose limit a number's sends count against: its WhatsApp Business Account
/// once known (a webhook's `entry[].id`, a template sync), else `pn:<phone_number_id>`, so
/// that the number's broadcasts and API sends share one count until the account is known
/// (the tier is then the default one). Charges made under `pn:` stay there when the account
/// becomes known: for up to 24 h after that the two counts are kept apart.
pub async fn portfolio_of<T: crate::templates::TemplateStore>(
    templates: &T,
    phone_number_id: &str,
) -> Result<String, crate::ports::StoreError> {
    Ok(templates
        .waba_of(phone_number_id)
        .await?
        .unwrap_or_else(|| format!("{UNKNOWN_ACCOUNT}{phone_number_id}")))
}

/// The prefix of a portfolio named after its number, while the account is unknown.
pub const UNKNOWN_ACCOUNT: &str = "pn:";

/// Charges one business-initiated send (an API template send) to `customer` (storage key)
/// against `portfolio`'s limit at `now`: free when the customer's window is open or they
/// were charged in the last 24 hours. `Err(LimitFull)`: the limit is reached and nothing
/// was charged.
pub async fn charge_one<L: super::LimitStore>(
    limits: &L,
    portfolio: &str,
    customer: &str,
    window_open: bool,
    default_tier: MessagingLimit,
    now: i64,
) -> Result<Result<(), LimitFull>, crate::ports::StoreError> {
    if window_open {
        return Ok(Ok(()));
    }
    let tier = limits.tier(portfolio).await?.unwrap_or(default_tier);
    let Some(limit) = tier_count(tier) else {
        return Ok(Ok(()));
    };
    let who = [customer.to_owned()];
    let earlier = limits
        .charged_since(portfolio, &who, now - WINDOW_SECS)
        .await?;
    if !earlier.is_empty() {
        recount(limits, portfolio, &earlier, now).await?;
        return Ok(Ok(()));
    }
    let (granted, retry_at) = limits.reserve(portfolio, 1, limit, now).await?;
    if granted == 0 {
        return Ok(Err(LimitFull { limit, retry_at }));
    }
    limits.record_charges(portfolio, &who, now).await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_buckets_cover_the_last_24_hours() {
        let now = 100 * 3600 + 10;
        let b = counted_buckets(now);
        assert_eq!(b.len(), 25);
        assert_eq!(*b.last().unwrap(), 100 * 3600);
        assert_eq!(b[0], 76 * 3600);
        // A second before the hour, the oldest one has left.
        assert_eq!(counted_buckets(100 * 3600 - 1).len(), 24);
        assert_eq!(counted_buckets(100 * 3600).len(), 25);
    }

    #[test]
    fn grant_stops_at_the_limit_and_says_when_capacity_returns() {
        let counts = [(0, 150), (3600, 50), (7200, 0)];
        assert_eq!(grant(&counts, 40, 250), (40, None));
        assert_eq!(grant(&counts, 80, 250), (50, Some(3600 + WINDOW_SECS)));
        assert_eq!(grant(&counts, 1, 200), (0, Some(3600 + WINDOW_SECS)));
    }
}
