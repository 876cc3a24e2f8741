//! A small API Gateway (HTTP API, payload format 2.0) on loopback in front of functions
//! running behind wa-emulator's fake Runtime API, for whole-binary tests that need real HTTP:
//! a sandbox Graph API posting status webhooks to `POST /webhook`, or a client calling the
//! send and read routes.
//!
//! Each request is matched against the routes, turned into the event API Gateway would send
//! (`wa_emulator::apigw::request_event`), handed to the route's function, and its answer
//! turned back into HTTP. No route → 404; a failed or invalid answer → 500; too slow → 504,
//! as API Gateway answers. The local stack has the full version (`functions/local-stack`);
//! this one is kept minimal and lives here because that crate is a binary.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wa_emulator::apigw::{self, EventOptions, HttpRequest, RouteTable};
use wa_emulator::{Invocation, RuntimeApi};

/// A running gateway; dropping it stops serving.
pub struct TestGateway {
    url: String,
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// Serves `routes` (route key, function) on `127.0.0.1` on a free port. Panics with the
    /// reason when a route key does not parse or the port cannot be bound: a test helper.
    pub async fn start(routes: &[(&str, &RuntimeApi)]) -> TestGateway {
        let mut table = RouteTable::new();
        for (key, function) in routes {
            if let Err(e) = table.add(key, (*function).clone()) {
                panic!("route {key}: {e}");
            }
        }
        let listener = match tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await {
            Ok(l) => l,
            Err(e) => panic!("cannot bind a loopback port for the test gateway: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("test gateway has no local address: {e}"),
        };
        let cancel = CancellationToken::new();
        let app = Router::new().fallback(forward).with_state(Arc::new(table));
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                eprintln!("test gateway stopped: {e}");
            }
        });
        TestGateway {
            url: format!("http://{addr}"),
            addr,
            cancel,
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn forward(State(routes): State<Arc<RouteTable<RuntimeApi>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(route) = routes.find(&parts.method, parts.uri.path()) else {
        return into_axum(apigw::not_found());
    };
    let Ok(body) = axum::body::to_bytes(body, apigw::MAX_REQUEST_BODY_BYTES).await else {
        return into_axum(apigw::payload_too_large());
    };
    let event = apigw::request_event(
        &HttpRequest {
            method: &parts.method,
            path: parts.uri.path(),
            raw_query: parts.uri.query().unwrap_or_default(),
            headers: &parts.headers,
            body: &body,
        },
        route.route_key,
        &EventOptions::default(),
    );
    let answer = route
        .target
        .invoke(&event, apigw::INTEGRATION_TIMEOUT)
        .await;
    let response = match answer {
        Ok(Invocation::Response(payload)) => apigw::response_from_payload(&payload)
            .unwrap_or_else(|_| apigw::internal_server_error()),
        Ok(Invocation::Error(_)) => apigw::internal_server_error(),
        Err(wa_emulator::EmulatorError::Timeout { .. }) => apigw::gateway_timeout(),
        Err(_) => apigw::internal_server_error(),
    };
    into_axum(response)
}

fn into_axum(response: axum::http::Response<Vec<u8>>) -> Response {
    response.map(Body::from)
}
