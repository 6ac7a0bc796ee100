//! Typed configuration from environment variables, read once at cold start; a missing or bad
//! variable stops the function before it serves anything.

use pipai_service::notifier::NotifierSettings;
use pipai_service::settings::{ConfigError, Env};
use pipai_service::webhook::{WebhookPolicy, WebhookSettings};
use pipai_service::worker::WorkerSettings;
use pipai_service::ApiSettings;

/// The API functions' settings: `REQUEST_WEIGHT_BUDGET` (default 1200 per key per minute) and
/// the webhook policy ([`webhook_policy`]).
pub fn api_settings() -> Result<ApiSettings, ConfigError> {
    let defaults = ApiSettings::default();
    let budget = Env::process().int_in("REQUEST_WEIGHT_BUDGET", defaults.weight_budget.into(), 1..=1_000_000_000)?;
    let webhooks = WebhookSettings { policy: webhook_policy(&Env::process())?, ..defaults.webhooks.clone() };
    Ok(ApiSettings { weight_budget: budget as u32, webhooks, ..defaults })
}

/// `PIPAI_ALLOW_HTTP_LOOPBACK_WEBHOOKS` (`true`/`1` or `false`/`0`, default false): whether
/// `http://127.0.0.1[:port]` is an acceptable `notify_url` (local stacks only).
pub fn webhook_policy(env: &Env) -> Result<WebhookPolicy, ConfigError> {
    const NAME: &str = "PIPAI_ALLOW_HTTP_LOOPBACK_WEBHOOKS";
    let allow = match env.optional(NAME).as_deref().map(str::trim) {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => return Err(ConfigError::invalid(NAME, format!("{other:?} is not true, false, 1 or 0"))),
    };
    Ok(WebhookPolicy { allow_http_loopback: allow })
}

/// The notifier's: the webhook policy and `PIPAI_WEBHOOK_BACKOFF_BASE_MS` (default 30000), the
/// delay before the first retry (each further one doubles, up to 15 minutes).
pub fn notifier_settings() -> Result<NotifierSettings, ConfigError> {
    let env = Env::process();
    let defaults = NotifierSettings::default();
    let base = env.int_in("PIPAI_WEBHOOK_BACKOFF_BASE_MS", defaults.backoff_base_ms as i64, 0..=900_000)?;
    Ok(NotifierSettings { policy: webhook_policy(&env)?, backoff_base_ms: base as u64, ..defaults })
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
        let env = Env::process();
        let url = env.required("JOBS_DLQ_URL")?;
        let lease_s = env.int_in("WORKER_LEASE_SECONDS", 60, 5..=900)?;
        Ok(WorkerConfig {
            dead_letter_queue_name: queue_name(&url).to_string(),
            settings: WorkerSettings { lease_ms: lease_s * 1000, ..WorkerSettings::default() },
        })
    }
}

/// The sweep worker's dead-letter queue's name, from `SWEEP_CHUNKS_DLQ_URL`.
pub fn sweep_dead_letter_queue_name() -> Result<String, ConfigError> {
    Ok(queue_name(&Env::process().required("SWEEP_CHUNKS_DLQ_URL")?).to_string())
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
