//! Applying inbound events (placeholder).
