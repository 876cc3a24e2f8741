//! Translates an API Gateway request into the domain's verify → split → queue steps, and the
//! outcome into the answer Meta needs:
//!
//! | case | answer |
//! |---|---|
//! | body over 3 MB | 413 |
//! | signature missing, malformed or wrong | 401, nothing stored |
//! | signed, but not JSON or not a webhook | 200, body quarantined (a retry cannot fix it) |
//! | quarantine unavailable | 500, so Meta retries |
//! | events queued | 200 |
//! | an event too large for any queue message | 200 once it is quarantined and the rest queued |
//! | queue unavailable | 500, so Meta retries (redelivery is deduplicated) |
//!
//! On a function URL (`WebhookEndpoint=FunctionUrl`), Meta's callback URL is this function's,
//! so it also answers the `GET` handshake, as `webhook-verify` does, when it has the verify
//! token; any other method is 405.

use lambda_http::http::{HeaderValue, Method, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use wa_domain::ports::{EventQueue, Oversized, Quarantine, QueueError, StoreError};
use wa_domain::signature::{AppSecrets, SIGNATURE_HEADER, SignatureError};
use wa_domain::webhook::{self, MAX_WEBHOOK_BYTES};

/// What the handler needs, built once at init.
pub struct Deps<Q, S> {
    /// The app secrets webhooks may be signed with.
    pub secrets: AppSecrets,
    /// Where events go.
    pub queue: Q,
    /// Where unparseable signed bodies, and events too large for the queue, go.
    pub quarantine: S,
    /// The verify token of Meta's `GET` handshake, when this function answers it (on a
    /// function URL); `None` behind the HTTP API, which routes `GET` to webhook-verify.
    pub verify_token: Option<SecretString>,
}

/// Everything that stops a webhook from being acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The body is larger than Meta ever sends.
    #[error("body of {0} bytes exceeds the 3 MB limit")]
    TooLarge(usize),
    /// The signature did not check out.
    #[error("signature refused")]
    Signature(#[from] SignatureError),
    /// The events could not be queued.
    #[error("events could not be queued")]
    Queue(#[from] QueueError),
    /// An unparseable body, or an event too large for the queue, could not be quarantined.
    #[error("body or event could not be quarantined")]
    Quarantine(#[from] StoreError),
}

/// The one place errors become answers. Bodies never carry internal error text.
fn into_response(err: &ReceiveError) -> Response<Body> {
    match err {
        ReceiveError::TooLarge(_) => text(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"),
        ReceiveError::Signature(_) => text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        ReceiveError::Queue(_) | ReceiveError::Quarantine(_) => {
            text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// Handles one `POST /webhook` (and, with a verify token, the `GET` handshake).
pub async fn handle<Q: EventQueue, S: Quarantine>(
    deps: &Deps<Q, S>,
    req: Request,
) -> Response<Body> {
    match (req.method(), &deps.verify_token) {
        (&Method::POST, _) => {}
        (&Method::GET, Some(token)) => return webhook_verify::handler::handle(token, &req),
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    }
    match receive(deps, req).await {
        Ok(()) => text(StatusCode::OK, "OK"),
        Err(err) => {
            match &err {
                ReceiveError::Signature(e) => {
                    tracing::warn!(reason = %e, "webhook signature refused")
                }
                ReceiveError::TooLarge(n) => tracing::warn!(bytes = n, "webhook too large"),
                other => {
                    tracing::error!(error = ?other, "webhook not acknowledged; Meta will retry")
                }
            }
            into_response(&err)
        }
    }
}

async fn receive<Q: EventQueue, S: Quarantine>(
    deps: &Deps<Q, S>,
    req: Request,
) -> Result<(), ReceiveError> {
    // lambda_http has already decoded an API Gateway base64 body: these are the raw bytes.
    let (parts, body) = req.into_parts();
    let len = body.as_ref().len();
    if len > MAX_WEBHOOK_BYTES {
        return Err(ReceiveError::TooLarge(len));
    }
    let signature = parts
        .headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    deps.secrets.verify(signature, body.as_ref())?;
    match webhook::split(body.as_ref()) {
        Ok(events) => {
            let count = events.len();
            // The body is not needed once split: free it before the events are encoded, so a
            // 3 MB webhook is not held twice while it is queued.
            drop(body);
            let published = deps.queue.publish(events).await?;
            let quarantined = published.oversized.len();
            for event in published.oversized {
                keep_oversized(&deps.quarantine, event).await?;
            }
            tracing::info!(
                events = count,
                queued = published.queued,
                quarantined,
                "webhook queued"
            );
            Ok(())
        }
        Err(e) => {
            let id = deps
                .quarantine
                .quarantine(body.as_ref(), &e.to_string(), wa_domain::clock::unix_now())
                .await?;
            tracing::error!(error = %e, quarantine_id = %id, bytes = len, "signed webhook could not be parsed; quarantined");
            Ok(())
        }
    }
}

/// How the quarantine's `reason` of an oversized event begins (a quarantined webhook body's
/// reason is its parse error instead).
const OVERSIZED_REASON: &str = "inbound event too large for the queue";

/// Keeps an event that no queue message can hold (SQS: 256 KiB; a change with no array to
/// split, such as a coexistence `history` sync, is one event holding its whole `value`) in the
/// quarantine, as the queue message it would have been, so its webhook can be acknowledged.
///
/// Why the quarantine rather than chunks in the table plus a small pointer event on the queue:
/// the quarantine already keeps bodies of up to 3 MB durably (chunked under DynamoDB's item
/// limit, content-addressed, so Meta's retries write it once), and operators already look
/// there. A pointer would not get the event applied either: inbound-processor keeps such a
/// field whole as one item, which DynamoDB refuses over 400 KB, so it would only move the
/// failure to the dead-letter queue, through a new message kind and new reads. The kept
/// message decodes with `wa_sqs::decode`; the quarantine is the event's record.
///
/// The log line names the event (kind, field, natural key: ids and a digest) and its size,
/// never its content.
async fn keep_oversized<S: Quarantine>(quarantine: &S, event: Oversized) -> Result<(), StoreError> {
    let bytes = event.message.len();
    let reason = format!(
        "{OVERSIZED_REASON}: a {} event of field {} whose queue message is {bytes} bytes, over \
         the {}-byte limit; kept as that message",
        event.kind.as_str(),
        event.field,
        event.limit,
    );
    let id = quarantine
        .quarantine(
            event.message.as_bytes(),
            &reason,
            wa_domain::clock::unix_now(),
        )
        .await?;
    tracing::warn!(
        quarantine_id = %id,
        kind = event.kind.as_str(),
        field = %event.field,
        natural_key = %event.natural_key,
        bytes,
        limit = event.limit,
        "inbound event too large for the queue; quarantined, the rest of its webhook queued"
    );
    Ok(())
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::Text(body.to_owned()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use wa_domain::event::EventKind;
    use wa_domain::testing::{InMemoryStore, RecordingQueue};

    fn deps() -> Deps<RecordingQueue, InMemoryStore> {
        Deps {
            secrets: AppSecrets::parse(&SecretString::from("test-app-secret".to_owned())).unwrap(),
            queue: RecordingQueue::default(),
            quarantine: InMemoryStore::default(),
            verify_token: None,
        }
    }

    fn request(fixture: &str) -> Request {
        lambda_http::request::from_str(fixture).expect("fixture is an API Gateway v2 event")
    }

    async fn post(d: &Deps<RecordingQueue, InMemoryStore>, fixture: &str) -> u16 {
        handle(d, request(fixture)).await.status().as_u16()
    }

    #[tokio::test]
    async fn on_a_function_url_the_get_handshake_is_answered_with_the_verify_token() {
        let d = Deps {
            verify_token: Some(SecretString::from("test-verify-token".to_owned())),
            ..deps()
        };
        let ok = include_str!("../../../events/webhook-verify/subscribe-ok.json");
        let res = handle(&d, request(ok)).await;
        assert_eq!(res.status().as_u16(), 200);
        assert!(matches!(res.body(), Body::Text(t) if t == "1158201444"));
        let wrong = include_str!("../../../events/webhook-verify/wrong-token.json");
        assert_eq!(handle(&d, request(wrong)).await.status().as_u16(), 403);
        // A POST still goes through the signature check and the queue.
        let msg = include_str!("../../../events/webhook-receive/text-message.json");
        assert_eq!(post(&d, msg).await, 200);
        assert_eq!(d.queue.events().len(), 1);
        assert!(
            d.queue
                .events()
                .iter()
                .all(|e| e.kind == EventKind::Message)
        );
    }

    #[tokio::test]
    async fn without_a_verify_token_only_post_is_served() {
        let d = deps();
        let ok = include_str!("../../../events/webhook-verify/subscribe-ok.json");
        assert_eq!(handle(&d, request(ok)).await.status().as_u16(), 405);
        let mut put = request(include_str!(
            "../../../events/webhook-receive/text-message.json"
        ));
        *put.method_mut() = Method::PUT;
        assert_eq!(handle(&d, put).await.status().as_u16(), 405);
        assert!(d.queue.events().is_empty());
    }

    #[tokio::test]
    async fn signed_text_message_is_queued_then_acknowledged() {
        let d = deps();
        assert_eq!(
            post(
                &d,
                include_str!("../../../events/webhook-receive/text-message.json")
            )
            .await,
            200
        );
        let events = d.queue.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Message);
        assert!(d.quarantine.quarantined().is_empty());
    }

    #[tokio::test]
    async fn base64_body_is_decoded_before_the_signature_check() {
        let d = deps();
        assert_eq!(
            post(
                &d,
                include_str!("../../../events/webhook-receive/text-message-base64.json")
            )
            .await,
            200
        );
        assert_eq!(d.queue.events().len(), 1);
    }

    #[tokio::test]
    async fn escaped_unicode_emoji_and_at_sign_verify_over_the_raw_bytes() {
        let d = deps();
        assert_eq!(
            post(
                &d,
                include_str!("../../../events/webhook-receive/escaped-unicode.json")
            )
            .await,
            200
        );
        let events = d.queue.events();
        assert_eq!(events.len(), 1);
        // The item is kept byte for byte, escapes included.
        assert!(events[0].item.get().contains(r"\ud83d\ude00 \u00bfpueden"));
    }

    #[tokio::test]
    async fn missing_wrong_or_sha1_signatures_get_401_and_store_nothing() {
        for fixture in [
            include_str!("../../../events/webhook-receive/missing-signature.json"),
            include_str!("../../../events/webhook-receive/wrong-secret.json"),
            include_str!("../../../events/webhook-receive/sha1-only.json"),
        ] {
            let d = deps();
            assert_eq!(post(&d, fixture).await, 401);
            assert!(d.queue.events().is_empty());
            assert!(d.quarantine.quarantined().is_empty());
        }
    }

    #[tokio::test]
    async fn header_name_is_case_insensitive() {
        let d = deps();
        assert_eq!(
            post(
                &d,
                include_str!("../../../events/webhook-receive/uppercase-header-name.json")
            )
            .await,
            200
        );
    }

    #[tokio::test]
    async fn signed_garbage_is_quarantined_and_acknowledged() {
        for (fixture, body) in [
            (
                include_str!("../../../events/webhook-receive/signed-not-json.json"),
                "this is not json",
            ),
            (
                include_str!("../../../events/webhook-receive/signed-not-a-webhook.json"),
                r#"{"object":"page","entry":[]}"#,
            ),
        ] {
            let d = deps();
            assert_eq!(post(&d, fixture).await, 200);
            assert!(d.queue.events().is_empty());
            let q = d.quarantine.quarantined();
            assert_eq!(q.len(), 1);
            assert_eq!(q[0].0, body.as_bytes());
        }
    }

    #[tokio::test]
    async fn quarantine_failure_gets_500_so_meta_retries() {
        let d = deps();
        d.quarantine.set_failing(true);
        assert_eq!(
            post(
                &d,
                include_str!("../../../events/webhook-receive/signed-not-json.json")
            )
            .await,
            500
        );
    }

    #[tokio::test]
    async fn queue_failure_gets_500_so_meta_retries() {
        let d = deps();
        d.queue.set_failing(true);
        let res = handle(
            &d,
            request(include_str!(
                "../../../events/webhook-receive/text-message.json"
            )),
        )
        .await;
        assert_eq!(res.status(), 500);
        assert_eq!(
            res.body(),
            &Body::Text("Internal Server Error".into()),
            "no internal detail leaks"
        );
    }

    #[tokio::test]
    async fn every_status_template_and_preference_update_becomes_an_event() {
        let d = deps();
        assert_eq!(
            post(
                &d,
                include_str!("../../../events/webhook-receive/statuses-out-of-order.json")
            )
            .await,
            200
        );
        assert_eq!(
            post(
                &d,
                include_str!("../../../events/webhook-receive/template-paused.json")
            )
            .await,
            200
        );
        assert_eq!(
            post(
                &d,
                include_str!("../../../events/webhook-receive/user-preferences-stop.json")
            )
            .await,
            200
        );
        let kinds: Vec<EventKind> = d.queue.events().iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::Status,
                EventKind::Status,
                EventKind::Status,
                EventKind::Field,
                EventKind::Preference
            ]
        );
    }

    #[tokio::test]
    async fn a_redelivered_webhook_queues_nothing_new() {
        let d = deps();
        let fixture = include_str!("../../../events/webhook-receive/statuses-out-of-order.json");
        assert_eq!(post(&d, fixture).await, 200);
        assert_eq!(post(&d, fixture).await, 200);
        assert_eq!(d.queue.events().len(), 3);
    }

    fn signed_request(body: Vec<u8>) -> Request {
        let sig = wa_domain::signature::sign("test-app-secret", &body);
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("https://example.com/webhook")
            .header("x-hub-signature-256", sig)
            .body(Body::Binary(body))
            .unwrap()
    }

    #[tokio::test]
    async fn body_over_3mb_gets_413() {
        let d = deps();
        let res = handle(&d, signed_request(vec![b' '; MAX_WEBHOOK_BYTES + 1])).await;
        assert_eq!(res.status(), 413);
        assert!(d.queue.events().is_empty());
    }

    /// The `value` of a coexistence `history` sync (a change with no array to split, so one
    /// event) of 300 past messages: about 340 KiB, over SQS's 256 KiB message limit.
    fn huge_history_value() -> String {
        format!(
            r#"{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"PN"}},"history":[{{"metadata":{{"phase":0,"chunk_order":1,"progress":100}},"threads":[{{"id":"15550000009","messages":[{}]}}]}}]}}"#,
            wa_domain::testing::history_thread_over_256_kib("15550000009")
        )
    }

    /// One POST: three text messages, the huge `history` sync, then a status.
    fn webhook_with(history_value: &str) -> Vec<u8> {
        let metadata =
            r#""metadata":{"display_phone_number":"15550783881","phone_number_id":"PN"}"#;
        let texts: Vec<String> = (0..3)
            .map(|i| format!(r#"{{"from":"1555000000{i}","id":"wamid.IN{i}","timestamp":"1795420800","type":"text","text":{{"body":"hola {i}"}}}}"#))
            .collect();
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"W","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp",{metadata},"messages":[{}]}}}},{{"field":"history","value":{history_value}}},{{"field":"messages","value":{{"messaging_product":"whatsapp",{metadata},"statuses":[{{"id":"wamid.OUT1","status":"delivered","timestamp":"1795420801","recipient_id":"15550000001"}}]}}}}]}}]}}"#,
            texts.join(",")
        )
        .into_bytes()
    }

    fn sqs_sized_deps() -> Deps<RecordingQueue, InMemoryStore> {
        Deps {
            queue: RecordingQueue::limited(wa_sqs::MAX_MESSAGE_BYTES),
            ..deps()
        }
    }

    #[tokio::test]
    async fn an_event_too_large_for_the_queue_is_quarantined_and_the_rest_queued() {
        let d = sqs_sized_deps();
        let history = huge_history_value();
        assert!(history.len() > wa_sqs::MAX_MESSAGE_BYTES);
        let res = handle(&d, signed_request(webhook_with(&history))).await;
        assert_eq!(res.status(), 200);

        let queued: Vec<(EventKind, String)> = d
            .queue
            .events()
            .iter()
            .map(|e| (e.kind, e.natural_key.clone()))
            .collect();
        assert_eq!(
            queued,
            vec![
                (EventKind::Message, "message:wamid.IN0".to_owned()),
                (EventKind::Message, "message:wamid.IN1".to_owned()),
                (EventKind::Message, "message:wamid.IN2".to_owned()),
                (
                    EventKind::Status,
                    "status:wamid.OUT1:delivered:1795420801".to_owned()
                ),
            ]
        );

        let q = d.quarantine.quarantined();
        assert_eq!(q.len(), 1, "the history sync is kept, once");
        let (kept, reason) = &q[0];
        assert!(reason.starts_with(OVERSIZED_REASON), "{reason}");
        assert!(!reason.contains("Hola"), "the reason carries no content");
        // Kept as the queue message it would have been: the whole event, its value byte
        // for byte.
        let event: wa_domain::event::InboundEvent = serde_json::from_slice(kept).unwrap();
        assert_eq!(event.kind, EventKind::Field);
        assert_eq!(event.field, "history");
        assert_eq!(event.waba_id.as_deref(), Some("W"));
        assert_eq!(event.item.get(), history);
    }

    #[tokio::test]
    async fn an_oversized_event_that_cannot_be_quarantined_gets_500() {
        let d = sqs_sized_deps();
        d.quarantine.set_failing(true);
        let res = handle(&d, signed_request(webhook_with(&huge_history_value()))).await;
        assert_eq!(res.status(), 500, "Meta retries the webhook");
        assert!(d.quarantine.quarantined().is_empty());
    }

    #[tokio::test]
    async fn a_batch_of_1000_updates_is_queued_whole() {
        let msgs: Vec<String> = (0..1000)
            .map(|i| format!(r#"{{"from":"1555{i:07}","id":"wamid.{i}","timestamp":"1795420800","type":"text","text":{{"body":"{i}"}}}}"#))
            .collect();
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"W","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"PN"}},"messages":[{}]}}}}]}}]}}"#,
            msgs.join(",")
        );
        let d = deps();
        assert_eq!(
            handle(&d, signed_request(body.into_bytes())).await.status(),
            200
        );
        assert_eq!(d.queue.events().len(), 1000);
    }
}

#[cfg(test)]
#[path = "bad_input_tests.rs"]
mod bad_input_tests;
