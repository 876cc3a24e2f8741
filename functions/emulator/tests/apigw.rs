//! API Gateway HTTP API (payload 2.0) events, responses and routes; pure, no processes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use wa_emulator::apigw::{
    self, EventOptions, HttpRequest, RouteKey, RouteTable, request_event, response_from_payload,
};

const CONVERSATIONS: &str = "GET /v1/conversations/{phone_number_id}/{customer}";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn event(
    method: &Method,
    path: &str,
    query: &str,
    h: &HeaderMap,
    body: &[u8],
    route: &str,
) -> Value {
    let req = HttpRequest {
        method,
        path,
        raw_query: query,
        headers: h,
        body,
    };
    request_event(&req, route, &EventOptions::default())
}

#[test]
fn a_get_event_has_api_gateways_shape() {
    let h = headers(&[
        ("Host", "127.0.0.1:3000"),
        ("User-Agent", "curl/8"),
        ("X-Custom", "a"),
        ("X-Custom", "b"),
        ("Cookie", "a=1; b=2"),
        ("Cookie", "c=3"),
    ]);
    let e = event(
        &Method::GET,
        "/v1/conversations/106540352242922/US.13491208655302741918",
        "limit=50&cursor=abc%3D%3D&tag=x&tag=y&q=hello+world",
        &h,
        b"",
        CONVERSATIONS,
    );
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], CONVERSATIONS);
    assert_eq!(
        e["rawPath"],
        "/v1/conversations/106540352242922/US.13491208655302741918"
    );
    assert_eq!(
        e["rawQueryString"],
        "limit=50&cursor=abc%3D%3D&tag=x&tag=y&q=hello+world"
    );
    assert_eq!(
        e["pathParameters"],
        json!({"phone_number_id": "106540352242922", "customer": "US.13491208655302741918"})
    );
    assert_eq!(
        e["queryStringParameters"],
        json!({"limit": "50", "cursor": "abc==", "tag": "x,y", "q": "hello world"})
    );
    assert_eq!(e["headers"]["x-custom"], "a,b");
    assert_eq!(e["headers"]["user-agent"], "curl/8");
    assert_eq!(e["headers"]["host"], "127.0.0.1:3000");
    assert!(e["headers"].get("cookie").is_none());
    assert_eq!(e["cookies"], json!(["a=1", "b=2", "c=3"]));
    assert!(e.get("body").is_none());
    assert_eq!(e["isBase64Encoded"], false);

    let ctx = &e["requestContext"];
    assert_eq!(ctx["accountId"], "123456789012");
    assert_eq!(ctx["stage"], "$default");
    assert_eq!(ctx["routeKey"], CONVERSATIONS);
    assert_eq!(ctx["domainName"], "127.0.0.1");
    assert_eq!(ctx["http"]["method"], "GET");
    assert_eq!(ctx["http"]["path"], e["rawPath"]);
    assert_eq!(ctx["http"]["protocol"], "HTTP/1.1");
    assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["http"]["userAgent"], "curl/8");
    assert_eq!(ctx["requestId"].as_str().unwrap().len(), 36);
    assert!(ctx["timeEpoch"].as_u64().unwrap() > 1_700_000_000_000);

    // It is what lambda_http deserialises.
    let parsed: ApiGatewayV2httpRequest = serde_json::from_value(e).unwrap();
    assert_eq!(parsed.request_context.http.method, Method::GET);
    assert_eq!(
        parsed.path_parameters.get("customer").map(String::as_str),
        Some("US.13491208655302741918")
    );
    // aws_lambda_events splits API Gateway's comma-joined values again.
    assert_eq!(
        parsed.query_string_parameters.all("tag"),
        Some(vec!["x", "y"])
    );
}

#[test]
fn request_time_uses_api_gateways_format() {
    let req = HttpRequest {
        method: &Method::GET,
        path: "/webhook",
        raw_query: "",
        headers: &HeaderMap::new(),
        body: b"",
    };
    let opts = EventOptions {
        time: Some(UNIX_EPOCH + Duration::from_millis(1_583_348_638_390)),
        request_id: Some("req-1".to_owned()),
        ..EventOptions::default()
    };
    let e = request_event(&req, "GET /webhook", &opts);
    assert_eq!(e["requestContext"]["time"], "04/Mar/2020:19:03:58 +0000");
    assert_eq!(e["requestContext"]["timeEpoch"], 1_583_348_638_390_u64);
    assert_eq!(e["requestContext"]["requestId"], "req-1");
    assert!(e.get("queryStringParameters").is_none());
    assert!(e.get("pathParameters").is_none());
    assert!(e.get("cookies").is_none());
}

#[test]
fn a_utf8_body_is_sent_as_text_byte_for_byte() {
    let body = "{\"name\":\"Jos\\u00e9 @ caf\u{e9} 🎉\"}".as_bytes();
    let e = event(
        &Method::POST,
        "/webhook",
        "",
        &headers(&[("Content-Type", "application/json")]),
        body,
        "POST /webhook",
    );
    assert_eq!(e["isBase64Encoded"], false);
    assert_eq!(e["body"].as_str().unwrap().as_bytes(), body);
}

#[test]
fn a_binary_body_is_base64_encoded() {
    let body = [0xff_u8, 0x00, 0xfe, b'a'];
    let e = event(
        &Method::POST,
        "/webhook",
        "",
        &HeaderMap::new(),
        &body,
        "POST /webhook",
    );
    assert_eq!(e["isBase64Encoded"], true);
    assert_eq!(e["body"], "/wD+YQ==");
}

#[test]
fn base64_can_be_forced_for_a_text_body() {
    let req = HttpRequest {
        method: &Method::POST,
        path: "/webhook",
        raw_query: "",
        headers: &HeaderMap::new(),
        body: b"{\"a\":1}",
    };
    let opts = EventOptions {
        force_base64: true,
        ..EventOptions::default()
    };
    let e = request_event(&req, "POST /webhook", &opts);
    assert_eq!(e["isBase64Encoded"], true);
    assert_eq!(e["body"], "eyJhIjoxfQ==");
}

#[test]
fn a_lambda_http_response_becomes_the_http_response() {
    // What lambda_http serialises for a handler's Response.
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = 201;
    r.headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    r.headers.insert("x-one", HeaderValue::from_static("1"));
    r.multi_value_headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    r.multi_value_headers
        .insert("x-one", HeaderValue::from_static("1"));
    r.body = Some(aws_lambda_events::encodings::Body::Text(
        "{\"id\":\"m1\"}".to_owned(),
    ));
    r.cookies = vec!["session=abc; Path=/".to_owned()];
    let payload = serde_json::to_value(&r).unwrap();

    let resp = response_from_payload(&payload).unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        resp.headers().get_all("content-type").iter().count(),
        1,
        "a header repeated in multiValueHeaders is sent once"
    );
    assert_eq!(resp.headers()["x-one"], "1");
    assert_eq!(resp.headers()["set-cookie"], "session=abc; Path=/");
    assert_eq!(resp.body(), b"{\"id\":\"m1\"}");
}

#[test]
fn multi_value_headers_and_base64_bodies_are_decoded() {
    let payload = json!({
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream", "x-n": 5},
        "multiValueHeaders": {"x-many": ["a", "b"]},
        "body": "/wD+YQ==",
        "isBase64Encoded": true,
    });
    let resp = response_from_payload(&payload).unwrap();
    assert_eq!(resp.headers()["x-n"], "5");
    let many: Vec<_> = resp.headers().get_all("x-many").iter().collect();
    assert_eq!(many, ["a", "b"]);
    assert_eq!(resp.body(), &[0xff, 0x00, 0xfe, b'a']);
}

#[test]
fn a_bare_answer_is_a_200_json_body() {
    for payload in [
        json!({"customer": {"wa_id": "1555"}}),
        json!("hello"),
        json!([1, 2]),
        json!(null),
    ] {
        let resp = response_from_payload(&payload).unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body: Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(body, payload);
    }
}

#[test]
fn an_invalid_answer_is_an_error() {
    for payload in [
        json!({"statusCode": "abc"}),
        json!({"statusCode": 42}),
        json!({"statusCode": 200, "body": "%%%", "isBase64Encoded": true}),
        json!({"statusCode": 200, "headers": ["x"]}),
        json!({"statusCode": 200, "body": {"not": "a string"}}),
        json!({"statusCode": 200, "headers": {"bad name": "x"}}),
    ] {
        assert!(response_from_payload(&payload).is_err(), "{payload}");
    }
}

#[test]
fn gateway_answers_have_api_gateways_bodies() {
    let r = apigw::not_found();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.body(), br#"{"message":"Not Found"}"#);
    let r = apigw::internal_server_error();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body(), br#"{"message":"Internal Server Error"}"#);
    assert_eq!(
        apigw::gateway_timeout().status(),
        StatusCode::GATEWAY_TIMEOUT
    );
    assert_eq!(
        apigw::payload_too_large().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

fn table() -> RouteTable<&'static str> {
    let mut t = RouteTable::new();
    for (key, f) in [
        ("GET /webhook", "webhook-verify"),
        ("POST /webhook", "webhook-receive"),
        (CONVERSATIONS, "read-api"),
        ("GET /v1/messages/{id}", "read-api"),
        ("POST /{version}/{phone_number_id}/messages", "send-api"),
        ("POST /v1/broadcasts", "send-api"),
        ("GET /v1/broadcasts/{id}", "send-api"),
    ] {
        t.add(key, f).unwrap();
    }
    t
}

#[test]
fn routes_match_by_method_and_path() {
    let t = table();
    let m = t.find(&Method::GET, "/webhook").unwrap();
    assert_eq!((*m.target, m.route_key), ("webhook-verify", "GET /webhook"));
    assert_eq!(
        *t.find(&Method::POST, "/webhook").unwrap().target,
        "webhook-receive"
    );
    let m = t
        .find(&Method::GET, "/v1/conversations/1065/15551234567")
        .unwrap();
    assert_eq!(*m.target, "read-api");
    assert_eq!(
        m.path_parameters,
        [
            ("phone_number_id".to_owned(), "1065".to_owned()),
            ("customer".to_owned(), "15551234567".to_owned())
        ]
    );
    let m = t.find(&Method::POST, "/v25.0/1065/messages").unwrap();
    assert_eq!(*m.target, "send-api");
    assert_eq!(
        m.path_parameters[0],
        ("version".to_owned(), "v25.0".to_owned())
    );
}

#[test]
fn unmatched_requests_find_no_route() {
    let t = table();
    assert!(t.find(&Method::DELETE, "/webhook").is_none());
    assert!(t.find(&Method::GET, "/webhook/").is_none());
    assert!(t.find(&Method::GET, "/nope").is_none());
    assert!(t.find(&Method::GET, "/v1/conversations/1065").is_none());
    assert!(t.find(&Method::GET, "/v1/conversations/1065//").is_none());
    assert!(t.find(&Method::GET, "/").is_none());
}

#[test]
fn literal_segments_beat_parameters_and_methods_beat_any() {
    let mut t = RouteTable::new();
    t.add("GET /v1/{thing}/{id}", "param").unwrap();
    t.add("GET /v1/messages/{id}", "literal").unwrap();
    t.add("ANY /v1/messages/{id}", "any").unwrap();
    t.add("$default", "default").unwrap();
    assert_eq!(
        *t.find(&Method::GET, "/v1/messages/1").unwrap().target,
        "literal"
    );
    assert_eq!(
        *t.find(&Method::GET, "/v1/other/1").unwrap().target,
        "param"
    );
    assert_eq!(
        *t.find(&Method::POST, "/v1/messages/1").unwrap().target,
        "any"
    );
    assert_eq!(
        *t.find(&Method::GET, "/elsewhere").unwrap().target,
        "default"
    );
}

#[test]
fn path_parameters_are_decoded() {
    let key = RouteKey::parse("GET /v1/conversations/{phone_number_id}/{customer}").unwrap();
    let params = key
        .matches(&Method::GET, "/v1/conversations/1065/%2B1%20555")
        .unwrap();
    assert_eq!(params[1].1, "+1 555");
}

#[test]
fn bad_route_keys_are_refused() {
    for key in [
        "GET webhook",
        "/webhook",
        "GET /{proxy+}",
        "GET /a{b}",
        "GET /{}",
    ] {
        assert!(RouteKey::parse(key).is_err(), "{key}");
    }
}
