//! Delivery statuses of outbound messages, applied monotonically.
//!
//! Meta delivers status webhooks out of order and more than once. Ventana stores the first
//! timestamp of each status a message reached, and derives the current status from that set:
//! `failed` wins and is terminal, otherwise the highest of `sent < delivered < read < played`.
//! Because the derivation only looks at which statuses were seen, the result is the same
//! whatever order the webhooks arrive in.

use serde::{Deserialize, Serialize};

/// A status Meta reports for an outbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted by WhatsApp (one tick).
    Sent,
    /// Delivered to the device (two ticks).
    Delivered,
    /// Read (blue ticks). A message read on arrival gets no `delivered`.
    Read,
    /// A voice message was first played.
    Played,
    /// Not delivered; terminal.
    Failed,
}

impl DeliveryStatus {
    /// All statuses, lowest rank first.
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
        DeliveryStatus::Played,
        DeliveryStatus::Failed,
    ];

    /// Parses Meta's `status` string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" => Some(Self::Read),
            "played" => Some(Self::Played),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
            Self::Failed => "failed",
        }
    }
}

/// The statuses a message has reached, each with the timestamp it was first reported at.
/// Serialised as a map from status to timestamp, e.g. `{"sent":1700000000}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusHistory {
    seen: [Option<i64>; 5],
}

impl Serialize for StatusHistory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let entries = self.entries();
        let mut m = s.serialize_map(Some(entries.len()))?;
        for (status, at) in entries {
            m.serialize_entry(status.as_str(), &at)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for StatusHistory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<DeliveryStatus, i64>::deserialize(d)?;
        let mut h = StatusHistory::default();
        for (status, at) in map {
            h.record(status, at);
        }
        Ok(h)
    }
}

impl StatusHistory {
    /// Records a status; a repeat keeps the earliest timestamp.
    pub fn record(&mut self, status: DeliveryStatus, at: i64) {
        let slot = &mut self.seen[status as usize];
        *slot = Some(slot.map_or(at, |t| t.min(at)));
    }

    /// When `status` was first reported, if it was.
    pub fn at(&self, status: DeliveryStatus) -> Option<i64> {
        self.seen[status as usize]
    }

    /// The current status: `failed` if it failed, otherwise the highest status reached.
    pub fn current(&self) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL
            .iter()
            .rev()
            .copied()
            .find(|s| self.at(*s).is_some())
    }

    /// Adds the receipts of `other` (`sent`, `delivered`, `read`), the earliest time of each
    /// winning. `failed` is left out: it changes a send's state, so it is only ever recorded
    /// with the send itself ([`crate::outbound::SendRecord::apply_status`]).
    pub fn add_receipts(&mut self, other: &StatusHistory) {
        for (status, at) in other.entries() {
            if status != DeliveryStatus::Failed {
                self.record(status, at);
            }
        }
    }

    /// The statuses reached, in rank order, with their timestamps.
    pub fn entries(&self) -> Vec<(DeliveryStatus, i64)> {
        DeliveryStatus::ALL
            .iter()
            .filter_map(|s| self.at(*s).map(|t| (*s, t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryStatus::*;
    use proptest::prelude::*;

    #[test]
    fn read_before_delivered_stays_read() {
        let mut h = StatusHistory::default();
        h.record(Read, 20);
        h.record(Delivered, 10);
        h.record(Sent, 5);
        assert_eq!(h.current(), Some(Read));
        assert_eq!(h.entries(), vec![(Sent, 5), (Delivered, 10), (Read, 20)]);
    }

    #[test]
    fn receipts_merge_earliest_first_and_leave_failed_out() {
        let mut send = StatusHistory::default();
        send.record(Sent, 7);
        let mut message = StatusHistory::default();
        message.record(Sent, 5);
        message.record(Read, 20);
        message.record(Failed, 30);
        send.add_receipts(&message);
        assert_eq!(send.entries(), vec![(Sent, 5), (Read, 20)]);
        let mut later = StatusHistory::default();
        later.record(Sent, 9);
        send.add_receipts(&later);
        assert_eq!(send.at(Sent), Some(5));
    }

    #[test]
    fn failed_is_terminal() {
        let mut h = StatusHistory::default();
        h.record(Failed, 10);
        h.record(Delivered, 11);
        h.record(Read, 12);
        assert_eq!(h.current(), Some(Failed));
    }

    #[test]
    fn repeats_keep_the_first_timestamp() {
        let mut h = StatusHistory::default();
        h.record(Sent, 9);
        h.record(Sent, 7);
        h.record(Sent, 8);
        assert_eq!(h.at(Sent), Some(7));
    }

    #[test]
    fn parse_round_trips_and_rejects_unknown() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryStatus::parse("deleted"), None);
    }

    proptest! {
        #[test]
        fn any_arrival_order_gives_the_same_result(
            mut seq in proptest::collection::vec((0usize..5, 0i64..100), 0..12)
        ) {
            let mut a = StatusHistory::default();
            for (s, t) in &seq { a.record(DeliveryStatus::ALL[*s], *t); }
            seq.reverse();
            let mut b = StatusHistory::default();
            for (s, t) in &seq { b.record(DeliveryStatus::ALL[*s], *t); }
            prop_assert_eq!(a.current(), b.current());
            prop_assert_eq!(a, b);
        }
    }
}
