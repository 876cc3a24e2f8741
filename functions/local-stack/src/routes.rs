//! What runs where: the HTTP routes (architecture §4) and the queue consumers, as data.
//!
//! The functions to start are exactly those named here, so adding a route for a new function
//! (send-api) is one line per route; its binary then has to exist in `VENTANA_BIN_DIR`.

/// HTTP API routes → function, as in AWS (`infra/template.yaml`).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET /webhook", "webhook-verify"),
    ("POST /webhook", "webhook-receive"),
    (
        "GET /v1/conversations/{phone_number_id}/{customer}",
        "read-api",
    ),
    ("GET /v1/messages/{id}", "read-api"),
    // send-api, when its binary exists (and GET /v1/messages/{id} may move to it):
    // ("POST /{version}/{phone_number_id}/messages", "send-api"),
    // ("POST /v1/broadcasts", "send-api"),
    // ("GET /v1/broadcasts/{id}", "send-api"),
];

/// A queue the local stack creates, and the function its event source mapping feeds.
#[derive(Clone, Copy, Debug)]
pub struct QueueSpec {
    /// Which queue (and how it is created).
    pub kind: QueueKind,
    /// The variable that gives its URL to every function.
    pub url_env: &'static str,
    /// The function that consumes it.
    pub consumer: &'static str,
}

/// The queues the local stack knows how to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// The inbound FIFO queue and its DLQ (`wa_sqs::create_fifo_queue_with_dlq`).
    Inbound,
}

/// Queues with their consumers (deliver-worker's outbound queue goes here when it lands).
pub const QUEUES: &[QueueSpec] = &[QueueSpec {
    kind: QueueKind::Inbound,
    url_env: "INBOUND_QUEUE_URL",
    consumer: "inbound-processor",
}];

/// Every function to start, each once, in the order first named above.
pub fn functions() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for name in ROUTES
        .iter()
        .map(|(_, f)| *f)
        .chain(QUEUES.iter().map(|q| q.consumer))
    {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_key_parses() {
        for (key, _) in ROUTES {
            wa_emulator::apigw::RouteKey::parse(key).unwrap();
        }
    }

    #[test]
    fn each_function_is_started_once() {
        assert_eq!(
            functions(),
            [
                "webhook-verify",
                "webhook-receive",
                "read-api",
                "inbound-processor"
            ]
        );
    }
}
