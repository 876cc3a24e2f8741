//! `deliver-worker`: the outbound queue's consumer. The binary (`main.rs`) only wires; the
//! library exposes the handler, its configuration and the system clock so that benchmarks and
//! tests run exactly this code.

pub mod clock;
pub mod config;
pub mod handler;
