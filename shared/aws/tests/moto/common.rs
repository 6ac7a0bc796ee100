//! The moto server the tests run against.
//!
//! When `AWS_ENDPOINT_URL` and `JOBS_TABLE` are set (infra/test.sh, or a developer who sourced
//! `.local/env`), the tests use those resources. Otherwise the first test starts a private moto
//! on a free port through the project's scripts (`infra/moto.sh start`, then
//! `infra/create_resources.py --env-file`), once per test binary, and a watchdog stops it when
//! the test process exits. That moto serializes DynamoDB requests (`infra/moto-python/sitecustomize.py`, set up by `infra/moto.sh`);
//! a moto given through the environment must do the same, or the concurrency tests fail. Every test uses fresh random ids, so tests run in parallel and can
//! share one moto with other suites.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use pipai_aws::aws_config::{Region, SdkConfig};
use pipai_engine::JobConfig;
use pipai_service::model::ResultSummary;
use pipai_service::{KeyId, RunToken, UserId};
use serde_json::{json, Value};

/// Every variable the crate or the tests read.
const NAMES: [&str; 16] = [
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "JOBS_TABLE",
    "USERS_TABLE",
    "API_KEYS_TABLE",
    "REQUESTS_TABLE",
    "STRATEGIES_TABLE",
    "SWEEPS_TABLE",
    "MARKET_CATALOG_TABLE",
    "JOBS_QUEUE_URL",
    "RESULTS_BUCKET",
    "MARKET_DATA_BUCKET",
    "RESULT_RETENTION_DAYS",
    "API_KEY_MASTER_KEY_PARAM",
];

pub struct Moto {
    pub vars: HashMap<String, String>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

fn from_process_env() -> Option<HashMap<String, String>> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    get("AWS_ENDPOINT_URL")?;
    get("JOBS_TABLE")?;
    Some(NAMES.iter().filter_map(|k| get(k).map(|v| (k.to_string(), v))).collect())
}

fn start_private_moto() -> HashMap<String, String> {
    crate::private_moto::start(&repo()).1
}

pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| Moto { vars: from_process_env().unwrap_or_else(start_private_moto) })
}

impl Moto {
    pub fn var(&self, name: &str) -> String {
        self.vars.get(name).cloned().unwrap_or_else(|| panic!("{name} is not set for the tests"))
    }

    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |k: &str| self.vars.get(k).cloned()
    }
}

/// An SDK config for moto (built per test: SDK clients must not outlive a test's runtime).
pub async fn sdk() -> SdkConfig {
    let m = moto();
    pipai_aws::config_loader()
        .endpoint_url(m.var("AWS_ENDPOINT_URL"))
        .region(Region::new(m.vars.get("AWS_REGION").cloned().unwrap_or_else(|| "us-east-1".into())))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "pipai-aws-tests"))
        .load()
        .await
}

/// A fresh lowercase hex id, unique within the run and very likely across runs.
pub fn unique(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    format!("{prefix}{:016x}", h.finish())
}

pub use pipai_service::clock::now_ms;

/// A fresh user.
pub fn unique_user() -> UserId {
    unique("u_").parse().expect("a valid user id")
}

/// A fresh API key id.
pub fn unique_key() -> KeyId {
    unique("pk_").parse().expect("a valid key id")
}

/// A run token named by `name` (its hex, zero-padded to 16 digits): `token("a") == token("a")`.
pub fn token(name: &str) -> RunToken {
    format!("{:0>16}", name.bytes().map(|b| format!("{b:02x}")).collect::<String>())[..16]
        .parse()
        .expect("a valid run token")
}

/// A resolved config of `template_id` (which need not exist: stores do not validate configs).
pub fn config(template_id: &str) -> JobConfig {
    JobConfig {
        template_id: template_id.to_string(),
        params: serde_json::Map::new(),
        symbols: vec!["BTCUSDT".into()],
        timeframe: pipai_engine::Timeframe::H1,
        start: chrono::DateTime::from_timestamp_millis(1_735_689_600_000).unwrap(),
        end: chrono::DateTime::from_timestamp_millis(1_738_368_000_000).unwrap(),
        capital: "10000.00".parse().unwrap(),
        leverage: 1,
        fee_model: pipai_engine::FeeModel::FixedBps,
        fee_bps: Some("5".parse().unwrap()),
        slippage_bps: None,
        strategy_id: None,
    }
}

/// A done job's summary (the metrics of a run with no trades).
pub fn summary() -> Box<ResultSummary> {
    let values = pipai_engine::metrics::MetricValues::default();
    Box::new(ResultSummary {
        metrics: pipai_engine::result::Metrics::from_values(&values),
        structured_metrics: pipai_engine::result::StructuredMetrics::from_values(&values),
        summary: pipai_engine::result::Summary {
            final_equity: "10000.00".parse().unwrap(),
            bars: 744,
            first_bar_time: "2025-01-01T00:00:00Z".into(),
            last_bar_time: "2025-01-31T23:00:00Z".into(),
            stopped_reason: None,
            bankruptcy_shortfall: None,
        },
    })
}

// ---- DynamoDB stream records in Lambda's event shape ----

fn attr(v: &AttributeValue) -> Value {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b.as_ref()) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": image(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attr).collect::<Vec<_>>() }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        other => panic!("unexpected attribute value {other:?}"),
    }
}

fn image(m: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), attr(v))).collect())
}

/// A stream record as Lambda hands it to the function (adds `eventSourceARN`, which the Streams
/// API does not return).
fn lambda_record(r: &Record, stream_arn: &str) -> Value {
    let d = r.dynamodb().expect("stream record body");
    let mut body = json!({
        "ApproximateCreationDateTime": d.approximate_creation_date_time().map(|t| t.as_secs_f64()).unwrap_or(0.0),
        "Keys": image(d.keys().unwrap_or(&HashMap::new())),
        "SequenceNumber": d.sequence_number(),
        "SizeBytes": d.size_bytes().unwrap_or(0),
        "StreamViewType": d.stream_view_type().map(|v| v.as_str()),
    });
    if let Some(n) = d.new_image() {
        body["NewImage"] = image(n);
    }
    if let Some(o) = d.old_image() {
        body["OldImage"] = image(o);
    }
    json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|n| n.as_str()),
        "eventVersion": r.event_version(),
        "eventSource": r.event_source(),
        "awsRegion": r.aws_region(),
        "eventSourceARN": stream_arn,
        "dynamodb": body,
    })
}

/// The stream ARN of the table named by the variable `table_var`.
pub async fn stream_arn(sdk: &SdkConfig, table_var: &str) -> String {
    let table =
        aws_sdk_dynamodb::Client::new(sdk).describe_table().table_name(moto().var(table_var)).send().await.unwrap();
    table.table().and_then(|t| t.latest_stream_arn()).expect("the table has a stream").to_string()
}

/// Every record of the jobs table's stream so far (all shards, oldest first) about job `job_id`,
/// as Lambda would deliver them to the stream function.
pub async fn jobs_stream_records(sdk: &SdkConfig, job_id: &pipai_service::JobId) -> Vec<Value> {
    stream_records(sdk, "JOBS_TABLE", "job_id", job_id.as_str()).await
}

/// Every record of the stream of the table named by `table_var` so far (all shards, oldest
/// first) whose key attribute `key` is `value`, as Lambda would deliver them.
pub async fn stream_records(sdk: &SdkConfig, table_var: &str, key: &str, value: &str) -> Vec<Value> {
    let stream_arn = stream_arn(sdk, table_var).await;
    let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
    let description = streams.describe_stream().stream_arn(&stream_arn).send().await.unwrap();
    let mut ours = Vec::new();
    for shard in description.stream_description().map(|d| d.shards()).unwrap_or_default() {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&stream_arn)
            .shard_id(shard.shard_id().unwrap())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(it) = iterator {
            let page = streams.get_records().shard_iterator(it).limit(1000).send().await.unwrap();
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                let found = r.dynamodb().and_then(|d| d.keys()).and_then(|k| k.get(key)).and_then(|v| v.as_s().ok());
                if found.map(String::as_str) == Some(value) {
                    ours.push(lambda_record(r, &stream_arn));
                }
            }
            iterator = page.next_shard_iterator;
        }
    }
    ours
}
