//! The API's one error type and the one place it becomes an HTTP response
//! (`{code, message}`, as docs/api.md "Errors" lists them).

use serde::Serialize;

use crate::http::ApiResponse;
use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed or out-of-range input; the message names the field.
    #[error("{0}")]
    InvalidParameter(String),
    /// 401: which check failed, never whether the key exists.
    #[error("{0}")]
    Unauthenticated(String),
    /// 404: no such resource, or another user's (indistinguishable).
    #[error("{0}")]
    NotFound(String),
    /// 409: the operation does not fit the resource's state.
    #[error("{0}")]
    InvalidState(String),
    /// 429: too many active jobs, or the request-weight budget is spent.
    #[error("{message}")]
    RateLimited { message: String, retry_after_s: Option<u64> },
    /// 500: our fault. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// 500: the backend failed. Logged with its causes, never sent.
    #[error("storage failure")]
    Store(#[from] StoreError),
}

/// The body of every error response, and of a failed job's `error`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

/// `e` and every cause under it, joined with `: ` (for logs).
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidParameter(_) => 400,
            ApiError::Unauthenticated(_) => 401,
            ApiError::NotFound(_) => 404,
            ApiError::InvalidState(_) => 409,
            ApiError::RateLimited { .. } => 429,
            ApiError::Internal(_) | ApiError::Store(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidParameter(_) => "INVALID_PARAMETER",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::InvalidState(_) => "INVALID_STATE",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::Internal(_) | ApiError::Store(_) => "INTERNAL",
        }
    }

    pub fn into_response(self) -> ApiResponse {
        let message = match &self {
            ApiError::Internal(_) | ApiError::Store(_) => {
                tracing::error!(error = %report(&self), "internal error");
                "internal error; the request can be retried".to_string()
            }
            other => other.to_string(),
        };
        let mut resp = ApiResponse::json(self.status(), &ErrorBody { code: self.code(), message: &message });
        if let ApiError::RateLimited { retry_after_s: Some(s), .. } = self {
            resp = resp.with_header("retry-after", s.to_string());
        }
        resp
    }
}

impl From<pipai_engine::FieldError> for ApiError {
    fn from(e: pipai_engine::FieldError) -> Self {
        ApiError::InvalidParameter(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn internal_errors_never_leak_detail() {
        let r = ApiError::Internal("dynamodb: ThrottlingException at table X".into()).into_response();
        assert_eq!(r.status, 500);
        let body = r.body_json();
        assert_eq!(body["code"], "INTERNAL");
        assert!(!body["message"].as_str().unwrap().contains("dynamodb"));
        let r = ApiError::from(StoreError::new("dynamodb GetItem on T")).into_response();
        assert_eq!((r.status, r.body_json()["code"].as_str()), (500, Some("INTERNAL")));
        assert!(!r.body_json()["message"].as_str().unwrap().contains("dynamodb"));
    }

    #[test]
    fn reports_carry_every_cause() {
        let io = std::io::Error::other("connection reset");
        let e = StoreError::caused_by("s3 GetObject on bucket", io);
        assert_eq!(report(&e), "s3 GetObject on bucket: connection reset");
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let r = ApiError::RateLimited { message: "slow down".into(), retry_after_s: Some(7) }.into_response();
        assert_eq!((r.status, r.header("retry-after")), (429, Some("7")));
        assert_eq!(r.body_json(), json!({"code": "RATE_LIMITED", "message": "slow down"}));
    }
}
