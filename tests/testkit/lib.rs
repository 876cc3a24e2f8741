//! Ventana's test kit.

pub mod aws;
pub mod fake_sqs;

pub use aws::{
    FreshQueue, config_for, fresh_inbound_queue, fresh_table, moto_config, moto_endpoint,
    unique_name, unreachable_config,
};
pub use fake_sqs::{FakeMessage, FakeSqs};
