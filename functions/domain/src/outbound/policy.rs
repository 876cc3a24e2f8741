//! Whether a send may go to a customer now: the customer-service window and consent. Checked
//! by send-api before anything is queued, and again by the deliver-worker at dequeue.

use crate::consent::{self, Blocked, Purpose};
use crate::outbound::SendKind;
use crate::ports::ConsentRecord;
use crate::window::Window;

/// Why a send may not go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A session message outside the customer-service window (Meta's 131047).
    WindowClosed,
    /// The customer opted out (Meta's 131050 for marketing; Ventana's own for STOP).
    OptedOut {
        /// The scope of the opt-out in force (`all`: a STOP keyword; `marketing`: WhatsApp's
        /// own control or a 131050).
        scope: String,
    },
    /// A business-initiated send (a template outside the customer-service window) to a
    /// customer not reached in the last 24 hours, while the portfolio's messaging limit is
    /// used up ([`crate::broadcast::limit`]). Meta would fail it; it is refused before.
    LimitReached {
        /// The limit in force (unique customers per rolling 24 hours).
        limit: u64,
        /// When capacity comes back (unix s), if known.
        retry_at: Option<i64>,
    },
}

impl Refusal {
    /// The Cloud API error code Ventana answers with.
    pub fn code(&self) -> i64 {
        match self {
            Refusal::WindowClosed => 131_047,
            Refusal::OptedOut { .. } => 131_050,
            Refusal::LimitReached { .. } => 80_007,
        }
    }

    /// The HTTP status send-api answers with: 400 (the send cannot go as asked), 429 for the
    /// messaging limit (the same send may go once the rolling window makes room).
    pub fn http_status(&self) -> u16 {
        match self {
            Refusal::LimitReached { .. } => 429,
            _ => 400,
        }
    }

    /// Whether sending the same request later can succeed (then a refusal is not kept as the
    /// answer of its `Idempotency-Key`).
    pub fn is_transient(&self) -> bool {
        matches!(self, Refusal::LimitReached { .. })
    }

    /// When sending the same request can succeed (unix s), if the refusal is transient and
    /// the time is known.
    pub fn retry_at(&self) -> Option<i64> {
        match self {
            Refusal::LimitReached { retry_at, .. } => *retry_at,
            _ => None,
        }
    }

    /// The Cloud API error message (Meta's own wording for the code).
    pub fn message(&self) -> &'static str {
        match self {
            Refusal::WindowClosed => "(#131047) Re-engagement message",
            Refusal::OptedOut { .. } => {
                "(#131050) Unable to deliver the message. This recipient has chosen to stop receiving messages from your business"
            }
            Refusal::LimitReached { .. } => "(#80007) Rate limit issues",
        }
    }

    /// `error_data.details`: what happened and what to do.
    pub fn details(&self) -> String {
        match self {
            Refusal::WindowClosed => "More than 24 hours have passed since the customer last replied to this number (or they never wrote); send a template instead, or give a fallback_template. Nothing was queued.".into(),
            Refusal::OptedOut { scope } => format!(
                "The customer opted out ({scope}); nothing was queued."
            ),
            Refusal::LimitReached { limit, retry_at } => {
                let when = retry_at
                    .map(|t| format!(" Room comes back at {}.", crate::clock::rfc3339(t)))
                    .unwrap_or_default();
                format!(
                    "The business portfolio's messaging limit ({limit} unique customers outside their customer-service window per rolling 24 hours) is reached; nothing was queued.{when}"
                )
            }
        }
    }
}

/// The opt-out in force for a send of `kind`, if any ([`crate::consent::may_send`]):
///
/// - A STOP-style keyword (scope `all`) stops every send, except that a customer who wrote
///   again after it is in a conversation with the business: session replies inside the
///   window go out (templates still do not).
/// - WhatsApp's "stop marketing messages" (scope `marketing`, from `user_preferences`, a
///   131050 or a template's opt-out button) stops templates that need marketing consent
///   (`marketing`: the registry's category says so, or the template is not known — not
///   sending is the safe side).
/// - The newest record wins (an opt-in after an opt-out resumes sends).
fn opted_out(
    kind: SendKind,
    marketing: bool,
    window: Option<&Window>,
    consents: &[ConsentRecord],
) -> Option<String> {
    let purpose = if kind == SendKind::Template && marketing {
        Purpose::Marketing
    } else {
        Purpose::Other
    };
    match consent::may_send(consents, purpose, false) {
        Ok(()) | Err(Blocked::NoOptIn) => None,
        Err(Blocked::OptedOut(consent::SCOPE_ALL)) => {
            let wrote_since = consent::stop_in_force(consents).is_some_and(|stop| {
                window
                    .and_then(|w| w.last_inbound_at)
                    .is_some_and(|t| t > stop.at)
            });
            (!(kind == SendKind::Session && wrote_since)).then(|| consent::SCOPE_ALL.into())
        }
        Err(Blocked::OptedOut(scope)) => Some(scope.into()),
    }
}

/// Whether a send of `kind` may go to the customer at `now_secs`: consent first, then (for
/// session messages) the window, closed `margin_secs` early. Read receipts always may.
/// Every template is held to a marketing opt-out (see [`check_for`] when its category is
/// known).
pub fn check(
    kind: SendKind,
    window: Option<&Window>,
    consents: &[ConsentRecord],
    now_secs: i64,
    margin_secs: i64,
) -> Result<(), Refusal> {
    check_for(kind, true, window, consents, now_secs, margin_secs)
}

/// [`check`] for a send whose template needs marketing consent (`marketing`: its category is
/// marketing or unknown, [`crate::templates::TemplateCategory::needs_marketing_consent`]) or
/// not (utility and authentication templates go to a customer who stopped marketing only).
pub fn check_for(
    kind: SendKind,
    marketing: bool,
    window: Option<&Window>,
    consents: &[ConsentRecord],
    now_secs: i64,
    margin_secs: i64,
) -> Result<(), Refusal> {
    if kind == SendKind::ReadReceipt {
        return Ok(());
    }
    if let Some(scope) = opted_out(kind, marketing, window, consents) {
        return Err(Refusal::OptedOut { scope });
    }
    if kind == SendKind::Session
        && !window.is_some_and(|w| w.allows_session_message(now_secs, margin_secs))
    {
        return Err(Refusal::WindowClosed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::CustomerKey;
    use crate::ports::{Consent, ConsentSource};
    use crate::window::WindowUpdate;

    fn window(last: i64) -> Window {
        let mut w = Window::default();
        w.apply(&WindowUpdate::for_message(last, false));
        w
    }

    fn consent(scope: &str, consent: Consent, at: i64) -> ConsentRecord {
        ConsentRecord {
            phone_number_id: "1".into(),
            customer: CustomerKey::Phone("2".into()),
            scope: scope.into(),
            consent,
            source: ConsentSource::Keyword,
            at,
            detail: None,
        }
    }

    #[test]
    fn session_messages_need_the_window_with_its_margin() {
        let w = window(1_000);
        let close = 1_000 + 24 * 3600;
        assert_eq!(
            check(SendKind::Session, Some(&w), &[], close - 61, 60),
            Ok(())
        );
        assert_eq!(
            check(SendKind::Session, Some(&w), &[], close - 60, 60),
            Err(Refusal::WindowClosed)
        );
        assert_eq!(
            check(SendKind::Session, None, &[], 0, 60),
            Err(Refusal::WindowClosed)
        );
        // Templates and read receipts do not.
        assert_eq!(check(SendKind::Template, None, &[], close + 5, 60), Ok(()));
        assert_eq!(
            check(SendKind::ReadReceipt, None, &[], close + 5, 60),
            Ok(())
        );
    }

    #[test]
    fn stop_blocks_everything_until_the_customer_writes_again() {
        let stop = [consent("all", Consent::OptedOut, 2_000)];
        let before = window(1_000);
        let refused = Err(Refusal::OptedOut {
            scope: "all".into(),
        });
        assert_eq!(
            check(SendKind::Session, Some(&before), &stop, 2_100, 0),
            refused
        );
        assert_eq!(
            check(SendKind::Template, Some(&before), &stop, 2_100, 0),
            refused
        );
        let after = window(3_000);
        assert_eq!(
            check(SendKind::Session, Some(&after), &stop, 3_100, 0),
            Ok(())
        );
        assert_eq!(
            check(SendKind::Template, Some(&after), &stop, 3_100, 0),
            refused
        );
    }

    #[test]
    fn marketing_opt_out_stops_templates_only_and_newest_wins() {
        let w = window(1_000);
        let out = [consent("marketing", Consent::OptedOut, 500)];
        assert_eq!(
            check(SendKind::Template, Some(&w), &out, 1_100, 0),
            Err(Refusal::OptedOut {
                scope: "marketing".into()
            })
        );
        assert_eq!(check(SendKind::Session, Some(&w), &out, 1_100, 0), Ok(()));
        let resumed = [
            consent("marketing", Consent::OptedOut, 500),
            consent("marketing", Consent::OptedIn, 600),
        ];
        assert_eq!(
            check(SendKind::Template, Some(&w), &resumed, 1_100, 0),
            Ok(())
        );
    }

    #[test]
    fn a_marketing_opt_out_lets_utility_templates_through_but_not_a_stop() {
        let w = window(1_000);
        let out = [consent("marketing", Consent::OptedOut, 500)];
        assert_eq!(
            check_for(SendKind::Template, false, Some(&w), &out, 1_100, 0),
            Ok(())
        );
        assert_eq!(
            check_for(SendKind::Template, true, Some(&w), &out, 1_100, 0),
            Err(Refusal::OptedOut {
                scope: "marketing".into()
            })
        );
        let stop = [consent("all", Consent::OptedOut, 500)];
        assert_eq!(
            check_for(SendKind::Template, false, Some(&w), &stop, 1_100, 0),
            Err(Refusal::OptedOut {
                scope: "all".into()
            })
        );
    }

    #[test]
    fn refusals_carry_metas_codes() {
        assert_eq!(Refusal::WindowClosed.code(), 131_047);
        assert_eq!(
            Refusal::OptedOut {
                scope: "all".into()
            }
            .code(),
            131_050
        );
    }
}
