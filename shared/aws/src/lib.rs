//! The service's ports on AWS: jobs, users, API keys and request bookkeeping in DynamoDB
//! ([`DynamoStore`]), the job queue on SQS ([`SqsQueue`]), result artifacts in S3
//! ([`S3Results`]), market data as monthly Parquet partitions in S3 with a DynamoDB catalog
//! ([`S3MarketData`]), the API-key master key from SSM ([`load_master_key`]) and the jobs table's
//! stream records ([`job_change`]).
//!
//! Every constructor takes the shared [`SdkConfig`] from [`load_sdk_config`], which honours
//! `AWS_ENDPOINT_URL` (moto locally), and its resource names from the environment the template
//! gives the functions (`JOBS_TABLE`, `JOBS_QUEUE_URL`, ...). Each `from_env` has a
//! `from_lookup` twin that takes the variables from a function instead (tests, tools).
//!
//! Every backend failure becomes a [`StoreError`] naming the service, the operation, the
//! resource and the SDK's own message; nothing here panics on a backend answer.
//!
//! # TLS
//!
//! The SDK crates are used without their default features: their default HTTPS client is
//! rustls on aws-lc, whose C build dominates compile time. [`config_loader`] installs the same
//! hyper 1 / rustls client on `ring` instead.

mod dynamo;
mod error;
mod item;
mod market;
mod s3;
mod sqs;
mod stream;
mod sweep_queue;
mod webhook;

use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::Provider;
use pipai_service::secrets::MasterKey;

pub use aws_config;
pub use dynamo::DynamoStore;
pub use market::S3MarketData;
pub use pipai_service::ports::StoreError;
pub use pipai_service::settings::ConfigError;
pub use s3::S3Results;
pub use sqs::SqsQueue;
pub use stream::job_change;
pub use sweep_queue::{ended_sweep, inserted_sweep, SqsSweepQueue};
pub use webhook::{HttpWebhookSender, SystemResolver};

/// The default loader (`BehaviorVersion::latest()`, credentials, region and `AWS_ENDPOINT_URL`
/// from the environment as usual) with this crate's HTTPS client (rustls on ring). Add
/// settings before `.load()`, e.g. an explicit endpoint and credentials in tests.
pub fn config_loader() -> ConfigLoader {
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http)
}

/// The shared SDK configuration every constructor here takes.
pub async fn load_sdk_config() -> SdkConfig {
    config_loader().load().await
}

/// Environment lookup: a variable that is unset, or set to the empty string, is absent.
pub(crate) fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub(crate) fn required(lookup: &dyn Fn(&str) -> Option<String>, name: &'static str) -> Result<String, ConfigError> {
    lookup(name).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name))
}

/// The master key that encrypts API key secrets: `API_KEY_MASTER_KEY` (base64 of 32 bytes) when
/// set, else the SSM SecureString named by `API_KEY_MASTER_KEY_PARAM`, read with decryption.
pub async fn load_master_key(sdk: &SdkConfig) -> Result<MasterKey, ConfigError> {
    load_master_key_from_lookup(sdk, &env_lookup).await
}

/// [`load_master_key`] with the variables from `lookup`.
pub async fn load_master_key_from_lookup(
    sdk: &SdkConfig,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<MasterKey, ConfigError> {
    if let Some(text) = lookup("API_KEY_MASTER_KEY").filter(|v| !v.is_empty()) {
        return MasterKey::from_base64(&text).map_err(|e| ConfigError::invalid("API_KEY_MASTER_KEY", e.to_string()));
    }
    let name = lookup("API_KEY_MASTER_KEY_PARAM")
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing("API_KEY_MASTER_KEY_PARAM"))?;
    let client = aws_sdk_ssm::Client::new(sdk);
    let out = client.get_parameter().name(&name).with_decryption(true).send().await.map_err(|e| {
        ConfigError::invalid(
            "API_KEY_MASTER_KEY_PARAM",
            format!("ssm GetParameter {name}: {}", aws_sdk_ssm::error::DisplayErrorContext(&e)),
        )
    })?;
    let value = out.parameter().and_then(|p| p.value()).ok_or_else(|| {
        ConfigError::invalid("API_KEY_MASTER_KEY_PARAM", format!("ssm parameter {name} has no value"))
    })?;
    MasterKey::from_base64(value)
        .map_err(|e| ConfigError::invalid("API_KEY_MASTER_KEY_PARAM", format!("ssm parameter {name}: {e}")))
}

pub(crate) use pipai_service::clock::now_ms;

/// A random `u64` (for retry jitter only) without a random-number crate.
pub(crate) fn jitter() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms());
    h.finish()
}

/// The API's dependencies on AWS, from the environment: what every API function serves with.
pub async fn api_from_env(
    sdk: &SdkConfig,
    settings: pipai_service::ApiSettings,
) -> Result<pipai_service::Api<DynamoStore, S3Results, S3MarketData>, ConfigError> {
    // `notify_url` host names are resolved (and their addresses checked) at creation.
    let webhooks = pipai_service::webhook::WebhookSettings {
        resolver: pipai_service::webhook::Resolver::new(SystemResolver),
        ..settings.webhooks
    };
    let settings = pipai_service::ApiSettings { webhooks, ..settings };
    Ok(pipai_service::Api {
        store: DynamoStore::from_env(sdk)?,
        results: S3Results::from_env(sdk)?,
        market: S3MarketData::from_env(sdk)?,
        master: load_master_key(sdk).await?,
        settings,
    })
}
