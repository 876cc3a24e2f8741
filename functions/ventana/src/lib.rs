//! `ventana`: the operator's command line for a Ventana deployment (or the local stack).
//!
//! It owns two store-level operator actions: API keys ([`keys`]: create a random key and
//! store only its hash with its phone-number scope; revoke one) and dead-letter redrive
//! ([`redrive`]: put dead-lettered messages back on their queue; for the outbound queue, each
//! send is reset to be attempted afresh *before* its job is requeued, and a send that was
//! settled meanwhile is never sent again). Rules stay in `wa-domain` (`SendRecord::redrive`,
//! `hash_key`); storage and queues in `wa-dynamodb` and `wa-sqs`. Commands that act through
//! Ventana's own HTTP API (templates, [`broadcast`]s) use the small client in [`api`]. It must not
//! depend on Lambda or HTTP server crates.
//!
//! Configuration comes from the environment, or from a `KEY=VALUE` file
//! ([`env::Env::with_file`], `--env-file target/local-stack.env` for `make dev`): see
//! [`env::Settings`]. It never prints a key's hash or any secret; the only key it prints is
//! the one it has just created, once.
#![warn(missing_docs)]

pub mod api;
pub mod broadcast;
pub mod env;
pub mod error;
pub mod keys;
pub mod redrive;
pub mod templates;
pub mod upload;

pub use env::{Env, Settings};
pub use error::CliError;
