//! Whether a customer may get a message of a kind, given their consent records: the one rule
//! that send-api and the deliver-worker (through [`crate::outbound::policy`]), the broadcast
//! planner and `GET /v1/consents/…` all apply.
//!
//! A customer has at most one record per scope (the newest; see
//! [`crate::ports::InboundStore::record_consent`]):
//! - `all`: a STOP / START keyword, or the API. An opt-out stops every business message.
//! - `marketing`: WhatsApp's own "stop marketing messages" control (`user_preferences`), a
//!   131050, a tap on a template's opt-out button ("Stop promotions", [`crate::optout`]), or
//!   the API (an explicit opt-in from a web form, a checkout, …).
//!
//! The rules, newest wins and a tie goes to the opt-out (not sending is the safe side):
//! - [`Purpose::Other`] (session messages, utility and authentication templates): refused while
//!   the newest `all` record is an opt-out.
//! - [`Purpose::Marketing`]: refused as above, and while the newest record of `marketing` and
//!   `all` together is an opt-out (a START after a marketing opt-out resumes marketing; a
//!   marketing opt-out after a START stops it again).
//! - [`Purpose::Marketing`] with `require_opt_in` (a broadcast that asks for it): also
//!   refused unless that newest record is an opt-in, i.e. there is an opt-in newer than the
//!   last opt-out. A customer about whom nothing is recorded has not opted in.

use crate::ports::{Consent, ConsentRecord};

/// The scope of a STOP keyword: every business message.
pub const SCOPE_ALL: &str = "all";
/// The scope of WhatsApp's marketing preference and of marketing opt-ins.
pub const SCOPE_MARKETING: &str = "marketing";

/// What a message is, for consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A marketing template (and, until the registry tells categories apart, any template).
    Marketing,
    /// A session message, or a utility or authentication template.
    Other,
}

/// Why a customer may not get a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// The customer opted out; the scope of the record in force (`all` or `marketing`).
    OptedOut(&'static str),
    /// The send requires an opt-in and there is none newer than the last opt-out.
    NoOptIn,
}

impl Blocked {
    /// A short machine name: `opted_out_all`, `opted_out_marketing`, `no_opt_in`.
    pub fn as_str(self) -> &'static str {
        match self {
            Blocked::OptedOut(SCOPE_ALL) => "opted_out_all",
            Blocked::OptedOut(_) => "opted_out_marketing",
            Blocked::NoOptIn => "no_opt_in",
        }
    }
}

/// The newest record among `scopes` (ties: an opt-out wins).
fn newest<'a>(consents: &'a [ConsentRecord], scopes: &[&str]) -> Option<&'a ConsentRecord> {
    consents
        .iter()
        .filter(|c| scopes.contains(&c.scope.as_str()))
        .max_by_key(|c| (c.at, c.consent == Consent::OptedOut))
}

/// Whether the customer whose records are `consents` may get a message for `purpose`;
/// `require_opt_in` matters only for marketing. See the module docs for the rules.
pub fn may_send(
    consents: &[ConsentRecord],
    purpose: Purpose,
    require_opt_in: bool,
) -> Result<(), Blocked> {
    if newest(consents, &[SCOPE_ALL]).is_some_and(|c| c.consent == Consent::OptedOut) {
        return Err(Blocked::OptedOut(SCOPE_ALL));
    }
    if purpose == Purpose::Other {
        return Ok(());
    }
    match newest(consents, &[SCOPE_MARKETING, SCOPE_ALL]) {
        Some(c) if c.consent == Consent::OptedOut => Err(Blocked::OptedOut(SCOPE_MARKETING)),
        Some(_) => Ok(()),
        None if require_opt_in => Err(Blocked::NoOptIn),
        None => Ok(()),
    }
}

/// The newest opt-out in force for STOP (`all`), if any: the session-reply exception of
/// [`crate::outbound::policy`] needs its time.
pub fn stop_in_force(consents: &[ConsentRecord]) -> Option<&ConsentRecord> {
    newest(consents, &[SCOPE_ALL]).filter(|c| c.consent == Consent::OptedOut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::CustomerKey;
    use crate::ports::{ConsentDetail, ConsentSource};

    fn rec(scope: &str, consent: Consent, at: i64) -> ConsentRecord {
        ConsentRecord {
            phone_number_id: "1".into(),
            customer: CustomerKey::Phone("2".into()),
            scope: scope.into(),
            consent,
            source: ConsentSource::Api,
            at,
            detail: Some(ConsentDetail {
                origin: "web_form".into(),
                proof: None,
            }),
        }
    }
    use Consent::{OptedIn as In, OptedOut as Out};

    const ALL: &str = SCOPE_ALL;
    const MKT: &str = SCOPE_MARKETING;
    const NO_ALL: Result<(), Blocked> = Err(Blocked::OptedOut(SCOPE_ALL));
    const NO_MKT: Result<(), Blocked> = Err(Blocked::OptedOut(SCOPE_MARKETING));
    const NO_OPT_IN: Result<(), Blocked> = Err(Blocked::NoOptIn);

    type Answers = [Result<(), Blocked>; 3];

    /// `(marketing, marketing with require_opt_in, other)` for some records.
    fn answers(records: &[ConsentRecord]) -> Answers {
        [
            may_send(records, Purpose::Marketing, false),
            may_send(records, Purpose::Marketing, true),
            may_send(records, Purpose::Other, false),
        ]
    }

    #[test]
    fn every_combination_of_the_two_scopes() {
        // (records, marketing, marketing requiring opt-in, session/utility)
        let cases: Vec<(Vec<ConsentRecord>, Answers)> = vec![
            (vec![], [Ok(()), NO_OPT_IN, Ok(())]),
            (vec![rec(MKT, In, 10)], [Ok(()), Ok(()), Ok(())]),
            (vec![rec(MKT, Out, 10)], [NO_MKT, NO_MKT, Ok(())]),
            (vec![rec(ALL, In, 10)], [Ok(()), Ok(()), Ok(())]),
            (vec![rec(ALL, Out, 10)], [NO_ALL, NO_ALL, NO_ALL]),
            // Both scopes: newest wins for marketing; a STOP in force blocks everything.
            (
                vec![rec(MKT, In, 10), rec(ALL, Out, 20)],
                [NO_ALL, NO_ALL, NO_ALL],
            ),
            (
                vec![rec(MKT, In, 20), rec(ALL, Out, 10)],
                [NO_ALL, NO_ALL, NO_ALL],
            ),
            (
                vec![rec(MKT, Out, 10), rec(ALL, In, 20)],
                [Ok(()), Ok(()), Ok(())],
            ),
            (
                vec![rec(MKT, Out, 20), rec(ALL, In, 10)],
                [NO_MKT, NO_MKT, Ok(())],
            ),
            (
                vec![rec(MKT, In, 10), rec(ALL, In, 20)],
                [Ok(()), Ok(()), Ok(())],
            ),
            (
                vec![rec(MKT, Out, 10), rec(ALL, Out, 20)],
                [NO_ALL, NO_ALL, NO_ALL],
            ),
        ];
        for (records, expected) in cases {
            assert_eq!(answers(&records), expected, "{records:?}");
        }
    }

    #[test]
    fn newest_wins_within_a_scope_whatever_the_order_given() {
        let mut records = vec![rec(MKT, Out, 10), rec(MKT, In, 30), rec(MKT, Out, 20)];
        assert_eq!(may_send(&records, Purpose::Marketing, true), Ok(()));
        records.reverse();
        assert_eq!(may_send(&records, Purpose::Marketing, true), Ok(()));
        records.push(rec(MKT, Out, 31));
        assert_eq!(may_send(&records, Purpose::Marketing, false), NO_MKT);
        let stops = [rec(ALL, In, 5), rec(ALL, Out, 7), rec(ALL, In, 6)];
        assert_eq!(may_send(&stops, Purpose::Other, false), NO_ALL);
        assert_eq!(stop_in_force(&stops).map(|c| c.at), Some(7));
    }

    #[test]
    fn a_tie_goes_to_the_opt_out() {
        let tie = [rec(MKT, In, 10), rec(MKT, Out, 10)];
        assert_eq!(may_send(&tie, Purpose::Marketing, false), NO_MKT);
        let tie = [rec(MKT, In, 10), rec(ALL, Out, 10)];
        assert_eq!(may_send(&tie, Purpose::Marketing, true), NO_ALL);
        let tie = [rec(MKT, Out, 10), rec(ALL, In, 10)];
        assert_eq!(may_send(&tie, Purpose::Marketing, false), NO_MKT);
        assert_eq!(may_send(&tie, Purpose::Other, false), Ok(()));
    }

    #[test]
    fn other_scopes_are_ignored() {
        let other = [rec("utility_messages", Out, 10)];
        assert_eq!(
            answers(&other),
            [Ok(()), NO_OPT_IN, Ok(())],
            "an unknown scope neither blocks nor opts in"
        );
    }

    #[test]
    fn blocked_has_machine_names() {
        assert_eq!(Blocked::OptedOut(SCOPE_ALL).as_str(), "opted_out_all");
        assert_eq!(
            Blocked::OptedOut(SCOPE_MARKETING).as_str(),
            "opted_out_marketing"
        );
        assert_eq!(Blocked::NoOptIn.as_str(), "no_opt_in");
    }
}
