//! [`JobStore`], [`KeyStore`] and [`RequestLog`] on DynamoDB.
//!
//! # Items
//!
//! As the structs in `items` store them (`serde_dynamo`):
//!
//! JobsTable (key `job_id`): `job_id`, `user_id`, `status`, `template_id`, `config` (JSON text),
//! `submitted_at` (ms), `submitted_key` = `{submitted_at:013}#{job_id}`, `user_status` =
//! `{user_id}#{status}`, `user_template` = `{user_id}#{template_id}`, `started_at`?,
//! `finished_at`?, `progress`, `error` {code, message}?, `summary` (JSON text)?, `run_token`?,
//! `lease_until`?, `attempts`, `slot_released`, and `expires_at` (epoch seconds, DynamoDB TTL)
//! once the job is terminal. The GSIs `by_user`, `by_user_status` and `by_user_template` are keyed
//! on `user_id` / `user_status` / `user_template` with sort key `submitted_key`.
//!
//! UsersTable (key `user_id`): `active_jobs`. ApiKeysTable (key `key_id`): `user_id`,
//! `secret_ciphertext`, `status`, `created_at`, `label`. RequestsTable (key `pk`):
//! `sig#{key_id}#{signature}` replay items and `weight#{key_id}#{window_start_ms}` counters, both
//! with `expires_at` (seconds). StrategiesTable (key `strategy_id`): `user_id`, `name`,
//! `description`?, `version`, `config` (JSON text), `created_at`, `updated_at` (ms) and
//! `updated_key` = `{updated_at:013}#{strategy_id}`; GSI `by_user_updated` on `user_id` /
//! `updated_key` (see `strategies`).
//!
//! # Writes
//!
//! Every state change is one conditional write (or one transaction). A status change also
//! rewrites `user_status`, which is derived from the job's `user_id`: an update expression cannot
//! concatenate strings, so the store needs the owner before writing. It takes it from a small
//! per-process cache (filled by every read and write of the job) or reads the item, and the
//! condition includes `user_id = :u`, so a wrong owner can never be written. A failed condition
//! returns the item as it was (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), which classifies
//! the failure without a second read.
//!
//! A lease is live while `lease_until > now` (as in the in-memory store): a job whose
//! `lease_until <= now` can be claimed again or failed as abandoned.
//!
//! Transactions cancelled by a conflicting concurrent transaction (`TransactionConflict`, which
//! real DynamoDB raises when two transactions touch the same users item at once) are retried with
//! jittered exponential backoff; only condition failures become outcomes.
//!
//! # Files
//!
//! `items` (the item structs and their keys), `transact` (conditional writes, owner-checked
//! updates, transactions), `jobs` ([`JobStore`]), `list` (list planning and queries), `slots`
//! (the users' active-job counters), `keys` ([`KeyStore`]), `requests` ([`RequestLog`]),
//! `strategies` ([`StrategyStore`]), `sweeps` (`SweepStore`: SweepsTable, optional `SWEEPS_TABLE`).
//! `delete` (the conditional delete of a terminal job, and the batched read compare uses).
//!
//! [`JobStore`]: pipai_service::ports::JobStore
//! [`KeyStore`]: pipai_service::ports::KeyStore
//! [`RequestLog`]: pipai_service::ports::RequestLog
//! [`StrategyStore`]: pipai_service::ports::StrategyStore

mod delete;
mod items;
mod jobs;
mod keys;
mod list;
mod notifications;
mod requests;
mod slots;
mod strategies;
mod sweeps;
mod transact;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use pipai_service::model::JobRecord;
use pipai_service::ports::StoreError;
use pipai_service::UserId;

use crate::error::{bad_item, store_err};
use crate::item::{s, Item};
use crate::{env_lookup, required, ConfigError};

pub(crate) use items::JobImage;
use items::{from_item, JobItem, Retention, UserItem};

const DEFAULT_RETENTION_DAYS: i64 = 90;
/// How many job owners the per-process cache remembers before it starts over.
const OWNER_CACHE_MAX: usize = 4096;

/// Jobs, users' active-job counters, API keys and request bookkeeping in DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    jobs_table: String,
    users_table: String,
    keys_table: String,
    requests_table: String,
    strategies_table: String,
    /// `SWEEPS_TABLE` (optional: only the sweep functions need it; see `sweeps`).
    sweeps_table: Option<String>,
    retention: Retention,
    /// job id -> user id (a job's owner never changes; the conditions check it anyway).
    owners: Arc<Mutex<HashMap<String, String>>>,
}

impl DynamoStore {
    /// From `JOBS_TABLE`, `USERS_TABLE`, `API_KEYS_TABLE`, `REQUESTS_TABLE`, `STRATEGIES_TABLE` and the optional
    /// `RESULT_RETENTION_DAYS` (default 90): how long a terminal job is kept (its TTL).
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Self::from_lookup(sdk, &env_lookup)
    }

    /// [`DynamoStore::from_env`] with the variables from `lookup`.
    pub fn from_lookup(sdk: &SdkConfig, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let days = match lookup("RESULT_RETENTION_DAYS").filter(|v| !v.is_empty()) {
            None => DEFAULT_RETENTION_DAYS,
            Some(v) => v.trim().parse::<i64>().ok().filter(|d| (1..=36_500).contains(d)).ok_or_else(|| {
                ConfigError::invalid(
                    "RESULT_RETENTION_DAYS",
                    format!("must be a whole number of days from 1 to 36500, not {v:?}"),
                )
            })?,
        };
        Ok(DynamoStore {
            client: Client::new(sdk),
            jobs_table: required(lookup, "JOBS_TABLE")?,
            users_table: required(lookup, "USERS_TABLE")?,
            keys_table: required(lookup, "API_KEYS_TABLE")?,
            requests_table: required(lookup, "REQUESTS_TABLE")?,
            strategies_table: required(lookup, "STRATEGIES_TABLE")?,
            sweeps_table: lookup("SWEEPS_TABLE").filter(|v| !v.is_empty()),
            retention: Retention { days },
            owners: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The SDK client (for tools and tests).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A strongly consistent GetItem of the item whose key attribute `key_name` is `key`.
    async fn get_item_by(&self, table: &str, key_name: &str, key: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key(key_name, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_err("dynamodb", "GetItem", table, e))?;
        Ok(out.item)
    }

    /// The user's current `active_jobs` counter (0 when the user has no item yet).
    pub async fn active_jobs(&self, user_id: &UserId) -> Result<u32, StoreError> {
        match self.get_item_by(&self.users_table, "user_id", user_id.as_str()).await? {
            None => Ok(0),
            Some(item) => {
                let user: UserItem = from_item(&item).map_err(|e| bad_item("user", &self.users_table, e))?;
                Ok(user.active_jobs.max(0) as u32)
            }
        }
    }

    fn remember_owner(&self, id: &str, user_id: &str) {
        if let Ok(mut m) = self.owners.lock() {
            if m.len() >= OWNER_CACHE_MAX {
                m.clear();
            }
            m.insert(id.to_string(), user_id.to_string());
        }
    }

    fn forget_owner(&self, id: &str) {
        if let Ok(mut m) = self.owners.lock() {
            m.remove(id);
        }
    }

    fn cached_owner(&self, id: &str) -> Option<String> {
        self.owners.lock().ok().and_then(|m| m.get(id).cloned())
    }

    async fn get_job_item(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let item = self.get_item_by(&self.jobs_table, "job_id", id).await?;
        if let Some(user) = item.as_ref().and_then(|i| i.get("user_id")).and_then(|v| v.as_s().ok()) {
            self.remember_owner(id, user);
        }
        Ok(item)
    }

    /// A job item as the record it stores.
    fn parse_job(&self, item: &Item) -> Result<JobRecord, StoreError> {
        from_item::<JobItem>(item).and_then(JobRecord::try_from).map_err(|e| {
            let id = item.get("job_id").and_then(|v| v.as_s().ok()).map_or("?", String::as_str);
            bad_item("job", &self.jobs_table, format!("job {id}: {e}"))
        })
    }
}
