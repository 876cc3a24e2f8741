//! The customer-service window: for 24 hours after a customer's last message the business may
//! send anything; after that only templates. A message that came from a Click-to-WhatsApp ad
//! or a Page call-to-action (it carries a `referral`) also opens a 72-hour free-entry-point
//! window.
//!
//! Windows are computed from the message's own timestamp, never from the time it was received
//! (Meta redelivers for up to 7 days), and only ever move forward: applying an older message
//! after a newer one changes nothing.

use serde::Serialize;

/// Length of the customer-service window.
pub const CUSTOMER_SERVICE_SECS: i64 = 24 * 3600;
/// Length of the free-entry-point window opened by an ad or Page referral.
pub const FREE_ENTRY_POINT_SECS: i64 = 72 * 3600;

/// What a customer's inbound message does to their window. Stores apply it with "keep the
/// later value" semantics, field by field, so updates commute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUpdate {
    /// The message's timestamp.
    pub inbound_at: i64,
    /// `inbound_at + 24 h`.
    pub customer_service_until: i64,
    /// `inbound_at + 72 h` when the message came from a referral.
    pub free_entry_point_until: Option<i64>,
}

impl WindowUpdate {
    /// The update for a message sent at `at` (unix seconds).
    pub fn for_message(at: i64, from_referral: bool) -> Self {
        Self {
            inbound_at: at,
            customer_service_until: at.saturating_add(CUSTOMER_SERVICE_SECS),
            free_entry_point_until: from_referral
                .then_some(at.saturating_add(FREE_ENTRY_POINT_SECS)),
        }
    }
}

/// A customer's window as stored: the latest values seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// Timestamp of the customer's newest message.
    pub last_inbound_at: Option<i64>,
    /// When the customer-service window closes.
    pub customer_service_until: Option<i64>,
    /// When the free-entry-point window closes, if one was opened.
    pub free_entry_point_until: Option<i64>,
}

/// Which window is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// 24 h after the customer's last message.
    CustomerService,
    /// 72 h after a message from an ad or Page referral.
    FreeEntryPoint,
}

/// The window as shown to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    /// Whether the window is open at the time asked.
    pub open: bool,
    /// When it closes (or closed); `None` if the customer never wrote.
    pub expires_at: Option<i64>,
    /// Which window `expires_at` belongs to.
    pub kind: Option<WindowKind>,
}

impl Window {
    /// Applies an update with forward-only semantics (the same rule the stores implement).
    pub fn apply(&mut self, u: &WindowUpdate) {
        self.last_inbound_at = self.last_inbound_at.max(Some(u.inbound_at));
        self.customer_service_until = self
            .customer_service_until
            .max(Some(u.customer_service_until));
        self.free_entry_point_until = self.free_entry_point_until.max(u.free_entry_point_until);
    }

    /// The update that moves another window at least as far as this one, so a window is
    /// carried to another key (a phone's to its BSUID's) under the same forward-only rule as
    /// a message. `None` if no message was ever applied.
    pub fn as_update(&self) -> Option<WindowUpdate> {
        Some(WindowUpdate {
            inbound_at: self.last_inbound_at?,
            customer_service_until: self.customer_service_until?,
            free_entry_point_until: self.free_entry_point_until,
        })
    }

    /// The window at `now`: the later-closing of the two windows that are open, or if none is
    /// open, the one that closed last.
    pub fn state(&self, now: i64) -> WindowState {
        let cs = self
            .customer_service_until
            .map(|t| (t, WindowKind::CustomerService));
        let fep = self
            .free_entry_point_until
            .map(|t| (t, WindowKind::FreeEntryPoint));
        let latest = match (cs, fep) {
            (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        match latest {
            Some((t, kind)) => WindowState {
                open: now < t,
                expires_at: Some(t),
                kind: Some(kind),
            },
            None => WindowState {
                open: false,
                expires_at: None,
                kind: None,
            },
        }
    }

    /// Whether a non-template (session) message may be sent at `now`, closing the window
    /// `margin_secs` early so a message queued at the edge is not refused by Meta (131047).
    /// Only the 24-hour customer-service window allows session messages.
    pub fn allows_session_message(&self, now: i64, margin_secs: i64) -> bool {
        self.customer_service_until
            .is_some_and(|t| now + margin_secs < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_message_opens_a_24h_window_from_its_own_timestamp() {
        let mut w = Window::default();
        w.apply(&WindowUpdate::for_message(1_000, false));
        assert!(w.state(1_000 + CUSTOMER_SERVICE_SECS - 1).open);
        assert!(!w.state(1_000 + CUSTOMER_SERVICE_SECS).open);
        assert_eq!(w.state(0).expires_at, Some(1_000 + CUSTOMER_SERVICE_SECS));
        assert_eq!(w.state(0).kind, Some(WindowKind::CustomerService));
    }

    #[test]
    fn an_old_redelivery_never_shortens_or_reopens_the_window() {
        let mut w = Window::default();
        w.apply(&WindowUpdate::for_message(10_000, false));
        let before = w;
        w.apply(&WindowUpdate::for_message(5_000, true).with_no_referral());
        assert_eq!(
            w,
            Window {
                last_inbound_at: Some(10_000),
                ..before
            }
        );
    }

    #[test]
    fn a_referral_opens_a_72h_free_entry_point_window() {
        let mut w = Window::default();
        w.apply(&WindowUpdate::for_message(0, true));
        let s = w.state(30 * 3600);
        assert_eq!(
            s,
            WindowState {
                open: true,
                expires_at: Some(FREE_ENTRY_POINT_SECS),
                kind: Some(WindowKind::FreeEntryPoint)
            }
        );
        assert!(
            !w.allows_session_message(30 * 3600, 0),
            "free-form needs the 24h window"
        );
        assert!(w.allows_session_message(3600, 300));
    }

    #[test]
    fn the_safety_margin_closes_the_window_early_for_sends() {
        let mut w = Window::default();
        w.apply(&WindowUpdate::for_message(0, false));
        assert!(w.allows_session_message(CUSTOMER_SERVICE_SECS - 301, 300));
        assert!(!w.allows_session_message(CUSTOMER_SERVICE_SECS - 300, 300));
    }

    #[test]
    fn no_message_means_no_window() {
        assert_eq!(
            Window::default().state(0),
            WindowState {
                open: false,
                expires_at: None,
                kind: None
            }
        );
        assert!(!Window::default().allows_session_message(0, 0));
    }

    #[test]
    fn a_window_carried_to_another_moves_it_forward_only() {
        assert_eq!(Window::default().as_update(), None);
        let mut phone = Window::default();
        phone.apply(&WindowUpdate::for_message(1_000, true));
        phone.apply(&WindowUpdate::for_message(2_000, false));
        let carried = phone.as_update().unwrap();

        let mut empty = Window::default();
        empty.apply(&carried);
        assert_eq!(empty, phone, "an empty window becomes the same window");

        let mut newer = Window::default();
        newer.apply(&WindowUpdate::for_message(3_000, false));
        let before = newer;
        newer.apply(&carried);
        assert_eq!(
            newer,
            Window {
                free_entry_point_until: phone.free_entry_point_until,
                ..before
            },
            "a newer window keeps its times and gains only the later free-entry-point window"
        );
    }

    impl WindowUpdate {
        fn with_no_referral(mut self) -> Self {
            self.free_entry_point_until = None;
            self
        }
    }

    proptest! {
        #[test]
        fn applying_updates_in_any_order_gives_the_same_window(
            mut updates in proptest::collection::vec((0i64..1_000_000, any::<bool>()), 1..20)
        ) {
            let mut forward = Window::default();
            for (at, r) in &updates { forward.apply(&WindowUpdate::for_message(*at, *r)); }
            updates.reverse();
            let mut backward = Window::default();
            for (at, r) in &updates { backward.apply(&WindowUpdate::for_message(*at, *r)); }
            prop_assert_eq!(forward, backward);
            let newest = updates.iter().map(|u| u.0).max().unwrap();
            prop_assert_eq!(forward.customer_service_until, Some(newest + CUSTOMER_SERVICE_SECS));
        }
    }
}
