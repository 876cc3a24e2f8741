//! The CLI's client for Ventana's own HTTP API (the deployed one or the local stack's):
//! JSON in and out with the API key as a bearer token, and one error type for what can go
//! wrong. Commands that act through the API (`templates`, `broadcast`) share it.
//!
//! Settings: the base URL from `--api-url` or `VENTANA_URL` (which `make dev` writes to
//! `target/local-stack.env`), the key from `--api-key`, `VENTANA_API_KEY` or
//! `VENTANA_DEV_API_KEY`. The key is never printed or logged.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::env::Env;

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// How many times [`Api::post_idempotent`] sends its request before the last failure counts.
pub const IDEMPOTENT_ATTEMPTS: u32 = 3;
/// The wait before [`Api::post_idempotent`] sends again; doubled each time.
const RESEND_AFTER: Duration = Duration::from_millis(500);

/// Why an API call failed. The texts never contain the key.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Neither `--api-url` nor `VENTANA_URL` is set.
    #[error(
        "no API URL: pass --api-url, or set VENTANA_URL (`make dev` writes it to target/local-stack.env; use --env-file)"
    )]
    NoUrl,
    /// No key among `--api-key`, `VENTANA_API_KEY`, `VENTANA_DEV_API_KEY`.
    #[error("no API key: pass --api-key, or set VENTANA_API_KEY (or VENTANA_DEV_API_KEY)")]
    NoKey,
    /// The API could not be reached (or did not answer in time).
    #[error("cannot reach {url}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The transport's error.
        #[source]
        source: reqwest::Error,
    },
    /// The key was refused (401: unknown, revoked or missing; 403: not allowed for that).
    #[error("the API refused the key (HTTP {status}): {message}")]
    Unauthorised {
        /// 401 or 403.
        status: u16,
        /// The API's explanation.
        message: String,
    },
    /// Any other non-2xx answer.
    #[error("the API answered HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The API's explanation (`error.error_data.details`, `error.message`, or the body).
        message: String,
        /// The body as JSON, when it was JSON.
        body: Option<Value>,
    },
    /// A 2xx answer that is not the JSON expected.
    #[error("the API's answer could not be read")]
    BadAnswer(#[source] serde_json::Error),
}

impl ApiError {
    /// Whether the same request may succeed if sent again: the API was not reached or did not
    /// answer in time, or it answered 429 or 5xx. A refusal (4xx) is the answer.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Unreachable { .. } => true,
            ApiError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// A new `Idempotency-Key`: 128 random bits in hex.
pub fn new_idempotency_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A client for one Ventana API with one key.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key: SecretString,
}

impl Api {
    /// A client for `base_url` (trailing `/` ignored) with `key`.
    pub fn new(base_url: &str, key: SecretString) -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            key,
        }
    }

    /// The client the flags and environment describe: `url` / `key` (the flags) win over
    /// `VENTANA_URL` and `VENTANA_API_KEY` / `VENTANA_DEV_API_KEY`.
    pub fn from_settings(
        env: &Env,
        url: Option<&str>,
        key: Option<&str>,
    ) -> Result<Self, ApiError> {
        let base = url
            .filter(|u| !u.trim().is_empty())
            .or_else(|| env.get("VENTANA_URL"))
            .ok_or(ApiError::NoUrl)?;
        let key = key
            .filter(|k| !k.trim().is_empty())
            .or_else(|| env.get("VENTANA_API_KEY"))
            .or_else(|| env.get("VENTANA_DEV_API_KEY"))
            .ok_or(ApiError::NoKey)?;
        Ok(Self::new(base, SecretString::from(key.trim().to_owned())))
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET {base}{path_and_query}`, the answer read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, ApiError> {
        let url = format!("{}{path_and_query}", self.base);
        let req = self.http.get(&url);
        self.send(req, url).await
    }

    /// `POST {base}{path}` with `body` as JSON, the answer read as `T`.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let bytes = serde_json::to_vec(body).map_err(ApiError::BadAnswer)?;
        self.post_bytes(path, bytes).await
    }

    /// `POST {base}{path}` with `body`, already JSON, the answer read as `T`.
    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let req = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        self.send(req, url).await
    }

    /// `POST {base}{path}` with `body` (JSON) and `Idempotency-Key: key`, sent again with the
    /// same key while the failure is transient ([`ApiError::is_transient`]), up to
    /// [`IDEMPOTENT_ATTEMPTS`] times: when the first answer is lost (a timeout after the API
    /// made the thing), the API answers the resend with what the first one made instead of
    /// making it twice.
    pub async fn post_idempotent<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        key: &str,
    ) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut wait = RESEND_AFTER;
        let mut attempt = 1;
        loop {
            let req = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(body.clone());
            match self.send(req, url.clone()).await {
                Err(e) if e.is_transient() && attempt < IDEMPOTENT_ATTEMPTS => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }

    /// `GET {base}{path_and_query}` for a non-JSON answer (`accept`): its body as text and
    /// its headers. Errors as for [`Api::get`].
    pub async fn get_text(
        &self,
        path_and_query: &str,
        accept: &str,
    ) -> Result<(String, reqwest::header::HeaderMap), ApiError> {
        let url = format!("{}{path_and_query}", self.base);
        let req = self.http.get(&url).header("accept", accept);
        let (headers, bytes) = self.exchange(req, url).await?;
        Ok((String::from_utf8_lossy(&bytes).into_owned(), headers))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: String,
    ) -> Result<T, ApiError> {
        let (_, bytes) = self
            .exchange(req.header("accept", "application/json"), url)
            .await?;
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(ApiError::BadAnswer)
    }

    /// Sends with the key; a 2xx answer's headers and body, or the mapped error.
    async fn exchange(
        &self,
        req: reqwest::RequestBuilder,
        url: String,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), ApiError> {
        let resp = req
            .bearer_auth(self.key.expose_secret())
            .send()
            .await
            .map_err(|source| ApiError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ApiError::Unreachable { url, source })?;
        if (200..300).contains(&status) {
            return Ok((headers, bytes.to_vec()));
        }
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let message = body
            .as_ref()
            .and_then(explanation)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(500).collect());
        Err(match status {
            401 | 403 => ApiError::Unauthorised { status, message },
            _ => ApiError::Status {
                status,
                message,
                body,
            },
        })
    }
}

/// The most useful text of an error body: the Cloud API shape's `error_data.details`, then
/// `error.message`, then a top-level `message` or `error` string.
fn explanation(body: &Value) -> Option<String> {
    let e = body.get("error");
    e.and_then(|e| e.get("error_data"))
        .and_then(|d| d.get("details"))
        .or_else(|| e.and_then(|e| e.get("message")))
        .or_else(|| body.get("message"))
        .or(e)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flags_win_over_the_environment_and_the_dev_key_is_the_last_resort() {
        let env = Env::from_pairs([
            ("VENTANA_URL", "http://127.0.0.1:3000/"),
            ("VENTANA_DEV_API_KEY", "dev"),
        ]);
        let api = Api::from_settings(&env, None, None).unwrap();
        assert_eq!(api.base_url(), "http://127.0.0.1:3000");
        assert_eq!(api.key.expose_secret(), "dev");
        let api = Api::from_settings(&env, Some("http://x"), Some("k")).unwrap();
        assert_eq!((api.base_url(), api.key.expose_secret()), ("http://x", "k"));
        let env = Env::from_pairs([("VENTANA_API_KEY", "a"), ("VENTANA_DEV_API_KEY", "b")]);
        assert!(matches!(
            Api::from_settings(&env, None, None),
            Err(ApiError::NoUrl)
        ));
        let api = Api::from_settings(&env, Some("http://x"), None).unwrap();
        assert_eq!(api.key.expose_secret(), "a");
        assert!(matches!(
            Api::from_settings(&Env::default(), Some("http://x"), None),
            Err(ApiError::NoKey)
        ));
    }

    #[test]
    fn error_bodies_are_explained_by_their_most_useful_text() {
        let cloud = json!({"error": {"message": "(#132001) x", "error_data": {"details": "template a (en) is not known"}}});
        assert_eq!(
            explanation(&cloud).as_deref(),
            Some("template a (en) is not known")
        );
        let plain = json!({"error": {"message": "forbidden"}});
        assert_eq!(explanation(&plain).as_deref(), Some("forbidden"));
        assert_eq!(
            explanation(&json!({"error": "nope"})).as_deref(),
            Some("nope")
        );
        assert_eq!(explanation(&json!([1])), None);
    }

    #[test]
    fn debug_output_does_not_show_the_key() {
        let api = Api::new("http://x", SecretString::from("vk_secret".to_owned()));
        assert!(!format!("{api:?}").contains("vk_secret"));
    }
}

#[cfg(test)]
mod loopback {
    use super::*;
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use serde_json::json;

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn authorised(h: &HeaderMap) -> bool {
        h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer vk_good")
    }

    #[tokio::test]
    async fn json_goes_both_ways_with_the_bearer_key_and_errors_are_mapped() {
        let app = Router::new()
            .route(
                "/v1/echo",
                post(|h: HeaderMap, body: String| async move {
                    if !authorised(&h) {
                        return (StatusCode::UNAUTHORIZED, r#"{"error":{"message":"unknown key"}}"#.to_owned());
                    }
                    (StatusCode::OK, format!(r#"{{"got":{body}}}"#))
                }),
            )
            .route(
                "/v1/broken",
                get(|| async {
                    (
                        StatusCode::BAD_REQUEST,
                        r#"{"error":{"message":"(#100) Invalid parameter","error_data":{"details":"waba_id is required"}}}"#,
                    )
                }),
            );
        let base = serve(app).await;
        let good = Api::new(&base, SecretString::from("vk_good".to_owned()));
        let v: Value = good.post("/v1/echo", &json!({"a": 1})).await.unwrap();
        assert_eq!(v, json!({"got": {"a": 1}}));

        let bad = Api::new(&base, SecretString::from("vk_bad".to_owned()));
        match bad.post::<_, Value>("/v1/echo", &json!({})).await {
            Err(ApiError::Unauthorised {
                status: 401,
                message,
            }) => assert_eq!(message, "unknown key"),
            other => panic!("{other:?}"),
        }
        match good.get::<Value>("/v1/broken").await {
            Err(ApiError::Status {
                status: 400,
                message,
                body,
            }) => {
                assert_eq!(message, "waba_id is required");
                assert!(body.is_some());
            }
            other => panic!("{other:?}"),
        }
        let nowhere = Api::new("http://127.0.0.1:9", SecretString::from("k".to_owned()));
        assert!(matches!(
            nowhere.get::<Value>("/v1/x").await,
            Err(ApiError::Unreachable { .. })
        ));
    }
}
