//! What came of a Graph API send, and what Ventana does about it.
//!
//! [`GraphOutcome`] is what the HTTP client observed; [`classify`] turns it into a
//! [`Disposition`] using Meta's error-code table ([`CODE_TABLE`], from the reference digest
//! §8.2). Both are pure, so every rule is tested here without a network.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde_json::Value;

/// What an attempt to post a message to the Graph API came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphOutcome {
    /// Meta answered 2xx with a message id: it accepted the message (not yet delivered).
    Accepted {
        /// The wamid Meta gave the message.
        wamid: String,
        /// `messages[0].message_status` when Meta paces a template (`accepted`,
        /// `held_for_quality_assessment`, `paused`).
        message_status: Option<String>,
    },
    /// Meta answered with an error.
    Rejected {
        /// The HTTP status.
        http_status: u16,
        /// `error.code`; 0 when the body was not a Cloud API error.
        code: i64,
        /// `error.error_subcode` (deprecated by Meta, still sent sometimes).
        subcode: Option<i64>,
        /// `error.message` (or a short note about a body that was not a Cloud API error).
        message: String,
        /// `error.error_data.details`.
        details: Option<String>,
        /// `error.fbtrace_id`, else the `x-fb-trace-id` header: what Meta support asks for.
        fbtrace_id: Option<String>,
    },
    /// No answer from Meta.
    Transport(TransportFailure),
}

/// How a request failed to get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportFailure {
    /// The connection was never made (refused, DNS, TLS handshake, connect timeout): the
    /// request never left, so sending again cannot make a duplicate.
    ConnectFailed,
    /// The request was written but no answer came in time: Meta may have sent the message.
    TimedOutAfterSend,
    /// Anything else after the connection was made (reset mid-request, an unreadable
    /// answer, a 2xx without a message id): Meta may have sent the message.
    Other,
}

/// What to do with a send after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Meta accepted the message: record the wamid. (Delivery is reported later by status
    /// webhooks.)
    Delivered {
        /// The wamid Meta gave the message.
        wamid: String,
    },
    /// A transient failure: try again after `backoff_hint` (or longer).
    Retry {
        /// How long to wait before the next attempt, at least.
        backoff_hint: Duration,
        /// Whether the whole phone number should slow down (throughput, overload, maintenance
        /// or an unreachable Graph API), not just this message.
        slow_number: bool,
        /// The most retries the code table advises for this failure (`None`: as many as the
        /// queue's own limit allows). Code 1 is retried once, 131000 a few times.
        max_retries: Option<u32>,
    },
    /// Pair rate limit (131056): too many messages to this recipient too fast. Delay this
    /// recipient by [`pair_backoff_secs`] of the attempt; other recipients are unaffected.
    PairRateLimited,
    /// Re-engagement (131047): the customer-service window is closed. Not retried; a
    /// template is needed.
    WindowClosed,
    /// The user opted out of marketing messages (131050): permanent, and the opt-out is
    /// recorded.
    OptedOut,
    /// A permanent failure: record it, never retry.
    Permanent {
        /// Meta's error code (0 when the answer was not a Cloud API error).
        code: i64,
    },
    /// Meta says stop sending from this number or account (an expired or revoked token, a
    /// missing permission, a locked, restricted or unpaid account): nothing is wrong with the
    /// message, so it is dead-lettered (redrivable once operations fix the token or the
    /// account) rather than failed, and operations are alerted.
    StopSending {
        /// Meta's error code (0 when the answer was not a Cloud API error).
        code: i64,
    },
    /// The request may have been sent, but no answer says so: record it as unconfirmed and
    /// reconcile against status webhooks (matched by `biz_opaque_callback_data`) before any
    /// resend.
    Unconfirmed,
}

impl Disposition {
    /// Whether the send should be attempted again (later).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Disposition::Retry { .. } | Disposition::PairRateLimited
        )
    }
}

/// What Meta's code table advises for an error code (the "Retry" column of §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Advice {
    /// T: transient; retry with backoff.
    Transient,
    /// W: wait long, then retry (by hand or a later campaign; Ventana does not retry the
    /// message).
    WaitLong,
    /// N: do not retry this message; fix the data or switch to a template.
    DoNotRetry,
    /// S: stop sending for the number or account and alert operations.
    StopSending,
    /// Only reported for inbound messages; never the answer to a send.
    Inbound,
}

/// What [`classify`] does with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Retry after `backoff_secs`, slowing the number down when `slow_number`.
    Retry {
        /// The backoff hint in seconds.
        backoff_secs: u64,
        /// Whether the whole number slows down.
        slow_number: bool,
        /// The most retries advised (`None`: no limit of its own).
        max_retries: Option<u32>,
    },
    /// [`Disposition::PairRateLimited`].
    PairRateLimited,
    /// [`Disposition::WindowClosed`].
    WindowClosed,
    /// [`Disposition::OptedOut`].
    OptedOut,
    /// [`Disposition::Permanent`].
    Permanent,
    /// [`Disposition::StopSending`]: dead-letter the send and alert operations.
    DeadLetter,
}

/// One row of Meta's error-code table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRule {
    /// The codes the row covers (most rows: one code).
    pub codes: RangeInclusive<i64>,
    /// What the code means (paraphrased).
    pub meaning: &'static str,
    /// What Meta's table advises.
    pub advice: Advice,
    /// What Ventana does.
    pub action: Action,
}

const fn retry(backoff_secs: u64, slow_number: bool, max_retries: Option<u32>) -> Action {
    Action::Retry {
        backoff_secs,
        slow_number,
        max_retries,
    }
}

const fn rule(
    codes: RangeInclusive<i64>,
    meaning: &'static str,
    advice: Advice,
    action: Action,
) -> CodeRule {
    CodeRule {
        codes,
        meaning,
        advice,
        action,
    }
}

use Action::{DeadLetter, OptedOut, PairRateLimited, Permanent, WindowClosed};
use Advice::{DoNotRetry, Inbound, StopSending, Transient, WaitLong};

/// Meta's error codes and what Ventana does with each (reference digest §8.2). Looked up by
/// [`code_rule`]: the first row whose range holds the code wins, so single codes come before
/// the ranges that contain them. Every "stop sending" code is dead-lettered: the message is
/// fine, the token or the account is not, and once that is fixed a redrive sends it. "Wait
/// long" codes are not retried by Ventana (131048 and 131049 get worse when retried; the
/// others are not answers to a send), except 134101, a template still syncing for at most ten
/// minutes.
#[rustfmt::skip]
pub static CODE_TABLE: &[CodeRule] = &[
    rule(0..=0, "could not authenticate the app user (token expired or invalidated)", StopSending, DeadLetter),
    rule(1..=1, "invalid request or possible server error", Transient, retry(5, false, Some(1))),
    rule(2..=2, "temporary downtime or overload", Transient, retry(30, true, None)),
    rule(3..=3, "capability or permission issue", StopSending, DeadLetter),
    rule(4..=4, "the app reached its API call rate limit", Transient, retry(60, true, None)),
    rule(10..=10, "permission not granted or removed", StopSending, DeadLetter),
    rule(33..=33, "business phone number deleted", StopSending, DeadLetter),
    rule(100..=100, "invalid, unsupported or misspelled parameter", DoNotRetry, Permanent),
    rule(190..=190, "access token expired", StopSending, DeadLetter),
    rule(200..=299, "permission error (200: no token provided)", StopSending, DeadLetter),
    rule(368..=368, "WABA restricted or disabled for a policy violation", StopSending, DeadLetter),
    rule(80_007..=80_007, "the WABA reached its rate limit", Transient, retry(300, true, None)),
    rule(130_403..=130_403, "the business has blocked this user", DoNotRetry, Permanent),
    rule(130_429..=130_429, "throughput reached for the number", Transient, retry(1, true, None)),
    rule(130_472..=130_472, "user is in a Meta experiment; not sent", DoNotRetry, Permanent),
    rule(130_497..=130_497, "the WABA may not message users in that country", DoNotRetry, Permanent),
    rule(131_000..=131_000, "unknown error", Transient, retry(5, false, Some(2))),
    rule(131_005..=131_005, "permission not granted", StopSending, DeadLetter),
    rule(131_008..=131_008, "required parameter missing", DoNotRetry, Permanent),
    rule(131_009..=131_009, "parameter value invalid", DoNotRetry, Permanent),
    rule(131_016..=131_016, "service temporarily unavailable", Transient, retry(30, true, None)),
    rule(131_021..=131_021, "sender and recipient are the same number", DoNotRetry, Permanent),
    rule(131_026..=131_026, "undeliverable: not on WhatsApp, terms not accepted, or client too old", DoNotRetry, Permanent),
    rule(131_031..=131_031, "account locked", StopSending, DeadLetter),
    rule(131_037..=131_037, "the 555 number lacks an approved display name", StopSending, DeadLetter),
    rule(131_042..=131_042, "payment or billing problem", StopSending, DeadLetter),
    rule(131_045..=131_045, "phone number registration error", StopSending, DeadLetter),
    rule(131_047..=131_047, "re-engagement: more than 24 hours since the user last wrote", DoNotRetry, WindowClosed),
    rule(131_048..=131_048, "spam rate limit: earlier messages were blocked or flagged", WaitLong, Permanent),
    rule(131_049..=131_049, "not delivered to keep the ecosystem healthy (per-user marketing limit)", WaitLong, Permanent),
    rule(131_050..=131_050, "the user opted out of marketing messages", DoNotRetry, OptedOut),
    rule(131_051..=131_051, "unsupported message type", DoNotRetry, Permanent),
    rule(131_052..=131_052, "could not download media the user sent", Inbound, Permanent),
    rule(131_053..=131_053, "could not upload or fetch the media sent", DoNotRetry, Permanent),
    rule(131_055..=131_055, "Marketing Messages API: only marketing templates", DoNotRetry, Permanent),
    rule(131_056..=131_056, "pair rate limit: too many messages to this user too fast", Transient, PairRateLimited),
    rule(131_057..=131_057, "account in maintenance mode (at most about a minute)", Transient, retry(15, true, None)),
    // Only the template listing answers 131059, and only a request without cursors helps:
    // retrying the same request cannot.
    rule(131_059..=131_059, "invalid pagination cursor", Transient, Permanent),
    rule(131_063..=131_063, "marketing templates disabled on Cloud API for this WABA", DoNotRetry, Permanent),
    rule(131_064..=131_064, "messaging limit hit after template classification violations", StopSending, DeadLetter),
    rule(132_000..=132_000, "template parameter count mismatch", DoNotRetry, Permanent),
    rule(132_001..=132_001, "template missing in that language or not approved", DoNotRetry, Permanent),
    rule(132_005..=132_005, "translated text too long", DoNotRetry, Permanent),
    rule(132_007..=132_007, "template content violates policy", DoNotRetry, Permanent),
    rule(132_012..=132_012, "parameter format mismatch", DoNotRetry, Permanent),
    rule(132_015..=132_015, "template paused for low quality", DoNotRetry, Permanent),
    rule(132_016..=132_016, "template permanently disabled", DoNotRetry, Permanent),
    rule(132_018..=132_018, "template parameter validation error", DoNotRetry, Permanent),
    rule(132_068..=132_068, "flow blocked", DoNotRetry, Permanent),
    rule(132_069..=132_069, "flow throttled (10 sends an hour)", WaitLong, Permanent),
    rule(132_000..=132_999, "template error", DoNotRetry, Permanent),
    rule(133_004..=133_004, "server temporarily unavailable", Transient, retry(30, true, None)),
    rule(133_010..=133_010, "phone number not registered on the platform", StopSending, DeadLetter),
    rule(133_016..=133_016, "too many registration attempts", WaitLong, Permanent),
    rule(134_011..=134_011, "WhatsApp Payments terms pending", StopSending, DeadLetter),
    rule(134_100..=134_100, "Marketing Messages API: marketing templates only", DoNotRetry, Permanent),
    rule(134_101..=134_101, "Marketing Messages API: template still syncing (at most 10 minutes)", WaitLong, retry(600, false, Some(2))),
    rule(134_102..=134_102, "Marketing Messages API: template unavailable", StopSending, DeadLetter),
    rule(135_000..=135_000, "unknown error with request parameters", DoNotRetry, Permanent),
    rule(2_388_019..=2_388_019, "template limit exceeded", DoNotRetry, Permanent),
];

/// The row of [`CODE_TABLE`] for a code, if Meta's table lists it.
pub fn code_rule(code: i64) -> Option<&'static CodeRule> {
    CODE_TABLE.iter().find(|r| r.codes.contains(&code))
}

/// Backoff for a server error or an unreachable Graph API that no table row covers.
const SERVER_ERROR_BACKOFF_SECS: u64 = 5;
/// Backoff after a refused or failed connection.
const CONNECT_FAILED_BACKOFF_SECS: u64 = 2;

/// Decides what to do after a Graph API attempt.
///
/// - Accepted → [`Disposition::Delivered`].
/// - A refused connection → retried (the request never left) and the number slowed down.
/// - A timeout after sending, or any other failure once connected → [`Disposition::Unconfirmed`]:
///   the message may be out, and a blind resend could deliver it twice.
/// - An error code → its [`CODE_TABLE`] row. A row that retries always wins; otherwise any
///   5xx (including one without a Cloud API body) and a 429 are retried, since Meta's table
///   and HTTP both call them transient; then the row's action (a "stop sending" row:
///   [`Disposition::StopSending`]); an unlisted 4xx code is permanent. A 4xx without a Cloud
///   API body is code 0, whose row says stop sending: an answer Meta's API would not give
///   (a proxy, a wrong base URL) is for operations too.
pub fn classify(outcome: &GraphOutcome) -> Disposition {
    match outcome {
        GraphOutcome::Accepted { wamid, .. } => Disposition::Delivered {
            wamid: wamid.clone(),
        },
        GraphOutcome::Transport(TransportFailure::ConnectFailed) => Disposition::Retry {
            backoff_hint: Duration::from_secs(CONNECT_FAILED_BACKOFF_SECS),
            slow_number: true,
            max_retries: None,
        },
        GraphOutcome::Transport(TransportFailure::TimedOutAfterSend | TransportFailure::Other) => {
            Disposition::Unconfirmed
        }
        GraphOutcome::Rejected {
            http_status, code, ..
        } => {
            let action = code_rule(*code).map(|r| r.action);
            match action {
                Some(Action::Retry {
                    backoff_secs,
                    slow_number,
                    max_retries,
                }) => Disposition::Retry {
                    backoff_hint: Duration::from_secs(backoff_secs),
                    slow_number,
                    max_retries,
                },
                _ if *http_status >= 500 || *http_status == 429 => Disposition::Retry {
                    backoff_hint: Duration::from_secs(SERVER_ERROR_BACKOFF_SECS),
                    slow_number: true,
                    max_retries: None,
                },
                Some(Action::PairRateLimited) => Disposition::PairRateLimited,
                Some(Action::WindowClosed) => Disposition::WindowClosed,
                Some(Action::OptedOut) => Disposition::OptedOut,
                Some(Action::DeadLetter) => Disposition::StopSending { code: *code },
                Some(Action::Permanent) | None => Disposition::Permanent { code: *code },
            }
        }
    }
}

/// Longest pair-rate delay: 4^5 s, about 17 minutes. Past that the pair limit is not the
/// problem, and the queue's attempt limit takes over.
pub const PAIR_BACKOFF_CAP_SECS: u64 = 1024;

/// How long to hold a recipient after the `attempt`-th pair-rate error in a row (0-based):
/// 4^attempt seconds (1, 4, 16, 64, …) as Meta advises, capped at [`PAIR_BACKOFF_CAP_SECS`].
pub fn pair_backoff_secs(attempt: u32) -> u64 {
    4u64.checked_pow(attempt)
        .map_or(PAIR_BACKOFF_CAP_SECS, |s| s.min(PAIR_BACKOFF_CAP_SECS))
}

impl GraphOutcome {
    /// Reads a Graph API answer: a 2xx with `messages[0].id` is [`GraphOutcome::Accepted`]; a
    /// 2xx without one is [`TransportFailure::Other`] (Meta said yes, but to what is unknown);
    /// anything else is [`GraphOutcome::Rejected`], with code 0 and a short note when the body
    /// is not a Cloud API error. `trace_header` is the `x-fb-trace-id` header, used when the
    /// body carries no `fbtrace_id`.
    pub fn from_response(http_status: u16, body: &[u8], trace_header: Option<&str>) -> Self {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        if (200..300).contains(&http_status) {
            let message = json
                .as_ref()
                .and_then(|j| j.get("messages"))
                .and_then(|m| m.get(0));
            let wamid = message
                .and_then(|m| m.get("id"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            return match wamid {
                Some(wamid) => GraphOutcome::Accepted {
                    wamid: wamid.to_owned(),
                    message_status: message
                        .and_then(|m| m.get("message_status"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                },
                None => GraphOutcome::Transport(TransportFailure::Other),
            };
        }
        let header_trace = trace_header.map(str::to_owned);
        let error = json.as_ref().and_then(|j| j.get("error"));
        let code = error.and_then(|e| e.get("code")).and_then(int);
        match (error, code) {
            (Some(e), Some(code)) => GraphOutcome::Rejected {
                http_status,
                code,
                subcode: e.get("error_subcode").and_then(int),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                details: e
                    .get("error_data")
                    .and_then(|d| d.get("details"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                fbtrace_id: e
                    .get("fbtrace_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or(header_trace),
            },
            _ => GraphOutcome::Rejected {
                http_status,
                code: 0,
                subcode: None,
                message: format!("HTTP {http_status} without a Cloud API error body"),
                details: None,
                fbtrace_id: header_trace,
            },
        }
    }
}

/// An integer given as a JSON number or a numeric string.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(http_status: u16, code: i64) -> GraphOutcome {
        GraphOutcome::Rejected {
            http_status,
            code,
            subcode: None,
            message: String::new(),
            details: None,
            fbtrace_id: None,
        }
    }

    fn retry(secs: u64, slow_number: bool, max_retries: Option<u32>) -> Disposition {
        Disposition::Retry {
            backoff_hint: Duration::from_secs(secs),
            slow_number,
            max_retries,
        }
    }

    fn permanent(code: i64) -> Disposition {
        Disposition::Permanent { code }
    }

    fn stop(code: i64) -> Disposition {
        Disposition::StopSending { code }
    }

    /// Every code in the reference's table (§8.2), as Meta answers it to a send (HTTP 400),
    /// with what Ventana must do. Written out by hand, not derived from `CODE_TABLE`.
    #[test]
    fn every_code_in_metas_table_is_classified() {
        let expected: Vec<(i64, Disposition)> = vec![
            (0, stop(0)),
            (1, retry(5, false, Some(1))),
            (2, retry(30, true, None)),
            (3, stop(3)),
            (4, retry(60, true, None)),
            (10, stop(10)),
            (33, stop(33)),
            (100, permanent(100)),
            (190, stop(190)),
            (200, stop(200)),
            (250, stop(250)),
            (299, stop(299)),
            (368, stop(368)),
            (80_007, retry(300, true, None)),
            (130_403, permanent(130_403)),
            (130_429, retry(1, true, None)),
            (130_472, permanent(130_472)),
            (130_497, permanent(130_497)),
            (131_000, retry(5, false, Some(2))),
            (131_005, stop(131_005)),
            (131_008, permanent(131_008)),
            (131_009, permanent(131_009)),
            (131_016, retry(30, true, None)),
            (131_021, permanent(131_021)),
            (131_026, permanent(131_026)),
            (131_031, stop(131_031)),
            (131_037, stop(131_037)),
            (131_042, stop(131_042)),
            (131_045, stop(131_045)),
            (131_047, Disposition::WindowClosed),
            (131_048, permanent(131_048)),
            (131_049, permanent(131_049)),
            (131_050, Disposition::OptedOut),
            (131_051, permanent(131_051)),
            (131_052, permanent(131_052)),
            (131_053, permanent(131_053)),
            (131_055, permanent(131_055)),
            (131_056, Disposition::PairRateLimited),
            (131_057, retry(15, true, None)),
            (131_059, permanent(131_059)),
            (131_063, permanent(131_063)),
            (131_064, stop(131_064)),
            (132_000, permanent(132_000)),
            (132_001, permanent(132_001)),
            (132_005, permanent(132_005)),
            (132_007, permanent(132_007)),
            (132_012, permanent(132_012)),
            (132_015, permanent(132_015)),
            (132_016, permanent(132_016)),
            (132_018, permanent(132_018)),
            (132_068, permanent(132_068)),
            (132_069, permanent(132_069)),
            // Any other 132xxx template error.
            (132_999, permanent(132_999)),
            (133_004, retry(30, true, None)),
            (133_010, stop(133_010)),
            (133_016, permanent(133_016)),
            (134_011, stop(134_011)),
            (134_100, permanent(134_100)),
            (134_101, retry(600, false, Some(2))),
            (134_102, stop(134_102)),
            (135_000, permanent(135_000)),
            (2_388_019, permanent(2_388_019)),
        ];
        for (code, want) in &expected {
            assert_eq!(&classify(&rejected(400, *code)), want, "code {code}");
        }
        // And the table lists nothing this test does not know about.
        for rule in CODE_TABLE {
            let (lo, hi) = (*rule.codes.start(), *rule.codes.end());
            assert!(
                expected.iter().any(|(c, _)| *c == lo) && expected.iter().any(|(c, _)| *c == hi),
                "table row {lo}..={hi} is not covered"
            );
        }
    }

    /// Meta's "S" rows (stop sending for the number or account, alert operations) are never
    /// failed for good: the message itself is fine.
    #[test]
    fn every_stop_sending_code_is_dead_lettered_not_failed() {
        let stop_rows: Vec<_> = CODE_TABLE
            .iter()
            .filter(|r| r.advice == Advice::StopSending)
            .collect();
        assert!(stop_rows.len() >= 15);
        for rule in stop_rows {
            for code in [*rule.codes.start(), *rule.codes.end()] {
                let d = classify(&rejected(400, code));
                assert_eq!(d, stop(code), "code {code}");
                assert!(!d.is_retryable());
                assert_eq!(classify(&rejected(401, code)), stop(code));
            }
        }
    }

    #[test]
    fn template_name_clash_subcode_with_100_is_permanent() {
        let outcome = GraphOutcome::Rejected {
            http_status: 400,
            code: 100,
            subcode: Some(2_388_024),
            message: "(#100) Invalid parameter".into(),
            details: None,
            fbtrace_id: None,
        };
        assert_eq!(classify(&outcome), permanent(100));
    }

    #[test]
    fn unlisted_4xx_code_is_permanent() {
        assert_eq!(classify(&rejected(400, 999_999)), permanent(999_999));
        assert_eq!(classify(&rejected(403, 132_999)), permanent(132_999));
    }

    #[test]
    fn any_5xx_is_retried_and_slows_the_number() {
        for code in [0, 100, 999_999, 131_026] {
            assert_eq!(
                classify(&rejected(502, code)),
                retry(5, true, None),
                "{code}"
            );
        }
        // A transient row keeps its own hint on a 5xx.
        assert_eq!(classify(&rejected(500, 131_016)), retry(30, true, None));
        assert_eq!(classify(&rejected(429, 0)), retry(5, true, None));
    }

    #[test]
    fn throughput_limit_answered_with_400_slows_the_number() {
        assert!(matches!(
            classify(&rejected(400, 130_429)),
            Disposition::Retry {
                slow_number: true,
                ..
            }
        ));
    }

    #[test]
    fn transport_failures_retry_only_when_nothing_left() {
        assert_eq!(
            classify(&GraphOutcome::Transport(TransportFailure::ConnectFailed)),
            retry(2, true, None)
        );
        assert_eq!(
            classify(&GraphOutcome::Transport(
                TransportFailure::TimedOutAfterSend
            )),
            Disposition::Unconfirmed
        );
        assert_eq!(
            classify(&GraphOutcome::Transport(TransportFailure::Other)),
            Disposition::Unconfirmed
        );
    }

    #[test]
    fn accepted_is_delivered_with_its_wamid() {
        let outcome = GraphOutcome::Accepted {
            wamid: "wamid.X".into(),
            message_status: None,
        };
        assert_eq!(
            classify(&outcome),
            Disposition::Delivered {
                wamid: "wamid.X".into()
            }
        );
    }

    #[test]
    fn pair_backoff_is_four_to_the_attempt_capped() {
        let got: Vec<u64> = (0..8).map(pair_backoff_secs).collect();
        assert_eq!(got, [1, 4, 16, 64, 256, 1024, 1024, 1024]);
        assert_eq!(pair_backoff_secs(u32::MAX), PAIR_BACKOFF_CAP_SECS);
    }

    #[test]
    fn retryable_dispositions() {
        assert!(retry(1, true, None).is_retryable());
        assert!(Disposition::PairRateLimited.is_retryable());
        assert!(!Disposition::WindowClosed.is_retryable());
        assert!(!Disposition::Unconfirmed.is_retryable());
        assert!(!permanent(100).is_retryable());
        assert!(!stop(190).is_retryable());
    }

    #[test]
    fn success_body_gives_the_wamid() {
        let body = br#"{"messaging_product":"whatsapp","contacts":[{"input":"+1","wa_id":"1"}],
            "messages":[{"id":"wamid.HBgL","message_status":"held_for_quality_assessment"}]}"#;
        assert_eq!(
            GraphOutcome::from_response(200, body, None),
            GraphOutcome::Accepted {
                wamid: "wamid.HBgL".into(),
                message_status: Some("held_for_quality_assessment".into()),
            }
        );
    }

    #[test]
    fn success_without_a_wamid_is_unconfirmed() {
        for body in [&br#"{"success":true}"#[..], b"", b"<html>"] {
            let o = GraphOutcome::from_response(200, body, None);
            assert_eq!(o, GraphOutcome::Transport(TransportFailure::Other));
            assert_eq!(classify(&o), Disposition::Unconfirmed);
        }
    }

    #[test]
    fn error_body_is_read_whole() {
        let body = br#"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,
            "error_data":{"messaging_product":"whatsapp","details":"Cloud API message throughput has been reached."},
            "error_subcode":2494055,"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}"#;
        assert_eq!(
            GraphOutcome::from_response(400, body, Some("header-trace")),
            GraphOutcome::Rejected {
                http_status: 400,
                code: 130_429,
                subcode: Some(2_494_055),
                message: "(#130429) Rate limit hit".into(),
                details: Some("Cloud API message throughput has been reached.".into()),
                fbtrace_id: Some("Az8or2yhqkZfEZ-_4Qn_Bam".into()),
            }
        );
    }

    #[test]
    fn non_json_error_is_code_zero_with_the_status_and_header_trace() {
        let o = GraphOutcome::from_response(502, b"<html>Bad Gateway</html>", Some("T1"));
        let GraphOutcome::Rejected {
            http_status,
            code,
            fbtrace_id,
            ..
        } = &o
        else {
            panic!("{o:?}");
        };
        assert_eq!(
            (*http_status, *code, fbtrace_id.as_deref()),
            (502, 0, Some("T1"))
        );
        assert!(classify(&o).is_retryable());
        let o = GraphOutcome::from_response(401, b"", None);
        assert_eq!(classify(&o), stop(0));
    }

    #[test]
    fn string_codes_are_read_as_numbers() {
        let o = GraphOutcome::from_response(400, br#"{"error":{"code":"131047"}}"#, None);
        assert_eq!(classify(&o), Disposition::WindowClosed);
    }
}
