//! A fake AWS Lambda Runtime API (`2018-06-01`), the protocol every Lambda runtime speaks.
//!
//! One [`RuntimeApi`] stands for one function. It listens on `127.0.0.1` (port 0) and queues
//! invocations; every process polling `GET /2018-06-01/runtime/invocation/next` waits until one
//! is queued, and each invocation goes to exactly one poller. The process answers with
//! `POST …/invocation/{id}/response` or `…/{id}/error`, which completes the caller's
//! [`RuntimeApi::invoke`].
//!
//! Besides the shared address ([`RuntimeApi::addr`]), the API can open one listener per
//! process ([`RuntimeApi::attach`]). [`crate::FunctionPool`] uses that to know which process
//! took which invocation, so that when a process exits its invocation fails at once
//! ([`EmulatorError::ProcessExited`]) instead of waiting for the timeout, and to record each
//! process's first poll (its cold start).

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State as Ctx};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::EmulatorError;
use crate::ids;

/// Lambda's limit on a synchronous invocation's response payload (6 MB).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// How many `/next` poll instants are kept for [`RuntimeApi::first_poll_after`].
const MAX_RECORDED_POLLS: usize = 1 << 16;

/// What a function answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    /// The payload posted to `/response` (JSON; a non-JSON payload becomes a JSON string).
    Response(Value),
    /// The payload posted to `/error`, normally `{"errorType": …, "errorMessage": …}`.
    Error(Value),
}

impl Invocation {
    /// The response payload, or `None` for an error.
    pub fn response(&self) -> Option<&Value> {
        match self {
            Invocation::Response(v) => Some(v),
            Invocation::Error(_) => None,
        }
    }

    /// The `errorType` of an error (`None` for a response).
    pub fn error_type(&self) -> Option<&str> {
        match self {
            Invocation::Response(_) => None,
            Invocation::Error(v) => v.get("errorType").and_then(Value::as_str),
        }
    }
}

/// Identifies one listener of a [`RuntimeApi`]; slot 0 is the shared address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub usize);

/// A listener opened by [`RuntimeApi::attach`] for one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The slot, to pass back to [`RuntimeApi::detach`].
    pub slot: SlotId,
    /// The address to give the process as `AWS_LAMBDA_RUNTIME_API`.
    pub addr: SocketAddr,
}

/// A fake Lambda Runtime API for one function; cheap to clone (clones share the queue).
///
/// The listeners stop when the last clone is dropped; pending invocations then fail with
/// [`EmulatorError::ShutDown`].
#[derive(Clone)]
pub struct RuntimeApi {
    shared: Arc<Shared>,
    servers: Arc<Servers>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("function", &self.shared.function)
            .field("addr", &self.servers.addr)
            .finish_non_exhaustive()
    }
}

type Reply = oneshot::Sender<Result<Invocation, EmulatorError>>;

pub(crate) struct Shared {
    function: String,
    function_arn: String,
    state: Mutex<State>,
    /// Woken whenever an invocation is queued or the API closes.
    queued: Notify,
    /// Bumped on every first poll of a slot and every detach (see `wait_for_change`).
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    in_flight: HashMap<String, InFlight>,
    slots: Vec<Slot>,
    polls: VecDeque<Instant>,
    closed: bool,
}

struct Queued {
    id: String,
    payload: Bytes,
    deadline_ms: u64,
    reply: Reply,
}

struct InFlight {
    slot: SlotId,
    reply: Reply,
}

#[derive(Default)]
struct Slot {
    /// Opened by `attach` (slot 0, the shared address, is not).
    attached: bool,
    /// Set by `detach`: the process behind the slot is gone.
    exit: Option<String>,
    first_poll: Option<Instant>,
    /// `/next` requests currently waiting on this slot.
    waiting: usize,
    /// The last `/init/error` payload posted through this slot.
    init_error: Option<Value>,
}

struct Servers {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Mutex<HashMap<SlotId, JoinHandle<()>>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (_, task) in lock(&self.tasks).drain() {
            task.abort();
        }
        self.shared.close();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data inconsistent in a way
    // that matters more than losing the emulator, so poisoning is ignored.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RuntimeApi {
    /// Starts the API for `function_name` on `127.0.0.1` with an OS-chosen port.
    pub async fn start(function_name: &str) -> Result<RuntimeApi, EmulatorError> {
        let (changes, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            function: function_name.to_owned(),
            function_arn: format!(
                "arn:aws:lambda:us-east-1:{}:function:{function_name}",
                crate::ACCOUNT_ID
            ),
            state: Mutex::new(State::default()),
            queued: Notify::new(),
            changes,
        });
        let (slot, addr, task) = shared.open_slot(false).await?;
        let servers = Servers {
            addr,
            shared: shared.clone(),
            tasks: Mutex::new(HashMap::from([(slot, task)])),
        };
        Ok(RuntimeApi {
            shared,
            servers: Arc::new(servers),
        })
    }

    /// The function's name.
    pub fn function_name(&self) -> &str {
        &self.shared.function
    }

    /// The shared address (`host:port`) for `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.servers.addr
    }

    /// Opens a listener for one process, so that its invocations and its first poll can be
    /// told apart from the others'. Call [`RuntimeApi::detach`] when the process exits.
    pub async fn attach(&self) -> Result<Endpoint, EmulatorError> {
        let (slot, addr, task) = self.shared.open_slot(true).await?;
        lock(&self.servers.tasks).insert(slot, task);
        Ok(Endpoint { slot, addr })
    }

    /// Declares the process behind `slot` gone: its in-flight invocation fails with
    /// [`EmulatorError::ProcessExited`] (carrying `status`), its listener closes, and if no
    /// process is left to serve them, queued invocations fail with
    /// [`EmulatorError::NoLiveProcess`].
    pub fn detach(&self, slot: SlotId, status: &str) {
        if let Some(task) = lock(&self.servers.tasks).remove(&slot) {
            task.abort();
        }
        self.shared.detach(slot, status);
    }

    /// Invokes the function synchronously (`RequestResponse`) with a JSON event.
    ///
    /// `timeout` covers the whole call, including waiting for a free process; when it
    /// expires the result is [`EmulatorError::Timeout`] and a late answer is discarded. It is
    /// also what the process sees as its deadline (`Lambda-Runtime-Deadline-Ms`).
    pub async fn invoke(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> Result<Invocation, EmulatorError> {
        let payload = serde_json::to_vec(event).map_err(|source| EmulatorError::Encode {
            function: self.shared.function.clone(),
            source,
        })?;
        self.invoke_bytes(payload.into(), timeout).await
    }

    /// Like [`RuntimeApi::invoke`] with an already serialised payload.
    pub async fn invoke_bytes(
        &self,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Invocation, EmulatorError> {
        let id = ids::uuid();
        let (reply, answer) = oneshot::channel();
        let deadline_ms =
            ids::epoch_millis().saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(0));
        self.shared.enqueue(Queued {
            id: id.clone(),
            payload,
            deadline_ms,
            reply,
        })?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_dropped)) => Err(EmulatorError::ShutDown {
                function: self.shared.function.clone(),
            }),
            Err(_elapsed) => {
                self.shared.abandon(&id);
                Err(EmulatorError::Timeout {
                    function: self.shared.function.clone(),
                    timeout,
                })
            }
        }
    }

    /// The first `/next` poll (by any process, on any listener) at or after `since`: with
    /// `since` taken just before spawning a process, `first_poll_after(since) - since` is its
    /// cold start. Only the most recent 65,536 polls are remembered.
    pub fn first_poll_after(&self, since: Instant) -> Option<Instant> {
        let state = lock(&self.shared.state);
        let i = state.polls.partition_point(|t| *t < since);
        state.polls.get(i).copied()
    }

    /// When the process behind `slot` first polled `/next` (`None` if it has not yet).
    pub fn first_poll(&self, slot: SlotId) -> Option<Instant> {
        lock(&self.shared.state)
            .slots
            .get(slot.0)
            .and_then(|s| s.first_poll)
    }

    /// How many invocations are queued and not yet taken by a process.
    pub fn queued(&self) -> usize {
        lock(&self.shared.state).queue.len()
    }

    /// How many invocations a process has taken and not yet answered.
    pub fn in_flight(&self) -> usize {
        lock(&self.shared.state).in_flight.len()
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

/// What a slot looks like to the process pool.
pub(crate) struct SlotStatus {
    pub first_poll: Option<Instant>,
    pub exit: Option<String>,
}

impl Shared {
    async fn open_slot(
        self: &Arc<Self>,
        attached: bool,
    ) -> Result<(SlotId, SocketAddr, JoinHandle<()>), EmulatorError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(EmulatorError::Bind)?;
        let addr = listener.local_addr().map_err(EmulatorError::Bind)?;
        let slot = {
            let mut state = lock(&self.state);
            state.slots.push(Slot {
                attached,
                ..Slot::default()
            });
            SlotId(state.slots.len() - 1)
        };
        let router = router(SlotCtx {
            shared: self.clone(),
            slot,
        });
        let function = self.function.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%function, ?error, "fake Runtime API listener failed");
            }
        });
        Ok((slot, addr, task))
    }

    pub(crate) fn function(&self) -> &str {
        &self.function
    }

    pub(crate) fn slot_status(&self, slot: SlotId) -> SlotStatus {
        let state = lock(&self.state);
        let s = state.slots.get(slot.0);
        SlotStatus {
            first_poll: s.and_then(|s| s.first_poll),
            exit: s.and_then(|s| s.exit.clone()),
        }
    }

    /// A receiver that changes whenever a slot first polls or is detached.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn enqueue(&self, queued: Queued) -> Result<(), EmulatorError> {
        {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(EmulatorError::ShutDown {
                    function: self.function.clone(),
                });
            }
            if let Some(last_exit) = state.nobody_left() {
                return Err(EmulatorError::NoLiveProcess {
                    function: self.function.clone(),
                    last_exit,
                });
            }
            state.queue.push_back(queued);
        }
        self.queued.notify_waiters();
        Ok(())
    }

    /// The caller gave up on invocation `id` (timeout): drop it from the queue; if a process
    /// already has it, its late answer will be accepted and discarded.
    fn abandon(&self, id: &str) {
        lock(&self.state).queue.retain(|q| q.id != id);
    }

    fn detach(&self, slot: SlotId, status: &str) {
        let mut failed = Vec::new();
        let mut orphaned = Vec::new();
        {
            let mut state = lock(&self.state);
            let Some(s) = state.slots.get_mut(slot.0) else {
                return;
            };
            let status = match s.init_error.as_ref() {
                Some(e) => format!("{status}; it reported an init error: {e}"),
                None => status.to_owned(),
            };
            s.exit = Some(status.clone());
            let ids: Vec<String> = state
                .in_flight
                .iter()
                .filter(|(_, f)| f.slot == slot)
                .map(|(id, _)| id.clone())
                .collect();
            for id in ids {
                if let Some(f) = state.in_flight.remove(&id) {
                    failed.push((id, f.reply, status.clone()));
                }
            }
            if let Some(last_exit) = state.nobody_left() {
                orphaned = state
                    .queue
                    .drain(..)
                    .map(|q| (q.reply, last_exit.clone()))
                    .collect();
            }
        }
        for (request_id, reply, status) in failed {
            let _ = reply.send(Err(EmulatorError::ProcessExited {
                function: self.function.clone(),
                request_id,
                status,
            }));
        }
        for (reply, last_exit) in orphaned {
            let _ = reply.send(Err(EmulatorError::NoLiveProcess {
                function: self.function.clone(),
                last_exit,
            }));
        }
        self.bump();
    }

    fn close(&self) {
        let (queued, in_flight) = {
            let mut state = lock(&self.state);
            state.closed = true;
            let queued: Vec<Reply> = state.queue.drain(..).map(|q| q.reply).collect();
            let in_flight: Vec<Reply> = state.in_flight.drain().map(|(_, f)| f.reply).collect();
            (queued, in_flight)
        };
        for reply in queued.into_iter().chain(in_flight) {
            let _ = reply.send(Err(EmulatorError::ShutDown {
                function: self.function.clone(),
            }));
        }
        self.queued.notify_waiters();
    }

    fn record_poll(&self, slot: SlotId) {
        let first = {
            let mut state = lock(&self.state);
            let now = Instant::now();
            if state.polls.len() >= MAX_RECORDED_POLLS {
                state.polls.pop_front();
            }
            state.polls.push_back(now);
            match state.slots.get_mut(slot.0) {
                Some(s) if s.first_poll.is_none() => {
                    s.first_poll = Some(now);
                    true
                }
                _ => false,
            }
        };
        if first {
            self.bump();
        }
    }

    fn take_next(&self, slot: SlotId) -> Take {
        let mut state = lock(&self.state);
        if state.closed {
            return Take::Closed;
        }
        if state.slots.get(slot.0).is_none_or(|s| s.exit.is_some()) {
            return Take::Closed;
        }
        while let Some(q) = state.queue.pop_front() {
            if q.reply.is_closed() {
                continue; // the caller has gone
            }
            state.in_flight.insert(
                q.id.clone(),
                InFlight {
                    slot,
                    reply: q.reply,
                },
            );
            return Take::Event {
                id: q.id,
                payload: q.payload,
                deadline_ms: q.deadline_ms,
            };
        }
        Take::Empty
    }

    fn complete(&self, id: &str, outcome: Invocation) -> bool {
        let f = lock(&self.state).in_flight.remove(id);
        match f {
            Some(f) => {
                let _ = f.reply.send(Ok(outcome));
                true
            }
            None => false,
        }
    }

    fn set_waiting(&self, slot: SlotId, delta: isize) {
        if let Some(s) = lock(&self.state).slots.get_mut(slot.0) {
            s.waiting = s.waiting.saturating_add_signed(delta);
        }
    }
}

impl State {
    /// `Some(last exit)` when processes were attached, all of them have exited, and nobody
    /// is polling the shared address: an invocation could only time out.
    fn nobody_left(&self) -> Option<String> {
        let mut attached = self.slots.iter().filter(|s| s.attached).peekable();
        attached.peek()?;
        let mut last_exit = None;
        for s in attached {
            match &s.exit {
                None => return None,
                Some(e) => last_exit = Some(e.clone()),
            }
        }
        if self.slots.iter().any(|s| !s.attached && s.waiting > 0) {
            return None;
        }
        last_exit
    }
}

enum Take {
    Event {
        id: String,
        payload: Bytes,
        deadline_ms: u64,
    },
    Empty,
    Closed,
}

#[derive(Clone)]
struct SlotCtx {
    shared: Arc<Shared>,
    slot: SlotId,
}

fn router(ctx: SlotCtx) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(|| async { runtime_error(StatusCode::NOT_FOUND, "NotFound", "no such route") })
        // Responses over Lambda's limit are refused below with Lambda's own error, so the
        // transport accepts somewhat more.
        .layer(DefaultBodyLimit::max(MAX_RESPONSE_BYTES * 2))
        .with_state(ctx)
}

/// Decrements the slot's waiting count when a `/next` request ends, however it ends.
struct Waiting<'a>(&'a SlotCtx);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.shared.set_waiting(self.0.slot, -1);
    }
}

async fn next(Ctx(ctx): Ctx<SlotCtx>) -> Response {
    ctx.shared.record_poll(ctx.slot);
    ctx.shared.set_waiting(ctx.slot, 1);
    let _waiting = Waiting(&ctx);
    loop {
        let mut notified = pin!(ctx.shared.queued.notified());
        notified.as_mut().enable();
        match ctx.shared.take_next(ctx.slot) {
            Take::Event {
                id,
                payload,
                deadline_ms,
            } => return event_response(&ctx.shared, id, payload, deadline_ms),
            Take::Closed => {
                return runtime_error(
                    StatusCode::GONE,
                    "Runtime.Closed",
                    "the fake Runtime API is closed for this process",
                );
            }
            Take::Empty => notified.await,
        }
    }
}

fn event_response(shared: &Shared, id: String, payload: Bytes, deadline_ms: u64) -> Response {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("content-type", "application/json");
    set("lambda-runtime-aws-request-id", &id);
    set("lambda-runtime-deadline-ms", &deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &shared.function_arn);
    set("lambda-runtime-trace-id", &ids::trace_id());
    (StatusCode::OK, headers, payload).into_response()
}

async fn response(Ctx(ctx): Ctx<SlotCtx>, Path(id): Path<String>, body: Bytes) -> Response {
    if body.len() > MAX_RESPONSE_BYTES {
        let message = format!(
            "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            body.len()
        );
        let error = json!({"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message});
        ctx.shared.complete(&id, Invocation::Error(error));
        return runtime_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &message,
        );
    }
    let payload = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    accepted(&ctx, &id, Invocation::Response(payload))
}

async fn error(
    Ctx(ctx): Ctx<SlotCtx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error = error_payload(&headers, &body);
    accepted(&ctx, &id, Invocation::Error(error))
}

async fn init_error(Ctx(ctx): Ctx<SlotCtx>, headers: HeaderMap, body: Bytes) -> Response {
    let error = error_payload(&headers, &body);
    tracing::warn!(function = %ctx.shared.function, %error, "function reported an init error");
    if let Some(s) = lock(&ctx.shared.state).slots.get_mut(ctx.slot.0) {
        s.init_error = Some(error);
    }
    status_ok()
}

/// The error document a runtime posted, or one built from its error-type header.
fn error_payload(headers: &HeaderMap, body: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let error_type = headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("Unhandled");
            json!({"errorType": error_type, "errorMessage": String::from_utf8_lossy(body)})
        }
    }
}

fn accepted(ctx: &SlotCtx, id: &str, outcome: Invocation) -> Response {
    if ctx.shared.complete(id, outcome) {
        return status_ok();
    }
    // An id that was never dispatched, or already answered (or failed when its process was
    // detached). A late answer to a timed-out invocation is not here: its entry stays until
    // it arrives and is accepted and discarded. The real API answers 400 for unknown ids.
    runtime_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "unknown or expired request id",
    )
}

fn status_ok() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}
