//! `GET /openapi.json`: the client API's OpenAPI 3.1 document (`docs/openapi.json`, checked
//! in and embedded at build time), served without authentication so that tools and SDK
//! generators can fetch it from a running stack.

use lambda_http::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use lambda_http::{Body, Request, RequestExt, Response};

/// The document, exactly as checked in.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// Whether the request is `GET /openapi.json`.
pub fn is_route(req: &Request) -> bool {
    req.method().as_str() == "GET" && req.raw_http_path() == "/openapi.json"
}

/// The document as a 200 `application/json` answer.
pub fn response() -> Response<Body> {
    let mut res = Response::new(Body::Text(DOCUMENT.to_owned()));
    *res.status_mut() = StatusCode::OK;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn request(method: &str, path: &str) -> Request {
        lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("https://example.com{path}"))
            .body(Body::Empty)
            .unwrap()
            .with_raw_http_path(path)
    }

    #[test]
    fn only_get_openapi_json_is_the_route() {
        assert!(is_route(&request("GET", "/openapi.json")));
        assert!(!is_route(&request("POST", "/openapi.json")));
        assert!(!is_route(&request("GET", "/v1/openapi.json")));
    }

    #[test]
    fn the_document_is_openapi_3_1_json() {
        let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert!(doc["paths"]["/{version}/{phone_number_id}/messages"]["post"].is_object());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
