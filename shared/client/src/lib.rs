//! The signing HTTP client of the PipAI Backtest API: every request carries the three headers
//! of docs/api.md ("Signing"), made by the same code the API verifies
//! with (`pipai_service::auth`). `pipai jobs` and the end-to-end tests both send through it.
//!
//! Signing timestamps strictly increase within the process ([`next_timestamp_ms`]), so identical
//! POSTs sent back to back are never taken for replays of each other;
//! [`ApiClient::send_at`] signs with a given timestamp, to provoke a replay on purpose.

mod clock;
mod settings;

use std::collections::HashMap;

use pipai_service::auth::{rfc3986, sign_request, HEADER_USED_WEIGHT};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use clock::{next_timestamp_ms, now_ms};
pub use settings::{BaseUrl, ClientSettings, KeyId, Secret, SettingsError};

/// The methods the API has routes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request got no answer, or its answer could not be read as asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, sending or reading failed (no HTTP status to show).
    #[error("{method} {url}: no answer")]
    Transport {
        method: Method,
        url: String,
        #[source]
        source: ureq::Error,
    },
    /// The request body could not be written as JSON.
    #[error("the request body cannot be written as JSON")]
    EncodeBody(#[source] serde_json::Error),
    /// The answer's body is not the JSON that was expected.
    #[error("HTTP {status}: the body is not the expected JSON")]
    DecodeBody {
        status: u16,
        #[source]
        source: serde_json::Error,
    },
}

/// The API's error body (`{code, message}`, API.md "Errors").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// An answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names in lower case; of a repeated header, the first value.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header by name, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// `X-PipAI-Used-Weight-1m`: the request weight this key used in the current minute.
    pub fn used_weight_1m(&self) -> Option<u32> {
        self.header(HEADER_USED_WEIGHT)?.trim().parse().ok()
    }

    /// `Retry-After` in seconds (sent with 429 when the weight budget is spent).
    pub fn retry_after_s(&self) -> Option<u64> {
        self.header("retry-after")?.trim().parse().ok()
    }

    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|source| ClientError::DecodeBody { status: self.status, source })
    }

    /// The body as JSON, or as a JSON string of its text when it is not JSON (an emulator's or
    /// a proxy's plain-text error), so it can always be shown.
    pub fn json_or_text(&self) -> serde_json::Value {
        self.json().unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&self.body).into_owned()))
    }

    /// The API's `{code, message}`, when the body is one.
    pub fn error_body(&self) -> Option<ErrorBody> {
        self.json().ok()
    }
}

/// Sends signed requests with one key. Cheap to share between threads (`&self` everywhere).
pub struct ApiClient {
    settings: ClientSettings,
    agent: ureq::Agent,
}

impl ApiClient {
    pub fn new(settings: ClientSettings) -> ApiClient {
        let agent = ureq::Agent::config_builder()
            // 4xx and 5xx are answers to hand back, not transport errors.
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            .build()
            .new_agent();
        ApiClient { settings, agent }
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// A plain GET of `url`, unsigned (a presigned download such as an artifact's `url`), its
    /// body streamed into `out` when the status is 2xx (a body of any size: no time limit but
    /// connecting). The status, and the bytes written.
    pub fn download(&self, url: &str, out: &mut dyn std::io::Write) -> Result<(u16, u64), ClientError> {
        let transport = |source| ClientError::Transport { method: Method::Get, url: url.to_string(), source };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(self.settings.timeout))
            .build()
            .new_agent();
        let mut answer = agent.get(url).call().map_err(transport)?;
        let status = answer.status().as_u16();
        if !(200..300).contains(&status) {
            return Ok((status, 0));
        }
        let copied =
            std::io::copy(&mut answer.body_mut().as_reader(), out).map_err(|e| transport(ureq::Error::Io(e)))?;
        Ok((status, copied))
    }

    /// `method path?query` with `body`, signed now. `path` starts at `/v1/`; query pairs are
    /// given unencoded.
    pub fn send<K: AsRef<str>, V: AsRef<str>>(
        &self,
        method: Method,
        path: &str,
        query: &[(K, V)],
        body: &[u8],
    ) -> Result<Response, ClientError> {
        self.send_at(next_timestamp_ms(), method, path, query, body)
    }

    /// Like [`Self::send`], signed with `timestamp_ms` (Unix epoch milliseconds) as given: the
    /// same request sent twice with one timestamp has one signature.
    pub fn send_at<K: AsRef<str>, V: AsRef<str>>(
        &self,
        timestamp_ms: i64,
        method: Method,
        path: &str,
        query: &[(K, V)],
        body: &[u8],
    ) -> Result<Response, ClientError> {
        let raw_query = encode_query(query);
        let headers = self.signed_headers(timestamp_ms, method, path, &raw_query, body);
        let url = if raw_query.is_empty() {
            format!("{}{path}", self.settings.base_url)
        } else {
            format!("{}{path}?{raw_query}", self.settings.base_url)
        };
        let transport = |source| ClientError::Transport { method, url: url.clone(), source };
        let mut answer = match method {
            Method::Get => {
                let mut request = self.agent.get(&url);
                for (name, value) in &headers {
                    request = request.header(name.as_str(), value.as_str());
                }
                request.call().map_err(transport)?
            }
            Method::Post => {
                let mut request = self.agent.post(&url).header("content-type", "application/json");
                for (name, value) in &headers {
                    request = request.header(name.as_str(), value.as_str());
                }
                request.send(body).map_err(transport)?
            }
            Method::Patch => {
                let mut request = self.agent.patch(&url).header("content-type", "application/json");
                for (name, value) in &headers {
                    request = request.header(name.as_str(), value.as_str());
                }
                request.send(body).map_err(transport)?
            }
            Method::Delete => {
                let mut request = self.agent.delete(&url);
                for (name, value) in &headers {
                    request = request.header(name.as_str(), value.as_str());
                }
                request.call().map_err(transport)?
            }
        };
        let mut response_headers = HashMap::new();
        for (name, value) in answer.headers() {
            if let Ok(value) = value.to_str() {
                response_headers.entry(name.as_str().to_ascii_lowercase()).or_insert_with(|| value.to_string());
            }
        }
        let body = answer.body_mut().read_to_vec().map_err(transport)?;
        Ok(Response { status: answer.status().as_u16(), headers: response_headers, body })
    }

    /// [`Self::send`] with `body` written as JSON.
    pub fn send_json<K: AsRef<str>, V: AsRef<str>, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(K, V)],
        body: &B,
    ) -> Result<Response, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(ClientError::EncodeBody)?;
        self.send(method, path, query, &bytes)
    }

    /// The three signature headers (name, value); `raw_query` as it goes on the wire.
    fn signed_headers(
        &self,
        timestamp_ms: i64,
        method: Method,
        path: &str,
        raw_query: &str,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let settings = &self.settings;
        sign_request(
            settings.key_id.as_str(),
            settings.secret.expose(),
            timestamp_ms,
            method.as_str(),
            path,
            raw_query,
            body,
        )
    }
}

/// `name=value&...`, each RFC 3986 encoded, in the order given (the signature sorts them).
fn encode_query<K: AsRef<str>, V: AsRef<str>>(query: &[(K, V)]) -> String {
    query.iter().map(|(k, v)| format!("{}={}", rfc3986(k.as_ref()), rfc3986(v.as_ref()))).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// What the tiny server below saw of one request.
    struct Seen {
        request_line: String,
        headers: HashMap<String, String>,
        body: Vec<u8>,
    }

    /// Serves `answers.len()` connections on 127.0.0.1, one request each, answering with the
    /// given raw responses; returns its base URL and what it saw.
    fn serve(answers: Vec<String>) -> (String, std::thread::JoinHandle<Vec<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            answers
                .into_iter()
                .map(|answer| {
                    let (stream, _) = listener.accept().unwrap();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request_line = String::new();
                    reader.read_line(&mut request_line).unwrap();
                    let mut headers = HashMap::new();
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        let Some((name, value)) = line.trim_end().split_once(':') else { break };
                        headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
                    }
                    let length = headers.get("content-length").map_or(0, |l| l.parse().unwrap());
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    (&stream).write_all(answer.as_bytes()).unwrap();
                    Seen { request_line: request_line.trim_end().to_string(), headers, body }
                })
                .collect()
        });
        (base, handle)
    }

    fn answer(status: &str, extra_headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{extra_headers}content-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn client(base: &str) -> ApiClient {
        ApiClient::new(ClientSettings::parse(base, "pk_demo", "sk_demo_secret").unwrap())
    }

    #[test]
    fn a_request_is_signed_as_the_api_verifies_and_its_answer_read() {
        let (base, server) = serve(vec![answer(
            "409 Conflict",
            "X-PipAI-Used-Weight-1m: 7\r\nRetry-After: 3\r\n",
            r#"{"code":"INVALID_STATE","message":"job is done"}"#,
        )]);
        let query = [("status", "done"), ("from", "2025-01-01T00:00:00Z")];
        let response =
            client(&base).send_at(1_714_385_700_000, Method::Post, "/v1/backtest/jobs", &query, b"{}").unwrap();

        let seen = server.join().unwrap().remove(0);
        assert_eq!(seen.request_line, "POST /v1/backtest/jobs?status=done&from=2025-01-01T00%3A00%3A00Z HTTP/1.1");
        assert_eq!(seen.body, b"{}");
        assert_eq!(seen.headers["x-pipai-api-key"], "pk_demo");
        assert_eq!(seen.headers["x-pipai-timestamp"], "1714385700000");
        // Known answer (HMAC-SHA256 computed independently, with Python's hmac)...
        let expected = "d1c5bca30e56af22a9fc02ab194700cde46edef7b3d2e9c5feef7d7ebe3d9fce";
        assert_eq!(seen.headers["x-pipai-signature"], expected);
        // ... and what the API computes from the request it received.
        let (path, raw_query) = seen.request_line.split(' ').nth(1).unwrap().split_once('?').unwrap();
        let canonical = pipai_service::auth::canonical_query(raw_query).unwrap();
        let to_sign =
            pipai_service::auth::string_to_sign("1714385700000", "pk_demo", "POST", path, &canonical, &seen.body);
        assert_eq!(pipai_service::auth::signature("sk_demo_secret", &to_sign), expected);

        assert_eq!(response.status, 409);
        assert!(!response.is_success());
        assert_eq!(response.used_weight_1m(), Some(7));
        assert_eq!(response.retry_after_s(), Some(3));
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        let error = response.error_body().unwrap();
        assert_eq!((error.code.as_str(), error.message.as_str()), ("INVALID_STATE", "job is done"));
    }

    #[test]
    fn identical_posts_are_signed_differently_and_a_get_has_no_body() {
        let ok = answer("200 OK", "", r#"{"data":[]}"#);
        let (base, server) = serve(vec![ok.clone(), ok.clone(), ok]);
        let api = client(&base);
        let no_query: &[(&str, &str)] = &[];
        for _ in 0..2 {
            let response = api.send_json(Method::Post, "/v1/backtest/jobs/bt_1/cancel", no_query, &()).unwrap();
            assert!(response.is_success());
        }
        let response = api.send(Method::Get, "/v1/backtest/symbols", no_query, b"").unwrap();
        let page: serde_json::Value = response.json().unwrap();
        assert_eq!(page["data"], serde_json::json!([]));

        let seen = server.join().unwrap();
        assert_eq!(seen[0].body, b"null");
        let stamps: Vec<i64> = seen.iter().map(|s| s.headers["x-pipai-timestamp"].parse().unwrap()).collect();
        assert!(stamps.windows(2).all(|w| w[1] > w[0]), "{stamps:?}");
        assert_ne!(seen[0].headers["x-pipai-signature"], seen[1].headers["x-pipai-signature"]);
        assert_eq!(seen[2].request_line, "GET /v1/backtest/symbols HTTP/1.1");
        assert!(seen[2].body.is_empty());
    }

    #[test]
    fn a_body_that_is_not_json_is_kept_as_text_or_refused_with_its_cause() {
        let (base, server) = serve(vec![answer("500 Internal Server Error", "", "Internal Server Error")]);
        let response = client(&base).send(Method::Get, "/v1/backtest/jobs", &[("limit", "5")], b"").unwrap();
        server.join().unwrap();
        assert_eq!(response.json_or_text(), serde_json::json!("Internal Server Error"));
        assert_eq!(response.error_body(), None);
        let error = response.json::<serde_json::Value>().unwrap_err();
        assert!(matches!(error, ClientError::DecodeBody { status: 500, .. }), "{error:?}");
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn no_listener_is_a_transport_error_naming_the_request() {
        // A port that was free a moment ago: nothing listens there now.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let api = client(&format!("http://127.0.0.1:{port}"));
        let error = api.send(Method::Get, "/v1/backtest/templates", &[] as &[(&str, &str)], b"").unwrap_err();
        let ClientError::Transport { method, url, .. } = &error else { panic!("{error:?}") };
        assert_eq!(
            (*method, url.as_str()),
            (Method::Get, format!("http://127.0.0.1:{port}/v1/backtest/templates").as_str())
        );
        assert!(std::error::Error::source(&error).is_some(), "the cause is kept");
    }
}
