//! Management fields (template, quality, capability and account updates), marketing
//! preferences, and messaging-limit tiers.
//!
//! A management webhook carries one `value` per change; [`FieldUpdate::parse`] types it by its
//! field name and never fails: a field Ventana does not model, or a value that does not fit,
//! is [`FieldUpdate::Other`] (the raw value stays in the event).

use serde::Deserialize;

use super::lenient;
use super::{ModelError, parse_item};

/// A typed management update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldUpdate {
    /// `message_template_status_update`: a template was approved, rejected, paused, ….
    TemplateStatus(TemplateStatus),
    /// `template_category_update`: a template's category changed or will change.
    TemplateCategory(TemplateCategory),
    /// `message_template_quality_update`: a template's quality score changed.
    TemplateQuality(TemplateQuality),
    /// `message_template_components_update`: a template's components changed.
    TemplateComponents(TemplateComponents),
    /// `phone_number_quality_update`: a number's messaging limit or quality changed.
    PhoneNumberQuality(PhoneNumberQuality),
    /// `business_capability_update`: the portfolio's messaging or phone-number limits changed.
    BusinessCapability(BusinessCapability),
    /// `account_update`: something happened to the WhatsApp Business Account.
    AccountUpdate(AccountUpdate),
    /// `account_alerts`: an alert about the account or a number (e.g. a limit increase denied).
    AccountAlerts(AccountAlerts),
    /// Any other field, or a value that does not fit its field's model.
    Other {
        /// The webhook field, as sent.
        field: String,
    },
}

impl FieldUpdate {
    /// Types a change's `value` by its `field`; never fails (see [`FieldUpdate::Other`]).
    pub fn parse(field: &str, value: &str) -> FieldUpdate {
        let typed = match field {
            "message_template_status_update" => parse_item::<TemplateStatusWire>(value)
                .ok()
                .and_then(TemplateStatusWire::into_model)
                .map(FieldUpdate::TemplateStatus),
            "template_category_update" => parse_item(value).ok().map(FieldUpdate::TemplateCategory),
            "message_template_quality_update" => {
                parse_item(value).ok().map(FieldUpdate::TemplateQuality)
            }
            "message_template_components_update" => {
                parse_item(value).ok().map(FieldUpdate::TemplateComponents)
            }
            "phone_number_quality_update" => {
                parse_item(value).ok().map(FieldUpdate::PhoneNumberQuality)
            }
            "business_capability_update" => {
                parse_item(value).ok().map(FieldUpdate::BusinessCapability)
            }
            "account_update" => parse_item::<AccountUpdateWire>(value)
                .ok()
                .and_then(AccountUpdateWire::into_model)
                .map(FieldUpdate::AccountUpdate),
            "account_alerts" => parse_item::<AccountAlertsWire>(value)
                .ok()
                .map(|w| FieldUpdate::AccountAlerts(w.into_model())),
            _ => None,
        };
        typed.unwrap_or_else(|| FieldUpdate::Other {
            field: field.to_owned(),
        })
    }
}

/// A template's review status changed. `event` is required: it is what the update says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateStatus {
    /// `APPROVED`, `REJECTED`, `PENDING`, `PAUSED`, `DISABLED`, `FLAGGED`, `REINSTATED`, ….
    pub event: String,
    /// `message_template_id` (an integer on the wire, kept as its text).
    pub template_id: Option<String>,
    /// `message_template_name`.
    pub name: Option<String>,
    /// `message_template_language`.
    pub language: Option<String>,
    /// Why (`NONE`, `INVALID_FORMAT`, `PROMOTIONAL`, …; absent when scheduled for deletion).
    pub reason: Option<String>,
    /// `message_template_category`.
    pub category: Option<String>,
    /// Meta's explanation of a rejection.
    pub rejection_info: Option<RejectionInfo>,
    /// Pause details (`FIRST_PAUSE`, `SECOND_PAUSE`, `UNPAUSE`, …).
    pub other_info: Option<OtherInfo>,
    /// `disable_info.disable_date` (unix seconds).
    pub disable_date: Option<i64>,
}

/// Meta's explanation of a template rejection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RejectionInfo {
    /// What is wrong.
    #[serde(deserialize_with = "lenient::string")]
    pub reason: Option<String>,
    /// How to fix it.
    #[serde(deserialize_with = "lenient::string")]
    pub recommendation: Option<String>,
}

/// Extra detail of a template status change (pauses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct OtherInfo {
    /// `FIRST_PAUSE`, `SECOND_PAUSE`, `RATE_LIMITING_PAUSE`, `UNPAUSE`, `DISABLED`.
    #[serde(deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// Meta's description.
    #[serde(deserialize_with = "lenient::string")]
    pub description: Option<String>,
}

/// A template's category changed (`previous_category` → `new_category`) or will change
/// (`new_category` now, `correct_category` at `category_update_timestamp`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TemplateCategory {
    /// `message_template_id`, as text.
    #[serde(rename = "message_template_id", deserialize_with = "lenient::string")]
    pub template_id: Option<String>,
    /// `message_template_name`.
    #[serde(rename = "message_template_name", deserialize_with = "lenient::string")]
    pub name: Option<String>,
    /// `message_template_language`.
    #[serde(
        rename = "message_template_language",
        deserialize_with = "lenient::string"
    )]
    pub language: Option<String>,
    /// The category before a completed change.
    #[serde(deserialize_with = "lenient::string")]
    pub previous_category: Option<String>,
    /// The current category.
    #[serde(deserialize_with = "lenient::string")]
    pub new_category: Option<String>,
    /// The category it will change to.
    #[serde(deserialize_with = "lenient::string")]
    pub correct_category: Option<String>,
    /// When the impending change applies (unix seconds).
    #[serde(deserialize_with = "lenient::unix")]
    pub category_update_timestamp: Option<i64>,
}

/// A template's quality score changed (`GREEN`, `YELLOW`, `RED`, `UNKNOWN`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TemplateQuality {
    /// `message_template_id`, as text.
    #[serde(rename = "message_template_id", deserialize_with = "lenient::string")]
    pub template_id: Option<String>,
    /// `message_template_name`.
    #[serde(rename = "message_template_name", deserialize_with = "lenient::string")]
    pub name: Option<String>,
    /// `message_template_language`.
    #[serde(
        rename = "message_template_language",
        deserialize_with = "lenient::string"
    )]
    pub language: Option<String>,
    /// The score before.
    #[serde(deserialize_with = "lenient::string")]
    pub previous_quality_score: Option<String>,
    /// The score now.
    #[serde(deserialize_with = "lenient::string")]
    pub new_quality_score: Option<String>,
}

/// A template's components changed; which template is all Ventana keeps (the rest is in the
/// raw value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TemplateComponents {
    /// `message_template_id`, as text.
    #[serde(rename = "message_template_id", deserialize_with = "lenient::string")]
    pub template_id: Option<String>,
    /// `message_template_name`.
    #[serde(rename = "message_template_name", deserialize_with = "lenient::string")]
    pub name: Option<String>,
    /// `message_template_language`.
    #[serde(
        rename = "message_template_language",
        deserialize_with = "lenient::string"
    )]
    pub language: Option<String>,
}

/// A business number's messaging limit or quality changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PhoneNumberQuality {
    /// The number, digits only.
    #[serde(deserialize_with = "lenient::string")]
    pub display_phone_number: Option<String>,
    /// `ONBOARDING`, `THROUGHPUT_UPGRADE`, `UPGRADE`, `DOWNGRADE`, `FLAGGED`, ….
    #[serde(deserialize_with = "lenient::string")]
    pub event: Option<String>,
    /// The portfolio's messaging limit (`TIER_2K`, …): the field to use.
    #[serde(deserialize_with = "lenient::string")]
    pub max_daily_conversations_per_business: Option<String>,
    /// The limit now (slated for removal; kept for older payloads).
    #[serde(deserialize_with = "lenient::string")]
    pub current_limit: Option<String>,
    /// The limit before (slated for removal).
    #[serde(deserialize_with = "lenient::string")]
    pub old_limit: Option<String>,
}

impl PhoneNumberQuality {
    /// The messaging limit now in force: `max_daily_conversations_per_business`, else
    /// `current_limit`.
    pub fn messaging_limit(&self) -> Option<MessagingLimit> {
        [
            &self.max_daily_conversations_per_business,
            &self.current_limit,
        ]
        .into_iter()
        .flatten()
        .find_map(|s| MessagingLimit::parse_any(s))
    }
}

/// The portfolio's capabilities changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BusinessCapability {
    /// The portfolio's messaging limit: a tier (`TIER_2K`) or a count (`2000`), as text.
    #[serde(deserialize_with = "lenient::string")]
    pub max_daily_conversations_per_business: Option<String>,
    /// The older per-number limit (`250`, `2000`, …, `-1` = unlimited), as text.
    #[serde(deserialize_with = "lenient::string")]
    pub max_daily_conversation_per_phone: Option<String>,
    /// How many business numbers the portfolio may have.
    #[serde(deserialize_with = "lenient::int")]
    pub max_phone_numbers_per_business: Option<i64>,
    /// How many business numbers one account may have.
    #[serde(deserialize_with = "lenient::int")]
    pub max_phone_numbers_per_waba: Option<i64>,
}

impl BusinessCapability {
    /// The messaging limit reported: `max_daily_conversations_per_business`, else
    /// `max_daily_conversation_per_phone`.
    pub fn messaging_limit(&self) -> Option<MessagingLimit> {
        [
            &self.max_daily_conversations_per_business,
            &self.max_daily_conversation_per_phone,
        ]
        .into_iter()
        .flatten()
        .find_map(|s| MessagingLimit::parse_any(s))
    }
}

/// Something happened to the WhatsApp Business Account. `event` is required: it is what the
/// update says; the other fields are present only for the events that carry them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountUpdate {
    /// `ACCOUNT_VIOLATION`, `ACCOUNT_RESTRICTION`, `DISABLED_UPDATE`, `PARTNER_ADDED`,
    /// `VOLUME_BASED_PRICING_TIER_UPDATE`, `ACCOUNT_OFFBOARDED`, ….
    pub event: String,
    /// `restriction_info[]`, for `ACCOUNT_RESTRICTION`.
    pub restrictions: Vec<Restriction>,
    /// `violation_info.violation_type`, for `ACCOUNT_VIOLATION`.
    pub violation_type: Option<String>,
    /// `ban_info.waba_ban_state` (`DISABLE`, `REINSTATE`, `SCHEDULE_FOR_DISABLE`), for
    /// `DISABLED_UPDATE`.
    pub ban_state: Option<String>,
    /// `ban_info.waba_ban_date`, as sent (a date such as `April 17, 2025`).
    pub ban_date: Option<String>,
    /// `waba_info.waba_id`, for partner and linking events.
    pub waba_id: Option<String>,
    /// `waba_info.owner_business_id`.
    pub owner_business_id: Option<String>,
    /// `volume_tier_info`, for `VOLUME_BASED_PRICING_TIER_UPDATE`.
    pub volume_tier: Option<VolumeTier>,
    /// `country`, for `BUSINESS_PRIMARY_LOCATION_COUNTRY_UPDATE`.
    pub country: Option<String>,
}

/// One restriction put on the account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Restriction {
    /// `RESTRICTED_BIZ_INITIATED_MESSAGING`, `RESTRICTED_ADD_PHONE_NUMBER_ACTION`, ….
    #[serde(deserialize_with = "lenient::string")]
    pub restriction_type: Option<String>,
    /// When it ends (unix seconds; RFC 3339 dates are converted).
    #[serde(deserialize_with = "lenient::unix")]
    pub expiration: Option<i64>,
}

/// The account's volume-based pricing tier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct VolumeTier {
    /// When the tier changed (unix seconds); with duplicates, the smallest counts.
    #[serde(deserialize_with = "lenient::unix")]
    pub tier_update_time: Option<i64>,
    /// `UTILITY`, `AUTHENTICATION`, ….
    #[serde(deserialize_with = "lenient::string")]
    pub pricing_category: Option<String>,
    /// The tier's message range (`25000001:50000000`).
    #[serde(deserialize_with = "lenient::string")]
    pub tier: Option<String>,
    /// The month it applies to (`2025-11`).
    #[serde(deserialize_with = "lenient::string")]
    pub effective_month: Option<String>,
    /// The pricing region.
    #[serde(deserialize_with = "lenient::string")]
    pub region: Option<String>,
}

/// An alert about the account, portfolio or a number. Read from `value.alert_info`, or from
/// the value itself when Meta sends the fields flat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountAlerts {
    /// What the alert is about (`BUSINESS`, `PHONE_NUMBER`, …).
    pub entity_type: Option<String>,
    /// The id of that entity.
    pub entity_id: Option<String>,
    /// `INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED`, `…_FAILED`, `…_NEED_MORE_INFO`,
    /// `OBA_APPROVED`, ….
    pub alert_type: Option<String>,
    /// Meta's description.
    pub alert_description: Option<String>,
    /// `CRITICAL`, `WARNING` or `INFORMATIONAL`.
    pub alert_severity: Option<String>,
    /// `ACTIVE`, `NONE`, ….
    pub alert_status: Option<String>,
}

/// A customer's marketing-message preference: one element of `value.user_preferences[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPreference {
    /// The customer's phone number.
    pub wa_id: Option<String>,
    /// The customer's BSUID.
    pub user_id: Option<String>,
    /// `marketing_messages`.
    pub category: Option<String>,
    /// Stop, resume, or another value as sent.
    pub value: PreferenceValue,
    /// Meta's description.
    pub detail: Option<String>,
    /// `signup_id`, for sign-ups through a link.
    pub signup_id: Option<String>,
    /// When the customer chose (unix seconds). Optional so that an opt-out is never refused
    /// for a missing timestamp.
    pub timestamp: Option<i64>,
}

impl UserPreference {
    /// Parses a `user_preferences[]` element; only `value` is required.
    pub fn parse(item: &str) -> Result<UserPreference, ModelError> {
        let w: PreferenceWire = parse_item(item)?;
        let value = w
            .value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(PreferenceValue::parse)
            .ok_or(ModelError::Missing("value"))?;
        Ok(UserPreference {
            wa_id: w.wa_id,
            user_id: w.user_id,
            category: w.category,
            value,
            detail: w.detail,
            signup_id: w.signup_id,
            timestamp: w.timestamp,
        })
    }
}

/// What a customer chose about marketing messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PreferenceValue {
    /// `stop`: no more marketing messages.
    Stop,
    /// `resume`: marketing messages again.
    Resume,
    /// Anything else (e.g. `signup`), as sent.
    Other(String),
}

impl PreferenceValue {
    /// Reads Meta's `value` (case-insensitively); never fails.
    pub fn parse(s: &str) -> PreferenceValue {
        if s.eq_ignore_ascii_case("stop") {
            PreferenceValue::Stop
        } else if s.eq_ignore_ascii_case("resume") {
            PreferenceValue::Resume
        } else {
            PreferenceValue::Other(s.to_owned())
        }
    }
}

/// A messaging-limit tier: how many unique customers the business may start conversations
/// with in a rolling 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessagingLimit {
    /// `TIER_50`.
    Tier50,
    /// `TIER_250`: a new portfolio.
    Tier250,
    /// `TIER_1K`: older per-number tier.
    Tier1K,
    /// `TIER_2K`.
    Tier2K,
    /// `TIER_10K`.
    Tier10K,
    /// `TIER_100K`.
    Tier100K,
    /// `TIER_UNLIMITED`.
    Unlimited,
}

impl MessagingLimit {
    /// The tier names [`MessagingLimit::parse`] reads, for messages about a bad one.
    pub const NAMES: &'static str =
        "one of TIER_50, TIER_250, TIER_1K, TIER_2K, TIER_10K, TIER_100K, TIER_UNLIMITED";

    /// Reads a tier name (`TIER_2K`); `TIER_NOT_SET` and anything unknown give `None`.
    pub fn parse(tier: &str) -> Option<MessagingLimit> {
        Some(match tier.trim() {
            "TIER_50" => MessagingLimit::Tier50,
            "TIER_250" => MessagingLimit::Tier250,
            "TIER_1K" => MessagingLimit::Tier1K,
            "TIER_2K" => MessagingLimit::Tier2K,
            "TIER_10K" => MessagingLimit::Tier10K,
            "TIER_100K" => MessagingLimit::Tier100K,
            "TIER_UNLIMITED" => MessagingLimit::Unlimited,
            _ => return None,
        })
    }

    /// Reads the count form `business_capability_update` uses (`2000`; `-1` = unlimited).
    pub fn from_count(count: i64) -> Option<MessagingLimit> {
        Some(match count {
            -1 => MessagingLimit::Unlimited,
            50 => MessagingLimit::Tier50,
            250 => MessagingLimit::Tier250,
            1_000 => MessagingLimit::Tier1K,
            2_000 => MessagingLimit::Tier2K,
            10_000 => MessagingLimit::Tier10K,
            100_000 => MessagingLimit::Tier100K,
            _ => return None,
        })
    }

    /// Reads a tier name or a count.
    fn parse_any(s: &str) -> Option<MessagingLimit> {
        MessagingLimit::parse(s).or_else(|| s.trim().parse().ok().and_then(Self::from_count))
    }

    /// The tier's name as Meta writes it.
    pub fn as_str(&self) -> &'static str {
        match self {
            MessagingLimit::Tier50 => "TIER_50",
            MessagingLimit::Tier250 => "TIER_250",
            MessagingLimit::Tier1K => "TIER_1K",
            MessagingLimit::Tier2K => "TIER_2K",
            MessagingLimit::Tier10K => "TIER_10K",
            MessagingLimit::Tier100K => "TIER_100K",
            MessagingLimit::Unlimited => "TIER_UNLIMITED",
        }
    }

    /// How many unique customers may be reached in 24 hours; `None` means unlimited.
    pub fn daily_unique_recipients(&self) -> Option<u64> {
        match self {
            MessagingLimit::Tier50 => Some(50),
            MessagingLimit::Tier250 => Some(250),
            MessagingLimit::Tier1K => Some(1_000),
            MessagingLimit::Tier2K => Some(2_000),
            MessagingLimit::Tier10K => Some(10_000),
            MessagingLimit::Tier100K => Some(100_000),
            MessagingLimit::Unlimited => None,
        }
    }
}

// ---- wire shapes ----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct TemplateStatusWire {
    #[serde(deserialize_with = "lenient::string")]
    event: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    message_template_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    message_template_name: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    message_template_language: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    reason: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    message_template_category: Option<String>,
    #[serde(deserialize_with = "lenient::object")]
    rejection_info: Option<RejectionInfo>,
    #[serde(deserialize_with = "lenient::object")]
    other_info: Option<OtherInfo>,
    #[serde(deserialize_with = "lenient::object")]
    disable_info: Option<DisableInfoWire>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DisableInfoWire {
    #[serde(deserialize_with = "lenient::unix")]
    disable_date: Option<i64>,
}

impl TemplateStatusWire {
    fn into_model(self) -> Option<TemplateStatus> {
        Some(TemplateStatus {
            event: self.event.filter(|e| !e.trim().is_empty())?,
            template_id: self.message_template_id,
            name: self.message_template_name,
            language: self.message_template_language,
            reason: self.reason,
            category: self.message_template_category,
            rejection_info: self.rejection_info,
            other_info: self.other_info,
            disable_date: self.disable_info.and_then(|d| d.disable_date),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AccountUpdateWire {
    #[serde(deserialize_with = "lenient::string")]
    event: Option<String>,
    #[serde(deserialize_with = "lenient::list")]
    restriction_info: Vec<Restriction>,
    #[serde(deserialize_with = "lenient::object")]
    violation_info: Option<ViolationInfoWire>,
    #[serde(deserialize_with = "lenient::object")]
    ban_info: Option<BanInfoWire>,
    #[serde(deserialize_with = "lenient::object")]
    waba_info: Option<WabaInfoWire>,
    #[serde(deserialize_with = "lenient::object")]
    volume_tier_info: Option<VolumeTier>,
    #[serde(deserialize_with = "lenient::string")]
    country: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ViolationInfoWire {
    #[serde(deserialize_with = "lenient::string")]
    violation_type: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BanInfoWire {
    #[serde(deserialize_with = "lenient::string")]
    waba_ban_state: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    waba_ban_date: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WabaInfoWire {
    #[serde(deserialize_with = "lenient::string")]
    waba_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    owner_business_id: Option<String>,
}

impl AccountUpdateWire {
    fn into_model(self) -> Option<AccountUpdate> {
        let ban = self.ban_info.unwrap_or_default();
        let waba = self.waba_info.unwrap_or_default();
        Some(AccountUpdate {
            event: self.event.filter(|e| !e.trim().is_empty())?,
            restrictions: self.restriction_info,
            violation_type: self.violation_info.and_then(|v| v.violation_type),
            ban_state: ban.waba_ban_state,
            ban_date: ban.waba_ban_date,
            waba_id: waba.waba_id,
            owner_business_id: waba.owner_business_id,
            volume_tier: self.volume_tier_info,
            country: self.country,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AccountAlertsWire {
    #[serde(deserialize_with = "lenient::string")]
    entity_type: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    entity_id: Option<String>,
    #[serde(deserialize_with = "lenient::object")]
    alert_info: Option<AlertInfoWire>,
    // The same fields flat on the value (no `flatten`: it would buffer and break raw values).
    #[serde(deserialize_with = "lenient::string")]
    alert_type: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    alert_description: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    alert_severity: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    alert_status: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AlertInfoWire {
    #[serde(deserialize_with = "lenient::string")]
    alert_type: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    alert_description: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    alert_severity: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    alert_status: Option<String>,
}

impl AccountAlertsWire {
    fn into_model(self) -> AccountAlerts {
        let info = self.alert_info.unwrap_or_default();
        AccountAlerts {
            entity_type: self.entity_type,
            entity_id: self.entity_id,
            alert_type: info.alert_type.or(self.alert_type),
            alert_description: info.alert_description.or(self.alert_description),
            alert_severity: info.alert_severity.or(self.alert_severity),
            alert_status: info.alert_status.or(self.alert_status),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PreferenceWire {
    #[serde(deserialize_with = "lenient::string")]
    wa_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    user_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    category: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    value: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    detail: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    signup_id: Option<String>,
    #[serde(deserialize_with = "lenient::unix")]
    timestamp: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_status_keeps_integer_ids_exactly() {
        let u = FieldUpdate::parse(
            "message_template_status_update",
            r#"{"event":"PAUSED","message_template_id":1689556908129835,"message_template_name":"cart","message_template_language":"en","reason":null,"other_info":{"title":"FIRST_PAUSE","description":"d"},"disable_info":{"disable_date":"1751247548"}}"#,
        );
        let FieldUpdate::TemplateStatus(t) = u else {
            panic!("{u:?}")
        };
        assert_eq!(t.event, "PAUSED");
        assert_eq!(t.template_id.as_deref(), Some("1689556908129835"));
        assert_eq!(t.reason, None);
        assert_eq!(t.other_info.unwrap().title.as_deref(), Some("FIRST_PAUSE"));
        assert_eq!(t.disable_date, Some(1_751_247_548));
    }

    #[test]
    fn mismatches_become_other_never_errors() {
        for (field, value) in [
            (
                "message_template_status_update",
                r#"{"message_template_id":1}"#,
            ),
            ("message_template_status_update", "[]"),
            ("account_update", r#"{"waba_info":{}}"#),
            ("phone_number_quality_update", r#""TIER_2K""#),
            ("template_category_update", "not json"),
            ("brand_new_field", r#"{"event":"X"}"#),
        ] {
            assert_eq!(
                FieldUpdate::parse(field, value),
                FieldUpdate::Other {
                    field: field.into()
                },
                "{field}: {value}"
            );
        }
    }

    #[test]
    fn category_quality_and_components_updates() {
        let u = FieldUpdate::parse(
            "template_category_update",
            r#"{"message_template_id":1,"message_template_name":"n","message_template_language":"en","new_category":"MARKETING","correct_category":"UTILITY","category_update_timestamp":1750344882}"#,
        );
        let FieldUpdate::TemplateCategory(c) = u else {
            panic!()
        };
        assert_eq!(c.template_id.as_deref(), Some("1"));
        assert_eq!(c.correct_category.as_deref(), Some("UTILITY"));
        assert_eq!(c.category_update_timestamp, Some(1_750_344_882));
        let u = FieldUpdate::parse(
            "message_template_quality_update",
            r#"{"previous_quality_score":"GREEN","new_quality_score":"RED","message_template_id":2}"#,
        );
        assert!(
            matches!(u, FieldUpdate::TemplateQuality(q) if q.new_quality_score.as_deref() == Some("RED"))
        );
        let u = FieldUpdate::parse(
            "message_template_components_update",
            r#"{"message_template_id":3,"message_template_name":"t","message_template_title":{"type":"TEXT"}}"#,
        );
        assert!(
            matches!(u, FieldUpdate::TemplateComponents(c) if c.template_id.as_deref() == Some("3"))
        );
    }

    #[test]
    fn quality_and_capability_updates_give_the_messaging_limit() {
        let u = FieldUpdate::parse(
            "phone_number_quality_update",
            r#"{"display_phone_number":"15550783881","event":"THROUGHPUT_UPGRADE","max_daily_conversations_per_business":"TIER_2K","current_limit":"TIER_UNLIMITED"}"#,
        );
        let FieldUpdate::PhoneNumberQuality(q) = u else {
            panic!()
        };
        assert_eq!(q.messaging_limit(), Some(MessagingLimit::Tier2K));
        let q = PhoneNumberQuality {
            current_limit: Some("TIER_10K".into()),
            ..Default::default()
        };
        assert_eq!(q.messaging_limit(), Some(MessagingLimit::Tier10K));

        let u = FieldUpdate::parse(
            "business_capability_update",
            r#"{"max_daily_conversations_per_business":2000,"max_phone_numbers_per_waba":25}"#,
        );
        let FieldUpdate::BusinessCapability(b) = u else {
            panic!()
        };
        assert_eq!(
            b.max_daily_conversations_per_business.as_deref(),
            Some("2000")
        );
        assert_eq!(b.messaging_limit(), Some(MessagingLimit::Tier2K));
        assert_eq!(b.max_phone_numbers_per_waba, Some(25));
        let b = BusinessCapability {
            max_daily_conversation_per_phone: Some("-1".into()),
            ..Default::default()
        };
        assert_eq!(b.messaging_limit(), Some(MessagingLimit::Unlimited));
    }

    #[test]
    fn account_updates_flatten_their_info_objects() {
        let u = FieldUpdate::parse(
            "account_update",
            r#"{"event":"ACCOUNT_RESTRICTION","restriction_info":[{"restriction_type":"RESTRICTED_BIZ_INITIATED_MESSAGING","expiration":1641330498},{"restriction_type":"RESTRICTED_ADD_PHONE_NUMBER_ACTION","expiration":"2022-12-12T07:09:27.000Z"}]}"#,
        );
        let FieldUpdate::AccountUpdate(a) = u else {
            panic!()
        };
        assert_eq!(a.restrictions.len(), 2);
        assert_eq!(a.restrictions[1].expiration, Some(1_670_828_967));
        // Some senders write a single restriction object.
        let u = FieldUpdate::parse(
            "account_update",
            r#"{"event":"ACCOUNT_RESTRICTION","restriction_info":{"restriction_type":"X"}}"#,
        );
        assert!(matches!(u, FieldUpdate::AccountUpdate(a) if a.restrictions.len() == 1));
        let u = FieldUpdate::parse(
            "account_update",
            r#"{"event":"DISABLED_UPDATE","ban_info":{"waba_ban_state":"DISABLE","waba_ban_date":"October 9, 2023"}}"#,
        );
        assert!(
            matches!(u, FieldUpdate::AccountUpdate(a) if a.ban_state.as_deref() == Some("DISABLE"))
        );
    }

    #[test]
    fn account_alerts_are_read_nested_or_flat() {
        let nested = FieldUpdate::parse(
            "account_alerts",
            r#"{"entity_type":"BUSINESS","entity_id":"1","alert_info":{"alert_severity":"WARNING","alert_status":"ACTIVE","alert_type":"INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED","alert_description":"d"}}"#,
        );
        let flat = FieldUpdate::parse(
            "account_alerts",
            r#"{"entity_type":"BUSINESS","entity_id":"1","alert_severity":"WARNING","alert_status":"ACTIVE","alert_type":"INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED","alert_description":"d"}"#,
        );
        assert_eq!(nested, flat);
        let FieldUpdate::AccountAlerts(a) = nested else {
            panic!()
        };
        assert_eq!(
            a.alert_type.as_deref(),
            Some("INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED")
        );
        assert_eq!(a.alert_severity.as_deref(), Some("WARNING"));
    }

    #[test]
    fn preferences_stop_resume_and_others() {
        let p = UserPreference::parse(
            r#"{"wa_id":"16505551234","detail":"d","category":"marketing_messages","value":"stop","timestamp":1731705721}"#,
        )
        .unwrap();
        assert_eq!(p.value, PreferenceValue::Stop);
        assert_eq!(p.timestamp, Some(1_731_705_721));
        assert_eq!(PreferenceValue::parse("RESUME"), PreferenceValue::Resume);
        assert_eq!(
            PreferenceValue::parse("signup"),
            PreferenceValue::Other("signup".into())
        );
        // A stop without a timestamp is still a stop.
        let p = UserPreference::parse(r#"{"user_id":"US.1","value":"stop"}"#).unwrap();
        assert_eq!(p.timestamp, None);
        assert_eq!(p.user_id.as_deref(), Some("US.1"));
        assert!(matches!(
            UserPreference::parse(r#"{"wa_id":"1","value":""}"#),
            Err(ModelError::Missing("value"))
        ));
        assert!(matches!(
            UserPreference::parse("[]"),
            Err(ModelError::Json(_))
        ));
    }

    #[test]
    fn messaging_limit_tiers() {
        let all = [
            ("TIER_50", Some(50)),
            ("TIER_250", Some(250)),
            ("TIER_1K", Some(1_000)),
            ("TIER_2K", Some(2_000)),
            ("TIER_10K", Some(10_000)),
            ("TIER_100K", Some(100_000)),
            ("TIER_UNLIMITED", None),
        ];
        for (name, reach) in all {
            let t = MessagingLimit::parse(name).unwrap();
            assert_eq!(t.as_str(), name);
            assert_eq!(t.daily_unique_recipients(), reach);
            if let Some(n) = reach {
                assert_eq!(MessagingLimit::from_count(n as i64), Some(t));
            }
        }
        assert_eq!(MessagingLimit::parse("TIER_NOT_SET"), None);
        assert_eq!(MessagingLimit::parse("tier_2k"), None);
        assert_eq!(
            MessagingLimit::from_count(-1),
            Some(MessagingLimit::Unlimited)
        );
        assert_eq!(MessagingLimit::from_count(3), None);
        assert!(MessagingLimit::Tier2K < MessagingLimit::Unlimited);
    }
}
