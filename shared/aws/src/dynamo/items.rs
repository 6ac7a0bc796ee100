//! The stored items, one struct per item kind, mapped to attributes by `serde_dynamo`. The
//! attribute names and types are the tables' schema (template.yaml's keys, GSIs and TTL), so a
//! field here is renamed only together with the deployed tables.
//!
//! [`JobItem`] <-> [`JobRecord`] is the one place that knows how a job is stored.

use pipai_service::model::{ApiKeyRecord, JobError, JobRecord, JobStatus, JobWebhook, KeyStatus, StrategyRecord};
use pipai_service::notifier::NotificationRecord;
use pipai_service::webhook::NotifyUrl;
use pipai_service::{JobId, KeyId, RunToken, StrategyId, UserId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo_serde;

use crate::item::Item;

/// Largest `submitted_at` that keeps the 13-digit sort key in order (year 2286).
pub(super) const MAX_KEY_MS: i64 = 9_999_999_999_999;

/// The jobs table's sort key of every GSI: `{submitted_at:013}#{job_id}` (newest first = descending).
pub(super) fn submitted_key(submitted_at_ms: i64, id: &str) -> String {
    format!("{submitted_at_ms:013}#{id}")
}

/// The `by_user_status` partition key.
pub(super) fn user_status(user_id: &str, status: JobStatus) -> String {
    format!("{user_id}#{}", status.as_str())
}

/// The `by_user_template` partition key.
pub(super) fn user_template(user_id: &str, template_id: &str) -> String {
    format!("{user_id}#{template_id}")
}

/// Progress as stored: within [0, 1] and at most 6 decimals (a DynamoDB number has at most 38
/// digits, and `1e-300` written out has 300).
pub(super) fn stored_progress(p: f64) -> f64 {
    let p = if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 };
    (p * 1e6).round() / 1e6
}

/// [`stored_progress`] as the number text of an update expression's value.
pub(super) fn progress_text(p: f64) -> String {
    format!("{:.6}", stored_progress(p))
}

/// How long a terminal job is kept: its `expires_at` (DynamoDB TTL, epoch seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Retention {
    pub(super) days: i64,
}

impl Retention {
    pub(super) fn expires_at_s(self, finished_ms: i64) -> i64 {
        finished_ms.div_euclid(1000) + self.days * 86_400
    }
}

/// How `config` and `summary` are stored: as JSON text.
pub(super) fn json_text(what: &str, value: &impl Serialize) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("{what}: {e}"))
}

/// The value stored as JSON text by [`json_text`].
fn from_json_text<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("{what}: {e}"))
}

/// An item of the jobs table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct JobItem {
    pub(super) job_id: JobId,
    pub(super) user_id: UserId,
    pub(super) status: JobStatus,
    pub(super) template_id: String,
    /// JSON text.
    pub(super) config: String,
    /// Epoch milliseconds, as are the other `*_at` and `lease_until`.
    pub(super) submitted_at: i64,
    pub(super) submitted_key: String,
    pub(super) user_status: String,
    pub(super) user_template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) finished_at: Option<i64>,
    #[serde(default)]
    pub(super) progress: f64,
    /// `{code, message}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<JobError>,
    /// JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) run_token: Option<RunToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) lease_until: Option<i64>,
    #[serde(default)]
    pub(super) attempts: u32,
    #[serde(default)]
    pub(super) slot_released: bool,
    /// Epoch seconds (DynamoDB TTL), set once the job is terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) expires_at: Option<i64>,
    /// The version of the strategy the job was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) strategy_version: Option<u32>,
    /// Completion webhook: the URL, the key whose secret signs, the deliveries (a list of maps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) notify_url: Option<NotifyUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) notify_key_id: Option<KeyId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) notifications: Vec<NotificationRecord>,
}

impl JobItem {
    /// The item of `job`, with its index keys and, when terminal, its expiry.
    pub(super) fn new(job: &JobRecord, retention: Retention) -> Result<JobItem, String> {
        Ok(JobItem {
            job_id: job.id.clone(),
            user_id: job.user_id.clone(),
            status: job.status,
            template_id: job.template_id().to_string(),
            config: json_text("config", &job.config)?,
            submitted_at: job.submitted_at_ms,
            submitted_key: submitted_key(job.submitted_at_ms, job.id.as_str()),
            user_status: user_status(job.user_id.as_str(), job.status),
            user_template: user_template(job.user_id.as_str(), job.template_id()),
            started_at: job.started_at_ms,
            finished_at: job.finished_at_ms,
            progress: stored_progress(job.progress),
            error: job.error.clone(),
            summary: job.summary.as_ref().map(|s| json_text("summary", s)).transpose()?,
            run_token: job.run_token.clone(),
            lease_until: job.lease_until_ms,
            attempts: job.attempts,
            slot_released: job.slot_released,
            expires_at: job.finished_at_ms.filter(|_| job.status.is_terminal()).map(|t| retention.expires_at_s(t)),
            strategy_version: job.strategy_version,
            notify_url: job.webhook.notify_url.clone(),
            notify_key_id: job.webhook.key_id.clone(),
            notifications: job.webhook.notifications.clone(),
        })
    }
}

impl TryFrom<JobItem> for JobRecord {
    type Error = String;

    fn try_from(item: JobItem) -> Result<Self, String> {
        Ok(JobRecord {
            config: from_json_text("config", &item.config)?,
            summary: item.summary.as_deref().map(|s| from_json_text("summary", s)).transpose()?,
            id: item.job_id,
            user_id: item.user_id,
            status: item.status,
            submitted_at_ms: item.submitted_at,
            started_at_ms: item.started_at,
            finished_at_ms: item.finished_at,
            progress: item.progress,
            error: item.error,
            run_token: item.run_token,
            lease_until_ms: item.lease_until,
            attempts: item.attempts,
            slot_released: item.slot_released,
            strategy_version: item.strategy_version,
            webhook: JobWebhook {
                notify_url: item.notify_url,
                key_id: item.notify_key_id,
                notifications: item.notifications,
            },
        })
    }
}

/// The attributes of a job item that a failed condition is classified by.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct JobState {
    pub(super) user_id: String,
    pub(super) status: JobStatus,
    #[serde(default)]
    pub(super) lease_until: Option<i64>,
}

impl JobState {
    /// `Some(until)` when the job is running under a lease that is live at `now_ms`.
    pub(super) fn live_lease(&self, now_ms: i64) -> Option<i64> {
        self.lease_until.filter(|&until| self.status == JobStatus::Running && until > now_ms)
    }
}

/// What a jobs-table stream image says about the job (the stream bookkeeping's view of a
/// [`JobItem`]): any of it may be missing from an image.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct JobImage {
    pub(crate) job_id: Option<JobId>,
    pub(crate) user_id: Option<UserId>,
    /// Text: parsed by the reader, which says which record held an unknown status.
    pub(crate) status: Option<String>,
    pub(crate) slot_released: Option<bool>,
    /// Present on jobs with a completion webhook (its text is not needed here).
    #[serde(default)]
    pub(crate) notify_url: Option<String>,
}

/// An item of the API keys table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct KeyItem {
    pub(super) key_id: KeyId,
    pub(super) user_id: UserId,
    pub(super) secret_ciphertext: String,
    pub(super) status: KeyStatus,
    #[serde(default)]
    pub(super) created_at: i64,
    #[serde(default)]
    pub(super) label: String,
}

impl From<&ApiKeyRecord> for KeyItem {
    fn from(k: &ApiKeyRecord) -> Self {
        KeyItem {
            key_id: k.key_id.clone(),
            user_id: k.user_id.clone(),
            secret_ciphertext: k.secret_ciphertext.clone(),
            status: k.status,
            created_at: k.created_at_ms,
            label: k.label.clone(),
        }
    }
}

impl From<KeyItem> for ApiKeyRecord {
    fn from(k: KeyItem) -> Self {
        ApiKeyRecord {
            key_id: k.key_id,
            user_id: k.user_id,
            secret_ciphertext: k.secret_ciphertext,
            status: k.status,
            created_at_ms: k.created_at,
            label: k.label,
        }
    }
}

/// An item of the users table (written only by update expressions).
#[derive(Clone, Debug, Deserialize)]
pub(super) struct UserItem {
    #[serde(default)]
    pub(super) active_jobs: i64,
}

/// A remembered request signature in the requests table: `pk` = `sig#{key_id}#{signature}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SignatureItem {
    pub(super) pk: String,
    /// Epoch seconds (DynamoDB TTL).
    pub(super) expires_at: i64,
}

impl SignatureItem {
    /// Remembered until `expires_ms`, rounded up to whole seconds.
    pub(super) fn new(key_id: &str, signature: &str, expires_ms: i64) -> Self {
        let expires_at = expires_ms.div_euclid(1000) + i64::from(expires_ms.rem_euclid(1000) != 0);
        SignatureItem { pk: format!("sig#{key_id}#{signature}"), expires_at }
    }
}

/// A request-weight counter in the requests table (written by `ADD`): `pk` =
/// `weight#{key_id}#{window_start_ms}`, with `expires_at` in epoch seconds.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct WeightCounter {
    pub(super) weight: u64,
}

impl WeightCounter {
    /// Counters outlive their window by this much (any window up to an hour works).
    const TTL_S: i64 = 3600;

    pub(super) fn key(key_id: &str, window_start_ms: i64) -> String {
        format!("weight#{key_id}#{window_start_ms}")
    }

    pub(super) fn expires_at_s(window_start_ms: i64) -> i64 {
        window_start_ms.div_euclid(1000) + Self::TTL_S
    }
}

/// The strategies table's `by_user_updated` sort key: `{updated_at:013}#{strategy_id}`.
pub(super) fn updated_key(updated_at_ms: i64, id: &str) -> String {
    format!("{updated_at_ms:013}#{id}")
}

/// An item of the strategies table (key `strategy_id`; GSI `by_user_updated` on `user_id`,
/// `updated_key`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct StrategyItem {
    pub(super) strategy_id: StrategyId,
    pub(super) user_id: UserId,
    pub(super) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
    pub(super) version: u32,
    /// JSON text.
    pub(super) config: String,
    /// Epoch milliseconds.
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) updated_key: String,
}

impl StrategyItem {
    pub(super) fn new(s: &StrategyRecord) -> Result<StrategyItem, String> {
        Ok(StrategyItem {
            strategy_id: s.id.clone(),
            user_id: s.user_id.clone(),
            name: s.name.clone(),
            description: s.description.clone(),
            version: s.version,
            config: json_text("config", &s.config)?,
            created_at: s.created_at_ms,
            updated_at: s.updated_at_ms,
            updated_key: updated_key(s.updated_at_ms.clamp(0, MAX_KEY_MS), s.id.as_str()),
        })
    }
}

impl TryFrom<StrategyItem> for StrategyRecord {
    type Error = String;

    fn try_from(item: StrategyItem) -> Result<Self, String> {
        Ok(StrategyRecord {
            config: from_json_text("config", &item.config)?,
            id: item.strategy_id,
            user_id: item.user_id,
            name: item.name,
            description: item.description,
            version: item.version,
            created_at_ms: item.created_at,
            updated_at_ms: item.updated_at,
        })
    }
}

/// The attributes of a strategy item that a failed condition is classified by.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct StrategyState {
    pub(super) user_id: String,
}

/// A typed item as attributes.
pub(super) fn to_item(value: &impl Serialize) -> Result<Item, String> {
    dynamo_serde::to_item(value).map_err(|e| e.to_string())
}

/// One attribute value (a status in an update expression, say) exactly as the item structs store it.
pub(super) fn to_attr(value: &impl Serialize) -> Result<aws_sdk_dynamodb::types::AttributeValue, String> {
    dynamo_serde::to_attribute_value(value).map_err(|e| e.to_string())
}

/// Attributes as a typed item (attributes it does not name are ignored).
pub(super) fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T, String> {
    dynamo_serde::from_item(item.clone()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_engine::result::{Metrics, StructuredMetrics, Summary};
    use pipai_engine::JobConfig;
    use pipai_service::model::{FailCode, ResultSummary};
    use serde_json::json;

    const RETENTION: Retention = Retention { days: 90 };

    /// JobRecord -> JobItem -> attributes -> JobItem -> JobRecord, which must be the same.
    fn round_trip(job: &JobRecord) -> (JobItem, Item) {
        let item = JobItem::new(job, RETENTION).unwrap();
        let attrs = to_item(&item).unwrap();
        let back: JobItem = from_item(&attrs).unwrap();
        assert_eq!(back, item);
        assert_eq!(JobRecord::try_from(back).unwrap(), *job);
        (item, attrs)
    }

    #[test]
    fn job_items_round_trip() {
        use aws_sdk_dynamodb::types::AttributeValue as A;
        let config = JobConfig::from_value(
            &json!({"template_id": "tpl_ma_cross", "params": {"fast": 5, "slow": 20}, "symbols": ["BTCUSDT"],
                    "timeframe": "1h", "start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z",
                    "capital": "10000.00"}),
            chrono::Utc::now(),
        )
        .unwrap();
        let mut job =
            JobRecord::new_queued("bt_0a1b2c3d".parse().unwrap(), "u1".parse().unwrap(), config, 1_700_000_000_123);
        let (item, attrs) = round_trip(&job);
        assert_eq!(item.submitted_key, "1700000000123#bt_0a1b2c3d");
        assert_eq!(item.user_status, "u1#queued");
        assert_eq!(item.user_template, "u1#tpl_ma_cross");
        assert!(!attrs.contains_key("expires_at"));
        let mut names: Vec<&str> = attrs.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "attempts",
                "config",
                "job_id",
                "progress",
                "slot_released",
                "status",
                "submitted_at",
                "submitted_key",
                "template_id",
                "user_id",
                "user_status",
                "user_template"
            ]
        );
        assert_eq!(attrs["status"], A::S("queued".into()));
        assert_eq!(attrs["config"], A::S(serde_json::to_string(&job.config).unwrap()));
        assert_eq!(attrs["submitted_at"], A::N("1700000000123".into()));
        assert_eq!(attrs["progress"], A::N("0".into()));
        assert_eq!(attrs["slot_released"], A::Bool(false));

        job.status = JobStatus::Failed;
        job.started_at_ms = Some(1_700_000_001_000);
        job.finished_at_ms = Some(1_700_000_002_500);
        job.progress = 0.25;
        job.error = Some(JobError::new(FailCode::Timeout, "too slow"));
        let values = pipai_engine::metrics::MetricValues::default();
        job.summary = Some(ResultSummary {
            metrics: Metrics::from_values(&values),
            structured_metrics: StructuredMetrics::from_values(&values),
            summary: Summary {
                final_equity: "10031.50".parse().unwrap(),
                bars: 744,
                first_bar_time: "2025-01-01T00:00:00Z".into(),
                last_bar_time: "2025-01-31T23:00:00Z".into(),
                stopped_reason: None,
                bankruptcy_shortfall: None,
            },
        });
        job.run_token = Some("0123456789abcdef".parse().unwrap());
        job.lease_until_ms = Some(1_700_000_060_000);
        job.attempts = 2;
        job.slot_released = true;
        let (item, attrs) = round_trip(&job);
        assert_eq!(item.expires_at, Some(1_700_000_002 + 90 * 86_400));
        assert_eq!(attrs["expires_at"], A::N((1_700_000_002 + 90 * 86_400).to_string()));
        assert_eq!(attrs["user_status"], A::S("u1#failed".into()));
        assert_eq!(attrs["lease_until"], A::N("1700000060000".into()));
        let error = attrs["error"].as_m().unwrap();
        assert_eq!((&error["code"], &error["message"]), (&A::S("TIMEOUT".into()), &A::S("too slow".into())));
        assert_eq!(attrs["summary"], A::S(serde_json::to_string(job.summary.as_ref().unwrap()).unwrap()));
    }

    #[test]
    fn strategy_items_round_trip() {
        let config = pipai_engine::StrategyConfig::from_value(
            &json!({"template_id": "tpl_ma_cross", "params": {"fast": 5, "slow": 20}, "capital": "100.00"}),
            chrono::Utc::now(),
        )
        .unwrap();
        let s = StrategyRecord {
            id: "st_0a1b2c3d".parse().unwrap(),
            user_id: "u1".parse().unwrap(),
            name: "ma".into(),
            description: None,
            version: 3,
            config,
            created_at_ms: 1_700_000_000_000,
            updated_at_ms: 1_700_000_000_123,
        };
        let attrs = to_item(&StrategyItem::new(&s).unwrap()).unwrap();
        assert_eq!(attrs["updated_key"].as_s().unwrap(), "1700000000123#st_0a1b2c3d");
        assert_eq!(attrs["version"].as_n().unwrap(), "3");
        assert!(!attrs.contains_key("description"));
        let back: StrategyItem = from_item(&attrs).unwrap();
        assert_eq!(StrategyRecord::try_from(back).unwrap(), s);
    }

    #[test]
    fn statuses_are_stored_as_their_names() {
        for status in JobStatus::ALL {
            assert_eq!(to_attr(&status).unwrap().as_s().unwrap(), status.as_str());
        }
        assert_eq!(to_attr(&KeyStatus::Disabled).unwrap().as_s().unwrap(), "disabled");
    }

    #[test]
    fn key_records_round_trip_through_attributes() {
        let key = ApiKeyRecord {
            key_id: "k1".parse().unwrap(),
            user_id: "u1".parse().unwrap(),
            secret_ciphertext: "c1".into(),
            status: KeyStatus::Active,
            created_at_ms: 1_700_000_000_000,
            label: "ci".into(),
        };
        let attrs = to_item(&KeyItem::from(&key)).unwrap();
        assert_eq!(attrs["status"].as_s().unwrap(), "active");
        assert_eq!(attrs["created_at"].as_n().unwrap(), "1700000000000");
        let back: KeyItem = from_item(&attrs).unwrap();
        assert_eq!(ApiKeyRecord::from(back), key);
    }

    #[test]
    fn request_items() {
        let sig = to_item(&SignatureItem::new("k1", "abc", 1_700_000_000_001)).unwrap();
        assert_eq!(sig["pk"].as_s().unwrap(), "sig#k1#abc");
        assert_eq!(sig["expires_at"].as_n().unwrap(), "1700000001");
        assert_eq!(SignatureItem::new("k", "s", 2000).expires_at, 2);
        assert_eq!(WeightCounter::key("k1", 60_000), "weight#k1#60000");
        assert_eq!(WeightCounter::expires_at_s(60_500), 60 + 3600);
    }

    #[test]
    fn progress_is_a_valid_number() {
        assert_eq!(progress_text(0.5), "0.500000");
        assert_eq!(progress_text(f64::NAN), "0.000000");
        assert_eq!(progress_text(1e-300), "0.000000");
        assert_eq!(progress_text(7.0), "1.000000");
        assert_eq!(stored_progress(0.123_456_789), 0.123457);
    }
}
