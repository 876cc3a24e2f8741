//! `send-api` as a library: the request handler ([`handler`]), so that benchmarks and other
//! crates can call exactly what the Lambda runs. The binary (`main.rs`) only wires it to
//! DynamoDB, SQS and the Lambda runtime.

pub mod broadcasts;
pub mod consents;
pub mod handler;
pub mod openapi;
pub mod templates;
pub mod uploads;

#[cfg(test)]
mod test_support;
