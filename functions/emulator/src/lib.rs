//! Local AWS Lambda plumbing for Ventana, used by the local stack, whole-binary tests and
//! benchmarks.
//!
//! It owns four things, each a faithful copy of the AWS behaviour a Ventana function sees:
//!
//! - [`RuntimeApi`]: a fake [Lambda Runtime API] on `127.0.0.1` (long-polled `/next`,
//!   `/response`, `/error`, `/init/error`) that hands each invocation to exactly one of the
//!   processes polling it and records when they first polled (cold starts).
//! - [`FunctionPool`]: N processes of one Lambda binary pointed at a [`RuntimeApi`], killed
//!   on drop; a process that exits fails its invocation instead of leaving it hanging.
//! - [`apigw`]: API Gateway HTTP API (payload format 2.0) events built from HTTP requests,
//!   function responses converted back to HTTP responses, and route matching.
//! - [`sqs`]: an SQS → Lambda event source mapping (batches, partial batch failures,
//!   visibility-timeout retries, FIFO group ordering).
//!
//! It knows nothing about WhatsApp or Ventana's domain: it must not depend on `wa-domain`,
//! `wa-dynamodb`, `wa-sqs` or any function crate, so that it stays a neutral harness that can
//! run any Lambda binary. It never talks to anything but loopback and the SQS client it is
//! given.
//!
//! [Lambda Runtime API]: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html

pub mod apigw;
mod echo;
mod error;
mod ids;
mod process;
mod runtime;
pub mod sqs;

pub use echo::echo_example;
pub use error::EmulatorError;
pub use process::{FunctionConfig, FunctionPool, Output, ProcessInfo};
pub use runtime::{Endpoint, Invocation, RuntimeApi, SlotId};

/// The AWS account id used in ARNs the emulator invents (moto's default account).
pub const ACCOUNT_ID: &str = "123456789012";
