//! What runs where: the HTTP routes (architecture §4) and the queue consumers, as data.
//!
//! The functions to start are exactly those named here, so adding a route for a new function
//! is one line per route; its binary then has to exist in `VENTANA_BIN_DIR`.

use wa_sqs::FifoQueueSpec;

/// The broadcast step queue's name (standard, with `-dlq`), after the stack's prefix.
pub const STEP_QUEUE_NAME: &str = "broadcast-steps";

/// HTTP API routes → function, as in AWS (`infra/template.yaml`).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET /webhook", "webhook-verify"),
    ("POST /webhook", "webhook-receive"),
    (
        "GET /v1/conversations/{phone_number_id}/{customer}",
        "read-api",
    ),
    ("GET /v1/messages/{id}", "read-api"),
    ("POST /{version}/{phone_number_id}/messages", "send-api"),
    ("PUT /v1/consents/{phone_number_id}/{customer}", "send-api"),
    ("GET /v1/consents/{phone_number_id}/{customer}", "send-api"),
    ("GET /openapi.json", "send-api"),
    ("POST /v1/broadcasts", "send-api"),
    ("POST /v1/broadcasts/uploads", "send-api"),
    ("GET /v1/broadcasts/{id}", "send-api"),
    ("POST /v1/broadcasts/{id}/pause", "send-api"),
    ("POST /v1/broadcasts/{id}/resume", "send-api"),
    ("GET /v1/broadcasts/{id}/recipients", "send-api"),
    ("GET /v1/templates", "send-api"),
    ("POST /v1/templates/sync", "send-api"),
];

/// A queue the local stack creates, and the function its event source mapping feeds.
#[derive(Clone, Copy, Debug)]
pub struct QueueSpec {
    /// Which queue (and how it is created).
    pub kind: QueueKind,
    /// The variable that gives its URL to every function.
    pub url_env: &'static str,
    /// The variable that gives its dead-letter queue's URL to every function.
    pub dlq_env: &'static str,
    /// The function that consumes it.
    pub consumer: &'static str,
}

/// The queues the local stack knows how to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// The inbound FIFO queue and its DLQ ([`FifoQueueSpec::inbound`]).
    Inbound,
    /// The outbound FIFO queue and its DLQ ([`FifoQueueSpec::outbound`]).
    Outbound,
    /// The broadcast planner's standard step queue and its DLQ
    /// ([`wa_sqs::create_step_queues`]: per-message delays, which FIFO queues lack).
    Steps,
}

impl QueueKind {
    /// How wa-sqs creates a FIFO queue (the same names, receive counts and timeouts as in
    /// AWS); `None` for the standard step queue.
    pub fn spec(self) -> Option<FifoQueueSpec> {
        match self {
            QueueKind::Inbound => Some(FifoQueueSpec::inbound()),
            QueueKind::Outbound => Some(FifoQueueSpec::outbound()),
            QueueKind::Steps => None,
        }
    }
}

/// Queues with their consumers.
pub const QUEUES: &[QueueSpec] = &[
    QueueSpec {
        kind: QueueKind::Inbound,
        url_env: "INBOUND_QUEUE_URL",
        dlq_env: "INBOUND_DLQ_URL",
        consumer: "inbound-processor",
    },
    QueueSpec {
        kind: QueueKind::Outbound,
        url_env: "OUTBOUND_QUEUE_URL",
        dlq_env: "OUTBOUND_DLQ_URL",
        consumer: "deliver-worker",
    },
    QueueSpec {
        kind: QueueKind::Steps,
        url_env: "BROADCAST_QUEUE_URL",
        dlq_env: "BROADCAST_DLQ_URL",
        consumer: "broadcast-planner",
    },
];

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

    /// Routes the client API document leaves out on purpose, with the reason.
    const UNDOCUMENTED: &[(&str, &str)] = &[
        (
            "GET /webhook",
            "Meta's verification handshake, not a client call",
        ),
        (
            "POST /webhook",
            "Meta's signed event delivery, not a client call",
        ),
    ];

    /// `/v1/x/{a}/{b}` → `/v1/x/{}/{}`: templates compared without parameter names.
    fn normalised(path: &str) -> String {
        path.split('/')
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    "{}"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// `(METHOD, normalised path)` of every operation in `docs/openapi.json`.
    fn documented() -> Vec<(String, String)> {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/openapi.json")).unwrap();
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                if item.get(method).is_some() {
                    ops.push((method.to_uppercase(), normalised(path)));
                }
            }
        }
        ops
    }

    #[test]
    fn every_route_is_documented_in_openapi_json_or_excluded_with_a_reason() {
        let ops = documented();
        let mut missing = Vec::new();
        for (key, _) in ROUTES {
            let (method, path) = key.split_once(' ').unwrap();
            let found = ops.contains(&(method.to_owned(), normalised(path)));
            let excluded = UNDOCUMENTED.iter().any(|(k, _)| k == key);
            assert!(
                !(found && excluded),
                "{key} is both documented and excluded"
            );
            if !found && !excluded {
                missing.push(*key);
            }
        }
        assert!(
            missing.is_empty(),
            "routes missing from docs/openapi.json (document them or exclude them with a reason): {missing:?}"
        );
        for (key, _) in UNDOCUMENTED {
            assert!(
                ROUTES.iter().any(|(k, _)| k == key),
                "stale exclusion {key}"
            );
        }
    }

    #[test]
    fn parameter_names_are_normalised_away() {
        assert_eq!(normalised("/v1/consents/{pnid}/{c}"), "/v1/consents/{}/{}");
        assert_eq!(normalised("/webhook"), "/webhook");
    }

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
                "send-api",
                "inbound-processor",
                "deliver-worker",
                "broadcast-planner",
            ]
        );
    }

    #[test]
    fn each_queue_has_its_own_names_and_consumer() {
        let names: Vec<String> = QUEUES
            .iter()
            .filter_map(|q| q.kind.spec())
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["inbound", "outbound"]);
        assert_eq!(QUEUES[2].kind, QueueKind::Steps);
        for q in QUEUES {
            let stem = q.url_env.trim_end_matches("_QUEUE_URL");
            assert_eq!(q.dlq_env, format!("{stem}_DLQ_URL"));
        }
        assert_eq!(
            QueueKind::Outbound.spec().unwrap().max_receive_count,
            wa_sqs::OUTBOUND_MAX_RECEIVE_COUNT
        );
    }

    #[test]
    fn the_send_route_and_the_message_read_route_do_not_collide() {
        let mut table = wa_emulator::apigw::RouteTable::new();
        for (key, function) in ROUTES {
            table.add(key, *function).unwrap();
        }
        let send = table.find(&http::Method::POST, "/v25.0/106540352242922/messages");
        assert_eq!(send.map(|m| *m.target), Some("send-api"));
        let read = table.find(&http::Method::GET, "/v1/messages/vnt.0123");
        assert_eq!(read.map(|m| *m.target), Some("read-api"));
        let webhook = table.find(&http::Method::POST, "/webhook");
        assert_eq!(webhook.map(|m| *m.target), Some("webhook-receive"));
    }
}
