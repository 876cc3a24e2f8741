//! Translates the `/v1` read routes into domain reads and the contract's JSON (architecture
//! §4):
//!
//! - `GET /v1/conversations/{phone_number_id}/{customer}` →
//!   `{"customer":{"user_id","wa_id"},"window":{"open","expires_at","kind"},"messages":[…],"next_cursor"}`
//! - `GET /v1/messages/{id}` → `{"id","wamid","status","statuses":[{"status","timestamp"}],"error"}`
//!   (and more fields); a send of a number the key may not read is answered 404, as an
//!   unknown id is.
//!
//! Messages are newest first, each once. Errors are `{"error":{"code","message","request_id"}}`
//! with 400 / 401 / 403 / 404 / 500, mapped in one place.

use lambda_http::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Value, json};
use wa_domain::auth::{AuthError, authenticate, authorize};
use wa_domain::clock::rfc3339;
use wa_domain::customer::CustomerKey;
use wa_domain::outbound::SendId;
use wa_domain::ports::{ApiKeyStore, ConversationReader, HistoryItem, SendStore, StoreError};

/// Default and largest page sizes.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;

/// Everything that stops a read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Authentication or authorisation failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A parameter is invalid; the field is named.
    #[error("invalid parameter {0}")]
    BadRequest(&'static str, &'static str),
    /// No such route.
    #[error("not found")]
    NotFound,
    /// No such send, or not one this key may read (the same answer, so that a key cannot
    /// learn which ids exist for other numbers).
    #[error("no such message")]
    NoSuchMessage,
    /// The store failed.
    #[error("store failed")]
    Store(#[from] StoreError),
}

/// The one place errors become answers.
fn into_response(err: &ReadError, request_id: &str) -> Response<Body> {
    let (status, code, message) = match err {
        ReadError::Auth(AuthError::Unauthenticated) => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown API key",
        ),
        ReadError::Auth(AuthError::Forbidden) => (
            StatusCode::FORBIDDEN,
            "forbidden",
            "API key not allowed for this phone number",
        ),
        ReadError::BadRequest(_, why) => (StatusCode::BAD_REQUEST, "invalid_parameter", *why),
        ReadError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such route"),
        ReadError::NoSuchMessage => (StatusCode::NOT_FOUND, "not_found", "no such message"),
        ReadError::Auth(AuthError::Store(_)) | ReadError::Store(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        ),
    };
    let mut body = json!({"error": {"code": code, "message": message, "request_id": request_id}});
    if let ReadError::BadRequest(field, _) = err {
        body["error"]["field"] = json!(field);
    }
    json_response(status, &body)
}

/// Handles one request at `now` (unix seconds).
pub async fn handle<S: ConversationReader + ApiKeyStore + SendStore>(
    store: &S,
    req: &Request,
    now: i64,
) -> Response<Body> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    match route(store, req, now).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(err) => {
            match &err {
                ReadError::Store(_) | ReadError::Auth(AuthError::Store(_)) => {
                    tracing::error!(error = ?err, request_id = %request_id, "read failed")
                }
                other => tracing::info!(outcome = %other, "read refused"),
            }
            into_response(&err, &request_id)
        }
    }
}

async fn route<S: ConversationReader + ApiKeyStore + SendStore>(
    store: &S,
    req: &Request,
    now: i64,
) -> Result<Value, ReadError> {
    let params = req.path_parameters_ref();
    let path = req.raw_http_path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().as_str(), segments.as_slice()) {
        ("GET", ["v1", "conversations", pnid, customer]) => {
            let pnid = params
                .and_then(|p| p.first("phone_number_id"))
                .unwrap_or(pnid);
            let customer = params.and_then(|p| p.first("customer")).unwrap_or(customer);
            conversation(store, req, pnid, customer, now).await
        }
        ("GET", ["v1", "messages", id]) => {
            let id = params.and_then(|p| p.first("id")).unwrap_or(id);
            message(store, req, id).await
        }
        _ => Err(ReadError::NotFound),
    }
}

/// `GET /v1/messages/{id}`: the send's state, wamid, status history and error
/// ([`wa_domain::outbound::SendRecord::view`]).
async fn message<S: ApiKeyStore + SendStore>(
    store: &S,
    req: &Request,
    id: &str,
) -> Result<Value, ReadError> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let scope = authenticate(store, auth).await?;
    let id = SendId::parse(id).ok_or(ReadError::NoSuchMessage)?;
    let send = store
        .get_send(&id)
        .await?
        .filter(|s| scope.allows(&s.phone_number_id))
        .ok_or(ReadError::NoSuchMessage)?;
    Ok(send.view())
}

async fn conversation<S: ConversationReader + ApiKeyStore>(
    store: &S,
    req: &Request,
    pnid: &str,
    customer: &str,
    now: i64,
) -> Result<Value, ReadError> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    authorize(store, auth, pnid).await?;
    if pnid.is_empty() || !pnid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ReadError::BadRequest(
            "phone_number_id",
            "phone_number_id must be digits",
        ));
    }
    let asked = CustomerKey::parse_client(customer).ok_or(ReadError::BadRequest(
        "customer",
        "customer must be a BSUID or a phone number",
    ))?;
    let query = req.query_string_parameters_ref();
    let limit = match query.and_then(|q| q.first("limit")) {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or(ReadError::BadRequest(
                "limit",
                "limit must be between 1 and 100",
            ))?,
    };
    let cursor = query.and_then(|q| q.first("cursor"));

    let key = store.lookup_customer(pnid, &asked).await?;
    let window = store.window(pnid, &key).await?;
    let page = store
        .history(pnid, &key, limit, cursor)
        .await
        .map_err(|e| match e {
            StoreError::Corrupt(_) if cursor.is_some() => {
                ReadError::BadRequest("cursor", "cursor is invalid or expired")
            }
            other => ReadError::Store(other),
        })?;

    let (user_id, wa_id) = match (&window, &key) {
        (Some((_, who)), _) => (who.user_id.clone(), who.wa_id.clone()),
        (None, CustomerKey::Bsuid(u)) => (Some(u.clone()), None),
        (None, CustomerKey::Phone(p)) => (None, Some(p.clone())),
    };
    let w = window.map(|(w, _)| w).unwrap_or_default();
    let state = w.state(now);
    Ok(json!({
        "phone_number_id": pnid,
        "customer": {"user_id": user_id, "wa_id": wa_id},
        "window": {
            "open": state.open,
            "expires_at": state.expires_at.map(rfc3339),
            "kind": state.kind,
            "customer_service_expires_at": w.customer_service_until.map(rfc3339),
            "free_entry_point_expires_at": w.free_entry_point_until.map(rfc3339),
            "last_inbound_at": w.last_inbound_at.map(rfc3339),
        },
        "messages": page.items.iter().map(message_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    }))
}

fn message_json(item: &HistoryItem) -> Value {
    let m = &item.message;
    let content: Value = serde_json::from_str(&m.raw).unwrap_or(Value::Null);
    let mut v = json!({
        "id": m.id,
        "wamid": m.wamid,
        "direction": m.direction.as_str(),
        "type": m.message_type,
        "timestamp": rfc3339(m.timestamp),
        "message": content,
    });
    if let Some(d) = &item.delivery {
        v["status"] = json!(d.current().map(|s| s.as_str()));
        v["statuses"] = d
            .history
            .entries()
            .iter()
            .map(|(s, t)| json!({"status": s.as_str(), "timestamp": rfc3339(*t)}))
            .collect();
        v["error"] = match &d.error {
            Some((code, message)) => json!({"code": code, "message": message}),
            None => Value::Null,
        };
    }
    v
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut res = Response::new(Body::Text(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_domain::auth::hash_key;
    use wa_domain::customer::CustomerRef;
    use wa_domain::ports::{Direction, InboundStore, KeyScope, MessageRecord};
    use wa_domain::testing::InMemoryStore;
    use wa_domain::window::WindowUpdate;

    const PNID: &str = "106540352242922";
    const T0: i64 = 1_795_420_800;

    async fn seeded() -> InMemoryStore {
        let store = InMemoryStore::default();
        store
            .put_key(
                &hash_key("test-api-key"),
                &KeyScope::Numbers(vec![PNID.into()]),
                "t",
            )
            .await
            .unwrap();
        let who = CustomerRef::new(Some("US.13491208655302741918"), Some("16505551234")).unwrap();
        let key = store.resolve_customer(PNID, &who).await.unwrap();
        for (i, ts) in [T0 - 100, T0, T0 - 50].into_iter().enumerate() {
            let m = MessageRecord {
                id: format!("wamid.{i}"),
                wamid: format!("wamid.{i}"),
                phone_number_id: PNID.into(),
                customer: key.clone(),
                who: who.clone(),
                direction: Direction::Inbound,
                message_type: "text".into(),
                timestamp: ts,
                raw: format!(r#"{{"type":"text","text":{{"body":"m{i}"}}}}"#),
                expires_at: ts + 86_400 * 90,
            };
            store.record_message(&m).await.unwrap();
            store
                .advance_window(
                    PNID,
                    &key,
                    &who,
                    &WindowUpdate::for_message(ts, false),
                    Some("Sheena"),
                )
                .await
                .unwrap();
        }
        store
    }

    async fn get(store: &InMemoryStore, fixture: &str, now: i64) -> (u16, Value) {
        let req = lambda_http::request::from_str(fixture).expect("API Gateway v2 event");
        let res = handle(store, &req, now).await;
        let body = match res.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            other => panic!("unexpected body {other:?}"),
        };
        (res.status().as_u16(), body)
    }

    #[tokio::test]
    async fn conversation_by_phone_shows_the_window_and_history_newest_first() {
        let store = seeded().await;
        let (status, body) = get(
            &store,
            include_str!("../../../events/read-api/conversation.json"),
            T0 + 3600,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            body["customer"],
            json!({"user_id": "US.13491208655302741918", "wa_id": "16505551234"})
        );
        assert_eq!(body["window"]["open"], true);
        assert_eq!(body["window"]["kind"], "customer_service");
        assert_eq!(body["window"]["expires_at"], rfc3339(T0 + 86_400));
        let ids: Vec<&str> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["wamid"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec!["wamid.1", "wamid.2", "wamid.0"]);
        assert_eq!(body["messages"][0]["direction"], "inbound");
        assert_eq!(body["messages"][0]["message"]["text"]["body"], "m1");
        assert_eq!(body["next_cursor"], Value::Null);
    }

    #[tokio::test]
    async fn the_window_reads_closed_after_24_hours() {
        let store = seeded().await;
        let (_, body) = get(
            &store,
            include_str!("../../../events/read-api/conversation.json"),
            T0 + 86_400,
        )
        .await;
        assert_eq!(body["window"]["open"], false);
        assert_eq!(body["window"]["expires_at"], rfc3339(T0 + 86_400));
    }

    #[tokio::test]
    async fn no_key_gets_401_and_another_numbers_key_gets_403() {
        let store = seeded().await;
        let (status, body) = get(
            &store,
            include_str!("../../../events/read-api/conversation-no-key.json"),
            T0,
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, _) = get(
            &store,
            include_str!("../../../events/read-api/conversation-other-number.json"),
            T0,
        )
        .await;
        assert_eq!(status, 403);
    }

    #[tokio::test]
    async fn a_limit_out_of_range_gets_400_naming_the_field() {
        let store = seeded().await;
        let (status, body) = get(
            &store,
            include_str!("../../../events/read-api/conversation-bad-limit.json"),
            T0,
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["field"], "limit");
    }

    #[tokio::test]
    async fn store_failure_gets_500_without_internal_text() {
        let store = seeded().await;
        store.set_failing(true);
        let (status, body) = get(
            &store,
            include_str!("../../../events/read-api/conversation.json"),
            T0,
        )
        .await;
        assert_eq!(status, 500);
        assert_eq!(body["error"]["message"], "internal error");
    }

    async fn with_send(scope: KeyScope) -> (InMemoryStore, SendId) {
        use wa_domain::outbound::{SendKind, SendRecord, SendState};
        use wa_domain::status::DeliveryStatus;
        let store = InMemoryStore::default();
        store
            .put_key(&hash_key("test-api-key"), &scope, "t")
            .await
            .unwrap();
        let id = SendId::parse("vnt.01KAP7X5Z8M3Q9R2T4V6W8Y0AB").unwrap();
        let mut r = SendRecord {
            id: id.clone(),
            phone_number_id: PNID.into(),
            customer: Some(CustomerKey::Phone("16505551234".into())),
            who: CustomerRef::new(None, Some("16505551234")),
            message_type: "text".into(),
            kind: SendKind::Session,
            body: json!({"type": "text", "text": {"body": "secret"}}),
            fallback: None,
            client_callback_data: Some("order-7".into()),
            state: SendState::Pending { not_before_ms: 0 },
            attempts: 1,
            wamid: None,
            error: None,
            statuses: Default::default(),
            pricing: None,
            created_at_ms: T0 * 1000,
            broadcast_id: None,
            broadcast_index: None,
            idempotency: None,
            answer: None,
            expires_at: T0 + 86_400,
            version: 0,
        };
        r.apply_status(
            "wamid.X",
            DeliveryStatus::Delivered,
            T0 + 2,
            None,
            T0 * 1000,
        );
        r.apply_status("wamid.X", DeliveryStatus::Sent, T0 + 1, None, T0 * 1000);
        store.create_send(&r, T0).await.unwrap();
        (store, id)
    }

    #[tokio::test]
    async fn a_send_shows_its_state_wamid_and_history() {
        let (store, id) = with_send(KeyScope::Numbers(vec![PNID.into()])).await;
        let (status, body) = get(
            &store,
            include_str!("../../../events/read-api/message.json"),
            T0,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["wamid"], "wamid.X");
        assert_eq!(body["status"], "delivered");
        assert_eq!(
            body["statuses"],
            json!([{"status": "sent", "timestamp": rfc3339(T0 + 1)},
                   {"status": "delivered", "timestamp": rfc3339(T0 + 2)}])
        );
        assert_eq!(body["error"], Value::Null);
        assert_eq!(body["biz_opaque_callback_data"], "order-7");
        // The body itself is not echoed.
        assert!(!body.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn another_numbers_send_and_an_unknown_id_are_both_404() {
        let (store, _) = with_send(KeyScope::Numbers(vec!["999".into()])).await;
        let (status, body) = get(
            &store,
            include_str!("../../../events/read-api/message.json"),
            T0,
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["message"], "no such message");
        let (store, _) = with_send(KeyScope::AnyNumber).await;
        let event = include_str!("../../../events/read-api/message.json").replace("Y0AB", "Y0AZ");
        let (status, _) = get(&store, &event, T0).await;
        assert_eq!(status, 404);
        let (status, _) = get(
            &store,
            include_str!("../../../events/read-api/message-no-key.json"),
            T0,
        )
        .await;
        assert_eq!(status, 401);
    }
}
