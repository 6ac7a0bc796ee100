//! The HTTP shapes handlers speak, free of any Lambda or HTTP crate so tests call handlers
//! directly. The functions convert API Gateway events to and from these.

use serde_json::Value;

/// One API request. `path` starts at `/v1/` (a stage prefix is removed when building it);
/// `raw_query` is the query string exactly as sent, without `?`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Strips anything before `/v1/` (an API Gateway stage such as `/prod`).
    pub fn normalize_path(raw_path: &str) -> String {
        match raw_path.find("/v1/") {
            Some(i) => raw_path[i..].to_string(),
            None => raw_path.to_string(),
        }
    }

    /// Query parameters, percent-decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        crate::auth::decode_query(&self.raw_query).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, body: &T) -> Self {
        ApiResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(body).expect("JSON values serialize"),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}
