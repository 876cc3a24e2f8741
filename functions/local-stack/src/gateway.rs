//! The HTTP front door: what API Gateway's HTTP API does in AWS, on 127.0.0.1.
//!
//! Every request is matched against the route table, turned into a payload 2.0 event,
//! handed to the route's function through its fake Runtime API, and the function's answer is
//! turned back into the HTTP response. API Gateway's own answers are kept: 404
//! `{"message":"Not Found"}` without a route, 413 over 10 MB, 500
//! `{"message":"Internal Server Error"}` when the function fails, 504 when it is too slow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::HeaderValue;
use wa_emulator::apigw::{self, EventOptions, HttpRequest, RouteTable};
use wa_emulator::{EmulatorError, Invocation, RuntimeApi};

/// Routes to the Runtime APIs of the functions behind them.
pub struct Gateway {
    routes: RouteTable<RuntimeApi>,
}

impl Gateway {
    /// A gateway over `routes`.
    pub fn new(routes: RouteTable<RuntimeApi>) -> Gateway {
        Gateway { routes }
    }

    /// The axum app; serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn router(self) -> Router {
        Router::new().fallback(handle).with_state(Arc::new(self))
    }
}

async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // The path only: the query may carry secrets (hub.verify_token).
    let path = request.uri().path().to_owned();
    let (response, function) = forward(&gateway, peer, request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis();
    tracing::info!(%method, %path, status, ms, function = function.unwrap_or("-"), "request");
    response
}

async fn forward(
    gateway: &Gateway,
    peer: SocketAddr,
    request: Request,
) -> (Response, Option<&str>) {
    let (parts, body) = request.into_parts();
    let Some(route) = gateway.routes.find(&parts.method, parts.uri.path()) else {
        return (into_axum(apigw::not_found()), None);
    };
    let function = route.target.function_name();
    let too_large = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > apigw::MAX_REQUEST_BODY_BYTES);
    if too_large {
        return (into_axum(apigw::payload_too_large()), Some(function));
    }
    let Ok(body) = axum::body::to_bytes(body, apigw::MAX_REQUEST_BODY_BYTES).await else {
        return (into_axum(apigw::payload_too_large()), Some(function));
    };
    let request_id = apigw::new_request_id();
    let event = apigw::request_event(
        &HttpRequest {
            method: &parts.method,
            path: parts.uri.path(),
            raw_query: parts.uri.query().unwrap_or_default(),
            headers: &parts.headers,
            body: &body,
        },
        route.route_key,
        &EventOptions {
            source_ip: peer.ip().to_string(),
            request_id: Some(request_id.clone()),
            ..EventOptions::default()
        },
    );
    let answer = route
        .target
        .invoke(&event, apigw::INTEGRATION_TIMEOUT)
        .await;
    let mut response = match answer {
        Ok(Invocation::Response(payload)) => match apigw::response_from_payload(&payload) {
            Ok(r) => r,
            Err(error) => {
                tracing::warn!(%function, error = %error, "the function's response is not a valid HTTP API response");
                apigw::internal_server_error()
            }
        },
        Ok(Invocation::Error(error)) => {
            let kind = error
                .get("errorType")
                .and_then(|t| t.as_str())
                .unwrap_or("?");
            tracing::warn!(%function, error_type = kind, "the function failed");
            apigw::internal_server_error()
        }
        Err(error @ EmulatorError::Timeout { .. }) => {
            tracing::warn!(%function, error = %error, "the function timed out");
            apigw::gateway_timeout()
        }
        Err(error) => {
            tracing::warn!(%function, error = %error, "the invocation failed");
            apigw::internal_server_error()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", v);
    }
    (into_axum(response), Some(function))
}

fn into_axum(response: http::Response<Vec<u8>>) -> Response {
    response.map(Body::from)
}
