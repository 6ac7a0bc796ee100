//! Typed configuration from environment variables, read once at cold start; a missing or bad
//! variable stops the function before it serves anything.

use pipai_service::worker::WorkerSettings;
use pipai_service::ApiSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

fn parse_or<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError> {
    match optional(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ConfigError::Invalid { name, reason: format!("{v:?} is not a valid number") }),
    }
}

/// The API functions' settings: `REQUEST_WEIGHT_BUDGET` (default 1200 per key per minute).
pub fn api_settings() -> Result<ApiSettings, ConfigError> {
    let defaults = ApiSettings::default();
    Ok(ApiSettings { weight_budget: parse_or("REQUEST_WEIGHT_BUDGET", defaults.weight_budget)?, ..defaults })
}

/// The worker's: `JOBS_DLQ_URL`, to tell dead-lettered messages from fresh ones, and
/// `WORKER_LEASE_SECONDS` (default 60), how long a run holds a job between heartbeats, which is
/// how soon a crashed run's job can be taken over.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub dead_letter_queue_name: String,
    pub settings: WorkerSettings,
}

impl WorkerConfig {
    pub fn from_env() -> Result<WorkerConfig, ConfigError> {
        let url = required("JOBS_DLQ_URL")?;
        let lease_s: i64 = parse_or("WORKER_LEASE_SECONDS", 60)?;
        if !(5..=900).contains(&lease_s) {
            return Err(ConfigError::Invalid { name: "WORKER_LEASE_SECONDS", reason: "must be from 5 to 900".into() });
        }
        Ok(WorkerConfig {
            dead_letter_queue_name: queue_name(&url).to_string(),
            settings: WorkerSettings { lease_ms: lease_s * 1000, ..WorkerSettings::default() },
        })
    }
}

/// The last path segment of a queue URL or the last `:` field of a queue ARN: the queue's name.
pub fn queue_name(url_or_arn: &str) -> &str {
    url_or_arn.rsplit(['/', ':']).next().unwrap_or(url_or_arn)
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_names_from_urls_and_arns() {
        assert_eq!(
            super::queue_name("http://127.0.0.1:4566/123456789012/pipai-local-JobsDeadLetterQueue"),
            "pipai-local-JobsDeadLetterQueue"
        );
        assert_eq!(
            super::queue_name("arn:aws:sqs:us-east-1:123456789012:pipai-local-JobsDeadLetterQueue"),
            "pipai-local-JobsDeadLetterQueue"
        );
    }
}
