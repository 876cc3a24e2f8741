//! Broadcasts: one approved template sent to a list of recipients, released gradually,
//! within the portfolio's rolling-24-hour messaging limit, with a per-recipient ledger.

pub mod source;

pub use source::{RecipientList, RecipientPage, RecipientRow, RecipientSource};
