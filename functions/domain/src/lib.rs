//! `wa-domain`: Ventana's WhatsApp domain.
//!
//! It owns what Meta's platform means for a business: webhook signatures and payloads, the
//! events a webhook is split into, customers and their 24-hour windows, delivery statuses,
//! consent, and the ports (traits) through which the outside world is reached. It must not
//! depend on AWS, Lambda or HTTP crates; CI checks this with `cargo tree`.
#![warn(missing_docs)]

pub mod auth;
pub mod broadcast;
pub mod clock;
pub mod consent;
pub mod customer;
pub mod event;
pub mod handshake;
pub mod inbound;
mod json;
pub mod model;
pub mod optout;
pub mod outbound;
pub mod pacing;
pub mod ports;
pub mod redact;
pub mod signature;
pub mod status;
pub mod templates;
pub mod webhook;
pub mod window;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
