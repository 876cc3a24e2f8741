//! `webhook-verify`: Meta's `GET /webhook` subscription handshake. The binary (`main.rs`)
//! only wires; the library exposes the handler so that `webhook-receive` answers the same
//! handshake when Meta's callback URL is its function URL (`WebhookEndpoint=FunctionUrl`).

pub mod handler;
