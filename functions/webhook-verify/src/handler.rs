//! Translates the API Gateway request into the domain's handshake check and back.

use lambda_http::{Body, Request, RequestExt, Response};
use secrecy::SecretString;

/// 200 `text/plain` with `hub.challenge` when the handshake is valid, 403 otherwise.
pub fn handle(token: &SecretString, req: &Request) -> Response<Body> {
    let q = req.query_string_parameters_ref();
    let get = |k: &str| q.and_then(|q| q.first(k));
    match wa_domain::handshake::accept(
        get("hub.mode"),
        get("hub.verify_token"),
        get("hub.challenge"),
        token,
    ) {
        Some(challenge) => reply(200, challenge),
        None => {
            tracing::warn!("webhook verification refused");
            reply(403, "Forbidden")
        }
    }
}

fn reply(status: u16, body: &str) -> Response<Body> {
    let mut res = Response::new(Body::Text(body.to_owned()));
    *res.status_mut() = status
        .try_into()
        .unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(
        lambda_http::http::header::CONTENT_TYPE,
        lambda_http::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> SecretString {
        SecretString::from("test-verify-token".to_owned())
    }

    fn run(fixture: &str) -> (u16, String) {
        let req =
            lambda_http::request::from_str(fixture).expect("fixture is an API Gateway v2 event");
        let res = handle(&token(), &req);
        let body = match res.body() {
            Body::Text(t) => t.clone(),
            other => panic!("unexpected body {other:?}"),
        };
        (res.status().as_u16(), body)
    }

    #[test]
    fn subscribe_with_the_right_token_echoes_the_challenge() {
        let (status, body) = run(include_str!(
            "../../../events/webhook-verify/subscribe-ok.json"
        ));
        assert_eq!((status, body.as_str()), (200, "1158201444"));
    }

    #[test]
    fn wrong_token_gets_403() {
        assert_eq!(
            run(include_str!(
                "../../../events/webhook-verify/wrong-token.json"
            ))
            .0,
            403
        );
    }

    #[test]
    fn missing_parameters_get_403() {
        assert_eq!(
            run(include_str!(
                "../../../events/webhook-verify/missing-params.json"
            ))
            .0,
            403
        );
    }

    #[test]
    fn the_reply_is_plain_text() {
        let req = lambda_http::request::from_str(include_str!(
            "../../../events/webhook-verify/subscribe-ok.json"
        ))
        .unwrap();
        let res = handle(&token(), &req);
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    }
}
