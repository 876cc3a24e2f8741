//! API Gateway HTTP API (payload format 2.0) in front of Lambda functions: routes, request
//! events, and responses.
//!
//! - [`RouteTable`] matches `METHOD /path/{param}` route keys like an HTTP API (literal
//!   segments beat `{param}` segments; a method beats `ANY`; `$default` catches the rest).
//! - [`request_event`] builds the event a function receives, as API Gateway does: lower-case
//!   headers with repeated ones comma-joined, `Cookie` moved to `cookies`, decoded
//!   `queryStringParameters` with repeated keys comma-joined, decoded `pathParameters`,
//!   `requestContext`, and a base64 body when it is not UTF-8 (or when forced).
//! - [`response_from_payload`] turns the function's answer into an HTTP response: a
//!   `{"statusCode", "headers", "multiValueHeaders", "cookies", "body", "isBase64Encoded"}`
//!   object, or anything else as a 200 JSON body.
//! - [`not_found`], [`internal_server_error`], [`gateway_timeout`] and
//!   [`payload_too_large`] are API Gateway's own answers.
//!
//! Not modelled: `{proxy+}` greedy parameters, authorizers, stage variables, CORS.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::{CONTENT_TYPE, COOKIE, HeaderName, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::ids;

/// API Gateway HTTP API's limit on a request body (10 MB).
pub const MAX_REQUEST_BODY_BYTES: usize = 10 * 1024 * 1024;

/// HTTP API's integration timeout (30 s).
pub const INTEGRATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A route key that cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid route key {route_key:?}: {reason}")]
pub struct RouteKeyError {
    /// The route key.
    pub route_key: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed route key: `$default`, or a method (or `ANY`) and a path template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteKey {
    key: String,
    method: Option<Method>,
    segments: Option<Vec<Segment>>,
}

impl RouteKey {
    /// Parses `"GET /v1/conversations/{phone_number_id}/{customer}"`, `"ANY /x"` or
    /// `"$default"`.
    pub fn parse(route_key: &str) -> Result<RouteKey, RouteKeyError> {
        let err = |reason| RouteKeyError {
            route_key: route_key.to_owned(),
            reason,
        };
        if route_key == "$default" {
            return Ok(RouteKey {
                key: route_key.to_owned(),
                method: None,
                segments: None,
            });
        }
        let (method, path) = route_key
            .split_once(' ')
            .ok_or_else(|| err("expected `METHOD /path`"))?;
        let method = match method {
            "ANY" => None,
            m => Some(Method::from_bytes(m.as_bytes()).map_err(|_| err("bad method"))?),
        };
        let path = path
            .strip_prefix('/')
            .ok_or_else(|| err("the path must start with /"))?;
        let mut segments = Vec::new();
        if !path.is_empty() {
            for s in path.split('/') {
                if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if name.is_empty() || name.contains(['{', '}', '+']) {
                        return Err(err("only simple {name} parameters are supported"));
                    }
                    segments.push(Segment::Param(name.to_owned()));
                } else if s.contains(['{', '}']) {
                    return Err(err("a parameter must be a whole segment"));
                } else {
                    segments.push(Segment::Literal(s.to_owned()));
                }
            }
        }
        Ok(RouteKey {
            key: route_key.to_owned(),
            method,
            segments: Some(segments),
        })
    }

    /// The route key as written.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The decoded path parameters if `method` and `path` (still percent-encoded) match this
    /// route, `None` otherwise. `$default` matches everything, with no parameters.
    pub fn matches(&self, method: &Method, path: &str) -> Option<Vec<(String, String)>> {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return None;
        }
        let Some(segments) = &self.segments else {
            return Some(Vec::new());
        };
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        if parts.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in segments.iter().zip(parts) {
            match segment {
                Segment::Literal(l) if *l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(name) => params.push((name.clone(), percent_decode(part, false))),
            }
        }
        Some(params)
    }

    /// Sort key: routes with earlier literal segments, then with a method, are preferred.
    fn specificity(&self) -> (Vec<bool>, bool, bool) {
        let literal = self
            .segments
            .as_ref()
            .map(|s| s.iter().map(|s| matches!(s, Segment::Literal(_))).collect())
            .unwrap_or_default();
        (literal, self.method.is_some(), self.segments.is_some())
    }
}

/// A route that matched a request.
#[derive(Debug)]
pub struct RouteMatch<'a, T> {
    /// The matched route key, for the event's `routeKey`.
    pub route_key: &'a str,
    /// What the route points at (for instance a function name).
    pub target: &'a T,
    /// The decoded path parameters.
    pub path_parameters: Vec<(String, String)>,
}

/// Routes of an HTTP API, each pointing at a `T`.
#[derive(Clone, Debug)]
pub struct RouteTable<T> {
    routes: Vec<(RouteKey, T)>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable { routes: Vec::new() }
    }
}

impl<T> RouteTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        RouteTable::default()
    }

    /// Adds a route (see [`RouteKey::parse`]).
    pub fn add(&mut self, route_key: &str, target: T) -> Result<(), RouteKeyError> {
        self.routes.push((RouteKey::parse(route_key)?, target));
        Ok(())
    }

    /// The routes, in the order they were added.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &T)> {
        self.routes.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// The most specific route matching `method` and `path` (percent-encoded, no query).
    pub fn find(&self, method: &Method, path: &str) -> Option<RouteMatch<'_, T>> {
        self.routes
            .iter()
            .filter_map(|(key, target)| {
                key.matches(method, path)
                    .map(|params| (key.specificity(), key, target, params))
            })
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, key, target, path_parameters)| RouteMatch {
                route_key: key.as_str(),
                target,
                path_parameters,
            })
    }
}

/// An HTTP request as API Gateway received it.
#[derive(Clone, Copy, Debug)]
pub struct HttpRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path, still percent-encoded, without the query.
    pub path: &'a str,
    /// The query string without `?` (empty if none).
    pub raw_query: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body bytes.
    pub body: &'a [u8],
}

/// The parts of a request event that do not come from the request itself.
#[derive(Clone, Debug)]
pub struct EventOptions {
    /// Base64-encode the body even when it is UTF-8 (to test that path of a handler).
    pub force_base64: bool,
    /// `requestContext.http.sourceIp` (and `x-forwarded-for` when the request has none).
    pub source_ip: String,
    /// `requestContext.stage`.
    pub stage: String,
    /// `requestContext.apiId`.
    pub api_id: String,
    /// `requestContext.requestId`; a fresh id when `None`.
    pub request_id: Option<String>,
    /// `requestContext.time` / `timeEpoch`; now when `None`.
    pub time: Option<SystemTime>,
}

impl Default for EventOptions {
    fn default() -> Self {
        EventOptions {
            force_base64: false,
            source_ip: "127.0.0.1".to_owned(),
            stage: "$default".to_owned(),
            api_id: "local".to_owned(),
            request_id: None,
            time: None,
        }
    }
}

/// A fresh API Gateway request id.
pub fn new_request_id() -> String {
    ids::uuid()
}

/// The payload format 2.0 event API Gateway would send for `req` on route `route_key`
/// (path parameters are taken from the route key's template; `$default` has none).
pub fn request_event(req: &HttpRequest<'_>, route_key: &str, opts: &EventOptions) -> Value {
    let path_parameters = RouteKey::parse(route_key)
        .ok()
        .and_then(|k| k.matches(req.method, req.path))
        .unwrap_or_default();

    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in req.headers.keys() {
        let values = req.headers.get_all(name).iter();
        if *name == COOKIE {
            for v in values {
                cookies.extend(
                    String::from_utf8_lossy(v.as_bytes())
                        .split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(|c| Value::String(c.to_owned())),
                );
            }
            continue;
        }
        let joined = values
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        headers.insert(name.as_str().to_owned(), Value::String(joined));
    }
    let user_agent = header_str(&headers, "user-agent").to_owned();
    let host = header_str(&headers, "host").to_owned();
    headers
        .entry("x-forwarded-for")
        .or_insert_with(|| Value::String(opts.source_ip.clone()));
    headers
        .entry("x-forwarded-proto")
        .or_insert_with(|| Value::String("http".to_owned()));
    if let Some(port) = host.rsplit_once(':').map(|(_, p)| p) {
        headers
            .entry("x-forwarded-port")
            .or_insert_with(|| Value::String(port.to_owned()));
    }
    headers
        .entry("x-amzn-trace-id")
        .or_insert_with(|| Value::String(ids::trace_id().replace(";Sampled=0", "")));

    let time = opts.time.unwrap_or_else(SystemTime::now);
    let epoch_ms = time
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let domain_name = match host.rsplit_once(':') {
        Some((h, _)) => h.to_owned(),
        None if host.is_empty() => "localhost".to_owned(),
        None => host.clone(),
    };
    let domain_prefix = domain_name.split('.').next().unwrap_or_default().to_owned();

    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": req.path,
        "rawQueryString": req.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": crate::ACCOUNT_ID,
            "apiId": opts.api_id,
            "domainName": domain_name,
            "domainPrefix": domain_prefix,
            "http": {
                "method": req.method.as_str(),
                "path": req.path,
                "protocol": "HTTP/1.1",
                "sourceIp": opts.source_ip,
                "userAgent": user_agent,
            },
            "requestId": opts.request_id.clone().unwrap_or_else(new_request_id),
            "routeKey": route_key,
            "stage": opts.stage,
            "time": format_clf_time(epoch_ms),
            "timeEpoch": epoch_ms,
        },
        "isBase64Encoded": false,
    });
    if let Value::Object(e) = &mut event {
        if !cookies.is_empty() {
            e.insert("cookies".to_owned(), Value::Array(cookies));
        }
        let query = query_parameters(req.raw_query);
        if !query.is_empty() {
            e.insert("queryStringParameters".to_owned(), Value::Object(query));
        }
        if !path_parameters.is_empty() {
            let params = path_parameters
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            e.insert("pathParameters".to_owned(), Value::Object(params));
        }
        if !req.body.is_empty() {
            let (body, base64) = match std::str::from_utf8(req.body) {
                Ok(text) if !opts.force_base64 => (text.to_owned(), false),
                _ => (BASE64.encode(req.body), true),
            };
            e.insert("body".to_owned(), Value::String(body));
            e.insert("isBase64Encoded".to_owned(), Value::Bool(base64));
        }
    }
    event
}

fn header_str<'a>(headers: &'a Map<String, Value>, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `queryStringParameters`: keys and values decoded (`%XX`, `+` as space), repeated keys
/// comma-joined in order.
fn query_parameters(raw_query: &str) -> Map<String, Value> {
    let mut params = Map::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k, true), percent_decode(v, true));
        match params.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                params.insert(k, Value::String(v));
            }
        }
    }
    params
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`); invalid escapes stay
/// as they are, invalid UTF-8 is replaced.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `12/Mar/2020:19:03:58 +0000`, the format of `requestContext.time`.
fn format_clf_time(epoch_ms: u64) -> String {
    let secs = i64::try_from(epoch_ms / 1000).unwrap_or(0);
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    t.format(&format).unwrap_or_default()
}

/// Why a function's answer is not a valid HTTP API response (API Gateway answers 500).
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// `statusCode` is not an integer in 100..=599.
    #[error("statusCode {0} is not a valid HTTP status")]
    Status(Value),
    /// A header name or value is not valid HTTP.
    #[error("invalid header {name:?}")]
    Header {
        /// The header's name.
        name: String,
    },
    /// A field has the wrong JSON type.
    #[error("field {0} has the wrong type")]
    Field(&'static str),
    /// `isBase64Encoded` is true but `body` is not base64.
    #[error("body is not valid base64")]
    Base64(#[source] base64::DecodeError),
}

/// Converts a function's answer into the HTTP response API Gateway would send.
///
/// An object with `statusCode` is a structured response; anything else (another object, an
/// array, a string, a number, `null`) is sent as a 200 `application/json` body, as API
/// Gateway does for payload format 2.0.
pub fn response_from_payload(payload: &Value) -> Result<http::Response<Vec<u8>>, ResponseError> {
    let obj = match payload {
        Value::Object(o) if o.contains_key("statusCode") => o,
        other => {
            let body = serde_json::to_vec(other).unwrap_or_default();
            return Ok(json_response(StatusCode::OK, body));
        }
    };
    let status = obj
        .get("statusCode")
        .and_then(|s| match s {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .and_then(|n| u16::try_from(n).ok())
        .and_then(|n| StatusCode::from_u16(n).ok())
        .filter(|s| (100..=599).contains(&s.as_u16()))
        .ok_or_else(|| ResponseError::Status(obj.get("statusCode").cloned().unwrap_or_default()))?;

    let mut headers = HeaderMap::new();
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (name, value) in h {
                let value = scalar_string(value).ok_or(ResponseError::Field("headers"))?;
                headers.append(header_name(name)?, header_value(name, &value)?);
            }
        }
        Some(_) => return Err(ResponseError::Field("headers")),
    }
    match obj.get("multiValueHeaders") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (name, values) in h {
                let Value::Array(values) = values else {
                    return Err(ResponseError::Field("multiValueHeaders"));
                };
                let name_h = header_name(name)?;
                for value in values {
                    let value =
                        scalar_string(value).ok_or(ResponseError::Field("multiValueHeaders"))?;
                    let value = header_value(name, &value)?;
                    // lambda_http repeats single headers here; do not send them twice.
                    if !headers.get_all(&name_h).iter().any(|v| *v == value) {
                        headers.append(name_h.clone(), value);
                    }
                }
            }
        }
        Some(_) => return Err(ResponseError::Field("multiValueHeaders")),
    }
    match obj.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for c in cookies {
                let c = c.as_str().ok_or(ResponseError::Field("cookies"))?;
                headers.append(SET_COOKIE, header_value("set-cookie", c)?);
            }
        }
        Some(_) => return Err(ResponseError::Field("cookies")),
    }
    let base64 = match obj.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ResponseError::Field("isBase64Encoded")),
    };
    let body = match obj.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if base64 => BASE64.decode(s).map_err(ResponseError::Base64)?,
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(_) => return Err(ResponseError::Field("body")),
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn header_name(name: &str) -> Result<HeaderName, ResponseError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| ResponseError::Header {
        name: name.to_owned(),
    })
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, ResponseError> {
    HeaderValue::from_str(value).map_err(|_| ResponseError::Header {
        name: name.to_owned(),
    })
}

fn json_response(status: StatusCode, body: Vec<u8>) -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// One of API Gateway's own answers: `status` with `{"message": message}`.
pub fn gateway_response(status: StatusCode, message: &str) -> http::Response<Vec<u8>> {
    let body = serde_json::to_vec(&json!({ "message": message })).unwrap_or_default();
    json_response(status, body)
}

/// No route matches: 404 `{"message":"Not Found"}`.
pub fn not_found() -> http::Response<Vec<u8>> {
    gateway_response(StatusCode::NOT_FOUND, "Not Found")
}

/// The function failed or answered something invalid: 500
/// `{"message":"Internal Server Error"}`.
pub fn internal_server_error() -> http::Response<Vec<u8>> {
    gateway_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// The function did not answer in time: 504 `{"message":"Endpoint request timed out"}`.
pub fn gateway_timeout() -> http::Response<Vec<u8>> {
    gateway_response(StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out")
}

/// The request body is over [`MAX_REQUEST_BODY_BYTES`]: 413
/// `{"message":"Request Entity Too Large"}`.
pub fn payload_too_large() -> http::Response<Vec<u8>> {
    gateway_response(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
}
