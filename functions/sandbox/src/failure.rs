//! Failure injection: rules that make matching sends fail the way Meta fails.

use serde::{Deserialize, Serialize};

use crate::meta::digits;

/// How a matching send fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureMode {
    /// HTTP 400, code 130429: the number's throughput was reached (`throughput`).
    Throughput,
    /// HTTP 400, code 131047: more than 24 h since the customer last wrote (`window_closed`).
    WindowClosed,
    /// HTTP 400, code 131056: too many messages to this recipient (`pair_rate`).
    PairRate,
    /// HTTP 400, code 131050: the recipient opted out of marketing messages (`opted_out`).
    OptedOut,
    /// HTTP 400, code 131026: the recipient cannot receive the message (`undeliverable`).
    Undeliverable,
    /// HTTP 500, code 131000: Meta's "something went wrong" (`server_error`).
    ServerError,
    /// HTTP 401, code 190: the access token expired, a "stop sending" code (`token_expired`).
    TokenExpired,
    /// HTTP 503 with a plain-text body, as a load balancer answers (`unavailable`).
    Unavailable,
    /// The send is received (recorded, given a wamid, and its status webhooks are posted as
    /// for a success: the message went out) but the answer is held for
    /// [`SandboxConfig::hold_for`](crate::SandboxConfig::hold_for), longer than any client
    /// timeout (`timeout_after_receive`).
    TimeoutAfterReceive,
    /// Like [`TimeoutAfterReceive`](Self::TimeoutAfterReceive), but the connection is closed
    /// at once without a complete answer (`reset_after_receive`).
    ResetAfterReceive,
    /// The send is answered with a wamid, then a `failed` status webhook with this code is
    /// posted instead of `sent`/`delivered`/`read` (`async_failure`, e.g. 131049 or 131047).
    AsyncFailure {
        /// The code in `statuses[].errors[].code`.
        code: i64,
    },
}

impl FailureMode {
    /// The mode's name in the control API (`throughput`, `async_failure`, …).
    pub fn name(&self) -> &'static str {
        match self {
            FailureMode::Throughput => "throughput",
            FailureMode::WindowClosed => "window_closed",
            FailureMode::PairRate => "pair_rate",
            FailureMode::OptedOut => "opted_out",
            FailureMode::Undeliverable => "undeliverable",
            FailureMode::ServerError => "server_error",
            FailureMode::TokenExpired => "token_expired",
            FailureMode::Unavailable => "unavailable",
            FailureMode::TimeoutAfterReceive => "timeout_after_receive",
            FailureMode::ResetAfterReceive => "reset_after_receive",
            FailureMode::AsyncFailure { .. } => "async_failure",
        }
    }

    /// The Cloud API code the send is answered with, for the modes that answer with an error.
    pub fn sync_code(&self) -> Option<i64> {
        match self {
            FailureMode::Throughput => Some(130429),
            FailureMode::WindowClosed => Some(131047),
            FailureMode::PairRate => Some(131056),
            FailureMode::OptedOut => Some(131050),
            FailureMode::Undeliverable => Some(131026),
            FailureMode::ServerError => Some(131000),
            FailureMode::TokenExpired => Some(190),
            _ => None,
        }
    }

    fn parse(name: &str, code: Option<i64>) -> Result<FailureMode, RuleError> {
        let mode = match name {
            "throughput" => FailureMode::Throughput,
            "window_closed" => FailureMode::WindowClosed,
            "pair_rate" => FailureMode::PairRate,
            "opted_out" => FailureMode::OptedOut,
            "undeliverable" => FailureMode::Undeliverable,
            "server_error" => FailureMode::ServerError,
            "token_expired" => FailureMode::TokenExpired,
            "unavailable" => FailureMode::Unavailable,
            "timeout_after_receive" => FailureMode::TimeoutAfterReceive,
            "reset_after_receive" => FailureMode::ResetAfterReceive,
            "async_failure" => {
                return code
                    .map(|code| FailureMode::AsyncFailure { code })
                    .ok_or(RuleError::MissingCode);
            }
            other => return Err(RuleError::UnknownMode(other.to_owned())),
        };
        match code {
            Some(_) => Err(RuleError::UnexpectedCode),
            None => Ok(mode),
        }
    }
}

/// Why a failure rule given to the control API was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The mode is not one the sandbox knows.
    #[error(
        "unknown mode `{0}`: expected throughput, window_closed, pair_rate, opted_out, undeliverable, server_error, token_expired, unavailable, timeout_after_receive, reset_after_receive or async_failure"
    )]
    UnknownMode(String),
    /// `async_failure` needs the `code` of its failed status.
    #[error("mode async_failure needs a `code` (e.g. 131049)")]
    MissingCode,
    /// Only `async_failure` takes a `code`.
    #[error("only mode async_failure takes a `code`")]
    UnexpectedCode,
    /// `times` was 0: the rule would never apply.
    #[error("`times` must be at least 1 (leave it out for a rule that lasts until cleared)")]
    ZeroTimes,
}

/// A rule that makes matching sends fail. A rule with neither a recipient nor a phone number
/// id matches every send; with both, a send must match both. Read receipts
/// (`"status":"read"`) never match. When several rules match, the one set last applies.
///
/// Over the control API it is the JSON object
/// `{"mode":"throughput","recipient":"+16505551234","phone_number_id":"1065…","times":3}`
/// (`code` only with `async_failure`; every field but `mode` optional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "RuleWire", try_from = "RuleWire")]
pub struct FailureRule {
    /// How matching sends fail.
    pub mode: FailureMode,
    /// The recipient it applies to: phone digits (compared with the digits of `to`, so
    /// `+1 650-555-1234` works too) or a BSUID such as `US.1349…` (compared with `recipient`).
    pub recipient: Option<String>,
    /// The sending phone number id it applies to.
    pub phone_number_id: Option<String>,
    /// How many more sends it applies to; `None` until it is cleared.
    pub times: Option<u32>,
}

impl FailureRule {
    /// A rule failing every send with `mode`, until cleared.
    pub fn new(mode: FailureMode) -> FailureRule {
        FailureRule {
            mode,
            recipient: None,
            phone_number_id: None,
            times: None,
        }
    }

    /// Restricts the rule to one recipient (phone number or BSUID).
    pub fn for_recipient(mut self, recipient: impl Into<String>) -> FailureRule {
        self.recipient = Some(recipient.into());
        self
    }

    /// Restricts the rule to sends from one phone number id.
    pub fn for_phone_number_id(mut self, phone_number_id: impl Into<String>) -> FailureRule {
        self.phone_number_id = Some(phone_number_id.into());
        self
    }

    /// Applies the rule to the next `n` matching sends only.
    pub fn times(mut self, n: u32) -> FailureRule {
        self.times = Some(n);
        self
    }

    /// Whether a send from `phone_number_id` to `to_digits` / `recipient` matches.
    pub(crate) fn matches(
        &self,
        phone_number_id: &str,
        to_digits: Option<&str>,
        recipient: Option<&str>,
    ) -> bool {
        let number_ok = self
            .phone_number_id
            .as_deref()
            .is_none_or(|id| id == phone_number_id);
        let recipient_ok = self.recipient.as_deref().is_none_or(|want| {
            if want.contains('.') {
                recipient == Some(want)
            } else {
                let want = digits(want);
                !want.is_empty() && to_digits == Some(want.as_str())
            }
        });
        number_ok && recipient_ok
    }
}

/// The rule's JSON form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleWire {
    mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recipient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone_number_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    times: Option<u32>,
}

impl From<FailureRule> for RuleWire {
    fn from(r: FailureRule) -> RuleWire {
        RuleWire {
            mode: r.mode.name().to_owned(),
            code: match r.mode {
                FailureMode::AsyncFailure { code } => Some(code),
                _ => None,
            },
            recipient: r.recipient,
            phone_number_id: r.phone_number_id,
            times: r.times,
        }
    }
}

impl TryFrom<RuleWire> for FailureRule {
    type Error = RuleError;

    fn try_from(w: RuleWire) -> Result<FailureRule, RuleError> {
        if w.times == Some(0) {
            return Err(RuleError::ZeroTimes);
        }
        Ok(FailureRule {
            mode: FailureMode::parse(&w.mode, w.code)?,
            recipient: w.recipient.filter(|s| !s.trim().is_empty()),
            phone_number_id: w.phone_number_id.filter(|s| !s.trim().is_empty()),
            times: w.times,
        })
    }
}

/// The active rules, newest last.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    rules: Vec<FailureRule>,
}

impl Rules {
    pub(crate) fn add(&mut self, rule: FailureRule) {
        self.rules.push(rule);
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn list(&self) -> Vec<FailureRule> {
        self.rules.clone()
    }

    /// The mode of the newest matching rule, using up one of its `times`; an exhausted rule
    /// is removed.
    pub(crate) fn take(
        &mut self,
        phone_number_id: &str,
        to_digits: Option<&str>,
        recipient: Option<&str>,
    ) -> Option<FailureMode> {
        let index = self
            .rules
            .iter()
            .rposition(|r| r.matches(phone_number_id, to_digits, recipient))?;
        let rule = &mut self.rules[index];
        let mode = rule.mode;
        if let Some(times) = rule.times.as_mut() {
            *times = times.saturating_sub(1);
            if *times == 0 {
                self.rules.remove(index);
            }
        }
        Some(mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_through_json() {
        let rule = FailureRule::new(FailureMode::AsyncFailure { code: 131049 })
            .for_recipient("+1 650 555 1234")
            .times(2);
        let text = serde_json::to_string(&rule).unwrap();
        assert_eq!(
            text,
            r#"{"mode":"async_failure","code":131049,"recipient":"+1 650 555 1234","times":2}"#
        );
        assert_eq!(serde_json::from_str::<FailureRule>(&text).unwrap(), rule);
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for (text, want) in [
            (r#"{"mode":"nope"}"#, "unknown mode"),
            (r#"{"mode":"async_failure"}"#, "needs a `code`"),
            (
                r#"{"mode":"throughput","code":1}"#,
                "only mode async_failure",
            ),
            (r#"{"mode":"throughput","times":0}"#, "at least 1"),
            (r#"{"mode":"throughput","to":"1"}"#, "unknown field"),
        ] {
            let err = serde_json::from_str::<FailureRule>(text).unwrap_err();
            assert!(err.to_string().contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn matching_uses_digits_for_phones_and_exact_bsuids() {
        let phone = FailureRule::new(FailureMode::Throughput).for_recipient("+1 (650) 555-1234");
        assert!(phone.matches("PN", Some("16505551234"), None));
        assert!(!phone.matches("PN", Some("16505551235"), None));
        assert!(!phone.matches("PN", None, Some("US.16505551234")));
        let bsuid = FailureRule::new(FailureMode::Throughput).for_recipient("US.1349");
        assert!(bsuid.matches("PN", Some("1"), Some("US.1349")));
        assert!(!bsuid.matches("PN", Some("1349"), None));
        let number = FailureRule::new(FailureMode::Throughput).for_phone_number_id("PN");
        assert!(number.matches("PN", Some("1"), None));
        assert!(!number.matches("OTHER", Some("1"), None));
        assert!(FailureRule::new(FailureMode::Throughput).matches("X", None, Some("US.1")));
    }

    #[test]
    fn newest_rule_wins_and_counted_rules_expire() {
        let mut rules = Rules::default();
        rules.add(FailureRule::new(FailureMode::ServerError));
        rules.add(FailureRule::new(FailureMode::Throughput).times(2));
        assert_eq!(
            rules.take("PN", Some("1"), None),
            Some(FailureMode::Throughput)
        );
        assert_eq!(
            rules.take("PN", Some("1"), None),
            Some(FailureMode::Throughput)
        );
        assert_eq!(
            rules.take("PN", Some("1"), None),
            Some(FailureMode::ServerError)
        );
        assert_eq!(rules.list().len(), 1);
        rules.clear();
        assert_eq!(rules.take("PN", Some("1"), None), None);
    }
}
