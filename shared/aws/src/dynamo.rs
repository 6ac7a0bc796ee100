//! [`JobStore`], [`KeyStore`] and [`RequestLog`] on DynamoDB.
//!
//! # Items
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
//! with `expires_at` (seconds).
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use pipai_service::model::{ApiKeyRecord, JobError, JobRecord, JobStatus, KeyStatus};
use pipai_service::ports::{
    AbandonOutcome, CancelOutcome, ClaimOutcome, Completion, CreateOutcome, JobStore, KeyStore, ListQuery, RequestLog,
    StoreError,
};

use crate::error::{bad_item, store_err};
use crate::item::{b, get_n, get_s, n, opt_bool, opt_n, opt_s, s, Item};
use crate::{env_lookup, jitter, now_ms, required, ConfigError};

const DEFAULT_RETENTION_DAYS: i64 = 90;
/// How many job owners the per-process cache remembers before it starts over.
const OWNER_CACHE_MAX: usize = 4096;
/// Attempts of a transaction that keeps being cancelled by conflicting transactions.
const TRANSACTION_ATTEMPTS: u32 = 12;
/// Weight counters outlive their window by this much (any window up to an hour works).
const WEIGHT_TTL_S: i64 = 3600;
/// Largest `submitted_at` that keeps the 13-digit sort key in order (year 2286).
const MAX_KEY_MS: i64 = 9_999_999_999_999;

const CCF: &str = "ConditionalCheckFailed";

/// Jobs, users' active-job counters, API keys and request bookkeeping in DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    jobs_table: String,
    users_table: String,
    keys_table: String,
    requests_table: String,
    retention_days: i64,
    /// job id -> user id (a job's owner never changes; the conditions check it anyway).
    owners: Arc<Mutex<HashMap<String, String>>>,
}

impl DynamoStore {
    /// From `JOBS_TABLE`, `USERS_TABLE`, `API_KEYS_TABLE`, `REQUESTS_TABLE` and the optional
    /// `RESULT_RETENTION_DAYS` (default 90): how long a terminal job is kept (its TTL).
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Self::from_lookup(sdk, &env_lookup)
    }

    /// [`DynamoStore::from_env`] with the variables from `lookup`.
    pub fn from_lookup(sdk: &SdkConfig, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let retention_days = match lookup("RESULT_RETENTION_DAYS").filter(|v| !v.is_empty()) {
            None => DEFAULT_RETENTION_DAYS,
            Some(v) => v.trim().parse::<i64>().ok().filter(|d| (1..=36_500).contains(d)).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "RESULT_RETENTION_DAYS must be a whole number of days from 1 to 36500, not {v:?}"
                ))
            })?,
        };
        Ok(DynamoStore {
            client: Client::new(sdk),
            jobs_table: required(lookup, "JOBS_TABLE")?,
            users_table: required(lookup, "USERS_TABLE")?,
            keys_table: required(lookup, "API_KEYS_TABLE")?,
            requests_table: required(lookup, "REQUESTS_TABLE")?,
            retention_days,
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
            .map_err(|e| store_err("dynamodb", "GetItem", table, &e))?;
        Ok(out.item)
    }

    /// The user's current `active_jobs` counter (0 when the user has no item yet).
    pub async fn active_jobs(&self, user_id: &str) -> Result<u32, StoreError> {
        match self.get_item_by(&self.users_table, "user_id", user_id).await? {
            None => Ok(0),
            Some(item) => Ok(opt_n::<i64>(&item, "active_jobs")
                .map_err(|e| bad_item("user", &self.users_table, e))?
                .unwrap_or(0)
                .max(0) as u32),
        }
    }

    fn expires_at_s(&self, finished_ms: i64) -> i64 {
        finished_ms.div_euclid(1000) + self.retention_days * 86_400
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
        if let Some(user) = item.as_ref().and_then(|i| get_s(i, "user_id").ok()) {
            self.remember_owner(id, user);
        }
        Ok(item)
    }

    fn parse_job(&self, item: &Item) -> Result<JobRecord, StoreError> {
        job_from_item(item).map_err(|e| bad_item("job", &self.jobs_table, e))
    }

    /// A conditional update of job `id` built by `build(owner)`, which must include
    /// `user_id = :u` in its condition (and bind `:u` to the owner). Returns the new item, or
    /// the item as it was when the condition failed (`None`: no such job).
    async fn transition(
        &self,
        id: &str,
        op: &str,
        build: impl Fn(&str) -> UpdateItemFluentBuilder,
    ) -> Result<Transition, StoreError> {
        let mut owner = self.cached_owner(id);
        for _ in 0..4 {
            let user = match owner.take() {
                Some(u) => u,
                None => match self.get_job_item(id).await? {
                    None => return Ok(Transition::Failed(None)),
                    Some(item) => {
                        get_s(&item, "user_id").map_err(|e| bad_item("job", &self.jobs_table, e))?.to_string()
                    }
                },
            };
            let result = build(&user)
                .table_name(&self.jobs_table)
                .key("job_id", s(id))
                .expression_attribute_values(":u", s(&user))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let current = match result {
                Ok(out) => {
                    self.remember_owner(id, &user);
                    return Ok(Transition::Updated(out.attributes.unwrap_or_default()));
                }
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => match c.item() {
                        Some(item) => Some(item.clone()),
                        // Not every DynamoDB implementation returns the old item: read it.
                        None => self.get_job_item(id).await?,
                    },
                    _ => return Err(store_err("dynamodb", &format!("UpdateItem ({op})"), &self.jobs_table, &e)),
                },
            };
            match current {
                None => {
                    self.forget_owner(id);
                    return Ok(Transition::Failed(None));
                }
                Some(item) => {
                    let actual = get_s(&item, "user_id").map_err(|e| bad_item("job", &self.jobs_table, e))?;
                    if actual != user {
                        // The cached owner was wrong (an id reused after its TTL): try again.
                        self.remember_owner(id, actual);
                        owner = Some(actual.to_string());
                        continue;
                    }
                    return Ok(Transition::Failed(Some(item)));
                }
            }
        }
        Err(StoreError(format!("dynamodb UpdateItem ({op}) on {}: job {id} changed owner repeatedly", self.jobs_table)))
    }

    /// Runs a transaction, retrying cancellations caused by conflicting transactions. `Ok(None)`:
    /// committed. `Ok(Some(codes))`: cancelled, with each item's reason code (`"None"`,
    /// `"ConditionalCheckFailed"`, ...; empty when the service gave no reasons).
    async fn transact(&self, op: &str, items: Vec<TransactWriteItem>) -> Result<Option<Vec<String>>, StoreError> {
        let resource = format!("{} + {}", self.jobs_table, self.users_table);
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let result = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let err = match result {
                Ok(_) => return Ok(None),
                Err(e) => e,
            };
            let retry = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    let codes: Vec<String> =
                        c.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None").to_string()).collect();
                    let transient = codes.iter().any(|c| {
                        matches!(
                            c.as_str(),
                            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                        )
                    });
                    if !transient {
                        return Ok(Some(codes));
                    }
                    true
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
                _ => false,
            };
            if !retry {
                return Err(store_err("dynamodb", &format!("TransactWriteItems ({op})"), &resource, &err));
            }
            let cap = 10u64 << attempt.min(6);
            tokio::time::sleep(Duration::from_millis(2 + jitter() % cap)).await;
        }
        Err(StoreError(format!(
            "dynamodb TransactWriteItems ({op}) on {resource}: still conflicting with other transactions after {TRANSACTION_ATTEMPTS} attempts"
        )))
    }

    async fn query_page(
        &self,
        q: &ListQuery,
        plan: &ListPlan,
        start: Option<Item>,
        page_limit: i32,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let mut req = self
            .client
            .query()
            .table_name(&self.jobs_table)
            .index_name(plan.index)
            .scan_index_forward(false)
            .limit(page_limit)
            .set_exclusive_start_key(start)
            .expression_attribute_names("#pk", plan.pk_attr)
            .expression_attribute_values(":pk", s(&plan.pk_value));
        let mut key_condition = "#pk = :pk".to_string();
        if plan.lo.is_some() || plan.hi.is_some() {
            req = req.expression_attribute_names("#sk", "submitted_key");
        }
        match (&plan.lo, &plan.hi) {
            (Some(lo), Some(hi)) => {
                key_condition.push_str(" AND #sk BETWEEN :lo AND :hi");
                req = req.expression_attribute_values(":lo", s(lo)).expression_attribute_values(":hi", s(hi));
            }
            (Some(lo), None) => {
                key_condition.push_str(" AND #sk >= :lo");
                req = req.expression_attribute_values(":lo", s(lo));
            }
            (None, Some(hi)) => {
                key_condition.push_str(" AND #sk < :hi");
                req = req.expression_attribute_values(":hi", s(hi));
            }
            (None, None) => {}
        }
        req = req.key_condition_expression(key_condition);
        if let (Some(_), Some(t)) = (&q.status, &q.template_id) {
            req = req.filter_expression("template_id = :t").expression_attribute_values(":t", s(t));
        }
        let out = req
            .send()
            .await
            .map_err(|e| store_err("dynamodb", &format!("Query {}", plan.index), &self.jobs_table, &e))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }
}

enum Transition {
    Updated(Item),
    Failed(Option<Item>),
}

/// Which index and sort-key range a list query reads.
struct ListPlan {
    index: &'static str,
    pk_attr: &'static str,
    pk_value: String,
    /// Inclusive lower bound of `submitted_key`.
    lo: Option<String>,
    /// Exclusive upper bound (queried with BETWEEN when `lo` is set, the equal key dropped).
    hi: Option<String>,
}

fn plan_list(q: &ListQuery) -> Option<ListPlan> {
    let (index, pk_attr, pk_value) = match (&q.status, &q.template_id) {
        (Some(st), _) => ("by_user_status", "user_status", format!("{}#{}", q.user_id, st.as_str())),
        (None, Some(t)) => ("by_user_template", "user_template", format!("{}#{}", q.user_id, t)),
        (None, None) => ("by_user", "user_id", q.user_id.clone()),
    };
    let lo = q.from_ms.filter(|&f| f > 0).map(|f| format!("{:013}#", f.min(MAX_KEY_MS + 1)));
    let mut hi: Option<String> = None;
    if let Some(t) = q.to_ms {
        if t <= 0 {
            return None;
        }
        if t <= MAX_KEY_MS {
            hi = Some(format!("{t:013}#"));
        }
    }
    if let Some(a) = &q.after {
        if a.submitted_at_ms < 0 {
            return None;
        }
        let k = submitted_key(a.submitted_at_ms.min(MAX_KEY_MS), &a.id);
        hi = Some(match hi {
            Some(h) if h <= k => h,
            _ => k,
        });
    }
    if let (Some(l), Some(h)) = (&lo, &hi) {
        if l >= h {
            return None;
        }
    }
    Some(ListPlan { index, pk_attr, pk_value, lo, hi })
}

pub(crate) fn submitted_key(submitted_at_ms: i64, id: &str) -> String {
    format!("{submitted_at_ms:013}#{id}")
}

fn progress_text(p: f64) -> String {
    let p = if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 };
    format!("{p:.6}")
}

fn error_value(e: &JobError) -> AttributeValue {
    AttributeValue::M(HashMap::from([("code".to_string(), s(&e.code)), ("message".to_string(), s(&e.message))]))
}

fn job_item(job: &JobRecord, retention_days: i64) -> Result<Item, String> {
    let mut it = Item::new();
    let mut put = |k: &str, v: AttributeValue| {
        it.insert(k.to_string(), v);
    };
    put("job_id", s(&job.id));
    put("user_id", s(&job.user_id));
    put("status", s(job.status.as_str()));
    put("template_id", s(&job.template_id));
    put("config", s(serde_json::to_string(&job.config).map_err(|e| format!("config: {e}"))?));
    put("submitted_at", n(job.submitted_at_ms));
    put("submitted_key", s(submitted_key(job.submitted_at_ms, &job.id)));
    put("user_status", s(format!("{}#{}", job.user_id, job.status.as_str())));
    put("user_template", s(format!("{}#{}", job.user_id, job.template_id)));
    if let Some(t) = job.started_at_ms {
        put("started_at", n(t));
    }
    if let Some(t) = job.finished_at_ms {
        put("finished_at", n(t));
        if job.status.is_terminal() {
            put("expires_at", n(t.div_euclid(1000) + retention_days * 86_400));
        }
    }
    put("progress", AttributeValue::N(progress_text(job.progress)));
    if let Some(e) = &job.error {
        put("error", error_value(e));
    }
    if let Some(summary) = &job.summary {
        put("summary", s(serde_json::to_string(summary).map_err(|e| format!("summary: {e}"))?));
    }
    if let Some(t) = &job.run_token {
        put("run_token", s(t));
    }
    if let Some(t) = job.lease_until_ms {
        put("lease_until", n(t));
    }
    put("attempts", n(job.attempts));
    put("slot_released", b(job.slot_released));
    Ok(it)
}

pub(crate) fn job_from_item(item: &Item) -> Result<JobRecord, String> {
    let id = get_s(item, "job_id")?.to_string();
    let ctx = |e: String| format!("job {id}: {e}");
    let status: JobStatus = get_s(item, "status").map_err(ctx)?.parse().map_err(ctx)?;
    let config = serde_json::from_str(get_s(item, "config").map_err(ctx)?).map_err(|e| ctx(format!("config: {e}")))?;
    let summary = match opt_s(item, "summary").map_err(ctx)? {
        Some(text) => Some(serde_json::from_str(text).map_err(|e| ctx(format!("summary: {e}")))?),
        None => None,
    };
    let error = match item.get("error") {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::M(m)) => Some(JobError {
            code: get_s(m, "code").map_err(|e| ctx(format!("error: {e}")))?.to_string(),
            message: get_s(m, "message").map_err(|e| ctx(format!("error: {e}")))?.to_string(),
        }),
        Some(other) => return Err(ctx(format!("error is not a map: {other:?}"))),
    };
    Ok(JobRecord {
        user_id: get_s(item, "user_id").map_err(ctx)?.to_string(),
        status,
        template_id: get_s(item, "template_id").map_err(ctx)?.to_string(),
        config,
        submitted_at_ms: get_n(item, "submitted_at").map_err(ctx)?,
        started_at_ms: opt_n(item, "started_at").map_err(ctx)?,
        finished_at_ms: opt_n(item, "finished_at").map_err(ctx)?,
        progress: opt_n(item, "progress").map_err(ctx)?.unwrap_or(0.0),
        error,
        summary,
        run_token: opt_s(item, "run_token").map_err(ctx)?.map(str::to_string),
        lease_until_ms: opt_n(item, "lease_until").map_err(ctx)?,
        attempts: opt_n(item, "attempts").map_err(ctx)?.unwrap_or(0),
        slot_released: opt_bool(item, "slot_released").map_err(ctx)?.unwrap_or(false),
        id,
    })
}

fn status_of(item: &Item) -> Result<JobStatus, String> {
    get_s(item, "status")?.parse()
}

/// `Some(until)` when the item is running under a lease that is live at `now_ms`.
fn live_lease(item: &Item, now_ms: i64) -> Result<Option<i64>, String> {
    if status_of(item)? != JobStatus::Running {
        return Ok(None);
    }
    Ok(opt_n::<i64>(item, "lease_until")?.filter(|&until| until > now_ms))
}

fn build_err(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("dynamodb: could not build {what}: {e}"))
}

impl JobStore for DynamoStore {
    async fn create_job(&self, job: &JobRecord, max_active: u32) -> Result<CreateOutcome, StoreError> {
        let item = job_item(job, self.retention_days).map_err(|e| StoreError(format!("job {}: {e}", job.id)))?;
        let put = Put::builder()
            .table_name(&self.jobs_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(job_id)")
            .build()
            .map_err(|e| build_err("Put", e))?;
        let take_slot = Update::builder()
            .table_name(&self.users_table)
            .key("user_id", s(&job.user_id))
            .update_expression("SET active_jobs = if_not_exists(active_jobs, :zero) + :one")
            .condition_expression("attribute_not_exists(active_jobs) OR active_jobs < :max")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max_active))
            .build()
            .map_err(|e| build_err("Update", e))?;
        let items =
            vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(take_slot).build()];
        let codes = match self.transact("create_job", items).await? {
            None => {
                self.remember_owner(&job.id, &job.user_id);
                return Ok(CreateOutcome::Created);
            }
            Some(codes) => codes,
        };
        let code = |i: usize| codes.get(i).map(String::as_str);
        if code(0) == Some(CCF) {
            return Ok(CreateOutcome::IdTaken);
        }
        if code(1) == Some(CCF) {
            return Ok(CreateOutcome::TooManyActive);
        }
        if codes.is_empty() {
            // No reasons given: tell the two conditions apart by reading.
            if self.get_job_item(&job.id).await?.is_some() {
                return Ok(CreateOutcome::IdTaken);
            }
            if self.active_jobs(&job.user_id).await? >= max_active {
                return Ok(CreateOutcome::TooManyActive);
            }
        }
        Err(StoreError(format!(
            "dynamodb TransactWriteItems (create_job) on {} + {}: cancelled for reasons {codes:?}",
            self.jobs_table, self.users_table
        )))
    }

    async fn get_job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        match self.get_job_item(id).await? {
            None => Ok(None),
            Some(item) => self.parse_job(&item).map(Some),
        }
    }

    async fn list_jobs(&self, q: &ListQuery) -> Result<Vec<JobRecord>, StoreError> {
        let mut out = Vec::new();
        if q.limit == 0 {
            return Ok(out);
        }
        let Some(plan) = plan_list(q) else { return Ok(out) };
        let filtered = q.status.is_some() && q.template_id.is_some();
        let mut start: Option<Item> = None;
        loop {
            let want = q.limit - out.len();
            // Without a filter every item read matches: read what is missing (+1 for a possible
            // item equal to the exclusive upper bound). With one, read ahead.
            let page_limit = if filtered { want.saturating_mul(4).clamp(20, 1000) } else { (want + 1).min(1000) };
            let (items, last) = self.query_page(q, &plan, start, page_limit as i32).await?;
            for item in &items {
                let key = get_s(item, "submitted_key").map_err(|e| bad_item("job", &self.jobs_table, e))?;
                if plan.hi.as_deref() == Some(key) {
                    continue;
                }
                out.push(self.parse_job(item)?);
                if out.len() == q.limit {
                    return Ok(out);
                }
            }
            match last {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn cancel_job(&self, id: &str, user_id: &str, now_ms: i64) -> Result<CancelOutcome, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.jobs_table)
            .key("job_id", s(id))
            .update_expression("SET #status = :cancelled, user_status = :us, finished_at = :now, expires_at = :exp")
            .condition_expression("user_id = :u AND #status IN (:queued, :running)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", s(JobStatus::Cancelled.as_str()))
            .expression_attribute_values(":queued", s(JobStatus::Queued.as_str()))
            .expression_attribute_values(":running", s(JobStatus::Running.as_str()))
            .expression_attribute_values(":us", s(format!("{user_id}#{}", JobStatus::Cancelled.as_str())))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":exp", n(self.expires_at_s(now_ms)))
            .expression_attribute_values(":u", s(user_id))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let current = match result {
            Ok(out) => {
                let job = self.parse_job(&out.attributes.unwrap_or_default())?;
                return Ok(CancelOutcome::Cancelled(Box::new(job)));
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => match c.item() {
                    Some(item) => Some(item.clone()),
                    None => self.get_job_item(id).await?,
                },
                _ => return Err(store_err("dynamodb", "UpdateItem (cancel_job)", &self.jobs_table, &e)),
            },
        };
        let Some(item) = current else { return Ok(CancelOutcome::NotFound) };
        let job = self.parse_job(&item)?;
        if job.user_id != user_id {
            return Ok(CancelOutcome::NotFound);
        }
        if job.status.is_terminal() {
            return Ok(CancelOutcome::AlreadyTerminal(job.status));
        }
        Err(StoreError(format!(
            "dynamodb UpdateItem (cancel_job) on {}: condition failed although job {id} is {}",
            self.jobs_table, job.status
        )))
    }

    async fn claim_job(&self, id: &str, token: &str, now_ms: i64, lease_ms: i64) -> Result<ClaimOutcome, StoreError> {
        for _ in 0..3 {
            let transition = self
                .transition(id, "claim_job", |user| {
                    self.client
                        .update_item()
                        .update_expression(
                            "SET #status = :running, user_status = :us, started_at = if_not_exists(started_at, :now), \
                             run_token = :token, lease_until = :lease, attempts = if_not_exists(attempts, :zero) + :one",
                        )
                        .condition_expression(
                            "user_id = :u AND (#status = :queued OR (#status = :running AND \
                             (attribute_not_exists(lease_until) OR lease_until <= :now)))",
                        )
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":running", s(JobStatus::Running.as_str()))
                        .expression_attribute_values(":queued", s(JobStatus::Queued.as_str()))
                        .expression_attribute_values(":us", s(format!("{user}#{}", JobStatus::Running.as_str())))
                        .expression_attribute_values(":now", n(now_ms))
                        .expression_attribute_values(":token", s(token))
                        .expression_attribute_values(":lease", n(now_ms.saturating_add(lease_ms)))
                        .expression_attribute_values(":zero", n(0))
                        .expression_attribute_values(":one", n(1))
                })
                .await?;
            match transition {
                Transition::Updated(item) => return Ok(ClaimOutcome::Claimed(Box::new(self.parse_job(&item)?))),
                Transition::Failed(None) => return Ok(ClaimOutcome::NotFound),
                Transition::Failed(Some(item)) => {
                    let status = status_of(&item).map_err(|e| bad_item("job", &self.jobs_table, e))?;
                    if status.is_terminal() {
                        return Ok(ClaimOutcome::Terminal(status));
                    }
                    if let Some(until_ms) =
                        live_lease(&item, now_ms).map_err(|e| bad_item("job", &self.jobs_table, e))?
                    {
                        return Ok(ClaimOutcome::Leased { until_ms });
                    }
                    // Changed between the write and its evaluation: try again.
                }
            }
        }
        Err(StoreError(format!("dynamodb UpdateItem (claim_job) on {}: job {id} kept changing", self.jobs_table)))
    }

    async fn record_progress(
        &self,
        id: &str,
        token: &str,
        progress: f64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.jobs_table)
            .key("job_id", s(id))
            .update_expression("SET progress = :p, lease_until = :lease")
            .condition_expression("#status = :running AND run_token = :token")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":p", AttributeValue::N(progress_text(progress)))
            .expression_attribute_values(":lease", n(now_ms.saturating_add(lease_ms)))
            .expression_attribute_values(":running", s(JobStatus::Running.as_str()))
            .expression_attribute_values(":token", s(token))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(store_err("dynamodb", "UpdateItem (record_progress)", &self.jobs_table, &e)),
            },
        }
    }

    async fn complete_job(
        &self,
        id: &str,
        token: &str,
        now_ms: i64,
        completion: &Completion,
    ) -> Result<bool, StoreError> {
        let (status, summary) = match completion {
            Completion::Done { summary } => (
                JobStatus::Done,
                Some(serde_json::to_string(summary).map_err(|e| StoreError(format!("job {id}: summary: {e}")))?),
            ),
            Completion::Failed(_) => (JobStatus::Failed, None),
        };
        let expires = self.expires_at_s(now_ms);
        let transition = self
            .transition(id, "complete_job", |user| {
                let req = self
                    .client
                    .update_item()
                    .condition_expression("user_id = :u AND #status = :running AND run_token = :token")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":running", s(JobStatus::Running.as_str()))
                    .expression_attribute_values(":token", s(token))
                    .expression_attribute_values(":st", s(status.as_str()))
                    .expression_attribute_values(":us", s(format!("{user}#{}", status.as_str())))
                    .expression_attribute_values(":now", n(now_ms))
                    .expression_attribute_values(":exp", n(expires));
                match (completion, &summary) {
                    (Completion::Failed(e), _) => req
                        .update_expression(
                            "SET #status = :st, user_status = :us, #error = :err, finished_at = :now, expires_at = :exp \
                             REMOVE lease_until",
                        )
                        .expression_attribute_names("#error", "error")
                        .expression_attribute_values(":err", error_value(e)),
                    (Completion::Done { .. }, summary) => req
                        .update_expression(
                            "SET #status = :st, user_status = :us, progress = :one, summary = :summary, \
                             finished_at = :now, expires_at = :exp REMOVE lease_until",
                        )
                        .expression_attribute_values(":one", n(1))
                        .expression_attribute_values(":summary", s(summary.clone().unwrap_or_default())),
                }
            })
            .await?;
        Ok(matches!(transition, Transition::Updated(_)))
    }

    async fn fail_abandoned(&self, id: &str, now_ms: i64, error: &JobError) -> Result<AbandonOutcome, StoreError> {
        let expires = self.expires_at_s(now_ms);
        for _ in 0..3 {
            let transition = self
                .transition(id, "fail_abandoned", |user| {
                    self.client
                        .update_item()
                        .update_expression(
                            "SET #status = :failed, user_status = :us, #error = :err, finished_at = :now, expires_at = :exp \
                             REMOVE lease_until",
                        )
                        .condition_expression(
                            "user_id = :u AND (#status = :queued OR (#status = :running AND \
                             (attribute_not_exists(lease_until) OR lease_until <= :now)))",
                        )
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_names("#error", "error")
                        .expression_attribute_values(":failed", s(JobStatus::Failed.as_str()))
                        .expression_attribute_values(":queued", s(JobStatus::Queued.as_str()))
                        .expression_attribute_values(":running", s(JobStatus::Running.as_str()))
                        .expression_attribute_values(":us", s(format!("{user}#{}", JobStatus::Failed.as_str())))
                        .expression_attribute_values(":err", error_value(error))
                        .expression_attribute_values(":now", n(now_ms))
                        .expression_attribute_values(":exp", n(expires))
                })
                .await?;
            match transition {
                Transition::Updated(_) => return Ok(AbandonOutcome::Failed),
                Transition::Failed(None) => return Ok(AbandonOutcome::NotFound),
                Transition::Failed(Some(item)) => {
                    let status = status_of(&item).map_err(|e| bad_item("job", &self.jobs_table, e))?;
                    if status.is_terminal() {
                        return Ok(AbandonOutcome::AlreadyTerminal);
                    }
                    if let Some(until_ms) =
                        live_lease(&item, now_ms).map_err(|e| bad_item("job", &self.jobs_table, e))?
                    {
                        return Ok(AbandonOutcome::StillLeased { until_ms });
                    }
                }
            }
        }
        Err(StoreError(format!("dynamodb UpdateItem (fail_abandoned) on {}: job {id} kept changing", self.jobs_table)))
    }

    async fn release_slot(&self, id: &str, user_id: &str) -> Result<bool, StoreError> {
        let flag_condition = "user_id = :u AND #status IN (:done, :failed, :cancelled) \
                              AND (attribute_not_exists(slot_released) OR slot_released = :false)";
        // One set of values for the flag update, in the transaction and in the fallback below.
        let flag_values: std::collections::HashMap<String, AttributeValue> = [
            (":u", s(user_id)),
            (":done", s(JobStatus::Done.as_str())),
            (":failed", s(JobStatus::Failed.as_str())),
            (":cancelled", s(JobStatus::Cancelled.as_str())),
            (":true", b(true)),
            (":false", b(false)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let flag = Update::builder()
            .table_name(&self.jobs_table)
            .key("job_id", s(id))
            .update_expression("SET slot_released = :true")
            .condition_expression(flag_condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(flag_values.clone()))
            .build()
            .map_err(|e| build_err("Update", e))?;
        let give_back = Update::builder()
            .table_name(&self.users_table)
            .key("user_id", s(user_id))
            .update_expression("SET active_jobs = active_jobs - :one")
            .condition_expression("active_jobs > :zero")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .build()
            .map_err(|e| build_err("Update", e))?;
        let items = vec![
            TransactWriteItem::builder().update(flag).build(),
            TransactWriteItem::builder().update(give_back).build(),
        ];
        let codes = match self.transact("release_slot", items).await? {
            None => return Ok(true),
            Some(codes) => codes,
        };
        let job_failed = codes.first().map(String::as_str) == Some(CCF);
        let counter_failed = codes.get(1).map(String::as_str) == Some(CCF);
        if job_failed {
            return Ok(false);
        }
        if codes.is_empty() {
            // No reasons given: the job's condition is by far the likelier one.
            tracing::warn!(
                job_id = id,
                "release_slot: transaction cancelled without reasons; treating the slot as released"
            );
            return Ok(false);
        }
        if !counter_failed {
            return Err(StoreError(format!(
                "dynamodb TransactWriteItems (release_slot) on {} + {}: cancelled for reasons {codes:?}",
                self.jobs_table, self.users_table
            )));
        }
        // The counter is already 0 (it drifted): still mark the job, so this happens once.
        let result = self
            .client
            .update_item()
            .table_name(&self.jobs_table)
            .key("job_id", s(id))
            .update_expression("SET slot_released = :true")
            .condition_expression(flag_condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(flag_values.clone()))
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::warn!(
                    job_id = id,
                    user_id,
                    "release_slot: the user's active_jobs was already 0; marked the job released only"
                );
                Ok(true)
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(store_err("dynamodb", "UpdateItem (release_slot)", &self.jobs_table, &e)),
            },
        }
    }
}

fn key_item(key: &ApiKeyRecord) -> Item {
    Item::from([
        ("key_id".to_string(), s(&key.key_id)),
        ("user_id".to_string(), s(&key.user_id)),
        ("secret_ciphertext".to_string(), s(&key.secret_ciphertext)),
        ("status".to_string(), s(key_status_str(key.status))),
        ("created_at".to_string(), n(key.created_at_ms)),
        ("label".to_string(), s(&key.label)),
    ])
}

fn key_status_str(status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Active => "active",
        KeyStatus::Disabled => "disabled",
    }
}

fn key_from_item(item: &Item) -> Result<ApiKeyRecord, String> {
    let key_id = get_s(item, "key_id")?.to_string();
    let ctx = |e: String| format!("key {key_id}: {e}");
    let status = match get_s(item, "status").map_err(ctx)? {
        "active" => KeyStatus::Active,
        "disabled" => KeyStatus::Disabled,
        other => return Err(ctx(format!("unknown status {other:?}"))),
    };
    Ok(ApiKeyRecord {
        user_id: get_s(item, "user_id").map_err(ctx)?.to_string(),
        secret_ciphertext: get_s(item, "secret_ciphertext").map_err(ctx)?.to_string(),
        status,
        created_at_ms: opt_n(item, "created_at").map_err(ctx)?.unwrap_or(0),
        label: opt_s(item, "label").map_err(ctx)?.unwrap_or_default().to_string(),
        key_id,
    })
}

impl KeyStore for DynamoStore {
    async fn get_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let item = self.get_item_by(&self.keys_table, "key_id", key_id).await?;
        item.map(|item| key_from_item(&item).map_err(|e| bad_item("API key", &self.keys_table, e))).transpose()
    }

    async fn put_key(&self, key: &ApiKeyRecord) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.keys_table)
            .set_item(Some(key_item(key)))
            .condition_expression("attribute_not_exists(key_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(store_err("dynamodb", "PutItem", &self.keys_table, &e)),
            },
        }
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.keys_table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_err("dynamodb", "Scan", &self.keys_table, &e))?;
            for item in page.items() {
                out.push(key_from_item(item).map_err(|e| bad_item("API key", &self.keys_table, e))?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(out)
    }

    async fn set_key_status(&self, key_id: &str, status: KeyStatus) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.keys_table)
            .key("key_id", s(key_id))
            .update_expression("SET #status = :s")
            .condition_expression("attribute_exists(key_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s(key_status_str(status)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(store_err("dynamodb", "UpdateItem (set_key_status)", &self.keys_table, &e)),
            },
        }
    }
}

impl RequestLog for DynamoStore {
    async fn remember_signature(&self, key_id: &str, signature: &str, expires_ms: i64) -> Result<bool, StoreError> {
        // TTL deletes late (days in AWS, never in moto): an expired item counts as absent.
        let expires_s = expires_ms.div_euclid(1000) + i64::from(expires_ms.rem_euclid(1000) != 0);
        let result = self
            .client
            .put_item()
            .table_name(&self.requests_table)
            .item("pk", s(format!("sig#{key_id}#{signature}")))
            .item("expires_at", n(expires_s))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now_s")
            .expression_attribute_values(":now_s", n(now_ms().div_euclid(1000)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(store_err("dynamodb", "PutItem (remember_signature)", &self.requests_table, &e)),
            },
        }
    }

    async fn add_weight(&self, key_id: &str, window_start_ms: i64, weight: u32) -> Result<u32, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.requests_table)
            .key("pk", s(format!("weight#{key_id}#{window_start_ms}")))
            .update_expression("ADD weight :w SET expires_at = :exp")
            .expression_attribute_values(":w", n(weight))
            .expression_attribute_values(":exp", n(window_start_ms.div_euclid(1000) + WEIGHT_TTL_S))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| store_err("dynamodb", "UpdateItem (add_weight)", &self.requests_table, &e))?;
        let attrs = out.attributes.unwrap_or_default();
        let total: u64 = get_n(&attrs, "weight").map_err(|e| bad_item("weight counter", &self.requests_table, e))?;
        Ok(total.min(u64::from(u32::MAX)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_service::ports::PageKey;
    use serde_json::json;

    fn query() -> ListQuery {
        ListQuery {
            user_id: "u1".into(),
            status: None,
            template_id: None,
            from_ms: None,
            to_ms: None,
            after: None,
            limit: 10,
        }
    }

    #[test]
    fn job_items_round_trip() {
        let mut job = JobRecord::new_queued(
            "bt_0a1b2c3d".into(),
            "u1".into(),
            json!({"a": [1, 2]}),
            "sma_cross".into(),
            1_700_000_000_123,
        );
        let item = job_item(&job, 90).unwrap();
        assert_eq!(get_s(&item, "submitted_key").unwrap(), "1700000000123#bt_0a1b2c3d");
        assert_eq!(get_s(&item, "user_status").unwrap(), "u1#queued");
        assert_eq!(get_s(&item, "user_template").unwrap(), "u1#sma_cross");
        assert!(!item.contains_key("expires_at"));
        assert_eq!(job_from_item(&item).unwrap(), job);

        job.status = JobStatus::Failed;
        job.started_at_ms = Some(1_700_000_001_000);
        job.finished_at_ms = Some(1_700_000_002_500);
        job.progress = 0.25;
        job.error = Some(JobError::new("TIMEOUT", "too slow"));
        job.summary = Some(json!({"metrics": {"x": "1.5"}}));
        job.run_token = Some("tok".into());
        job.lease_until_ms = Some(1_700_000_060_000);
        job.attempts = 2;
        job.slot_released = true;
        let item = job_item(&job, 90).unwrap();
        assert_eq!(get_n::<i64>(&item, "expires_at").unwrap(), 1_700_000_002 + 90 * 86_400);
        assert_eq!(job_from_item(&item).unwrap(), job);
    }

    #[test]
    fn list_plans() {
        let p = plan_list(&query()).unwrap();
        assert_eq!((p.index, p.pk_attr, p.pk_value.as_str(), p.lo, p.hi), ("by_user", "user_id", "u1", None, None));

        let q = ListQuery { status: Some(JobStatus::Done), template_id: Some("t".into()), ..query() };
        let p = plan_list(&q).unwrap();
        assert_eq!((p.index, p.pk_value.as_str()), ("by_user_status", "u1#done"));
        let q = ListQuery { template_id: Some("t".into()), ..query() };
        assert_eq!(plan_list(&q).unwrap().pk_value, "u1#t");

        let q = ListQuery {
            from_ms: Some(1000),
            to_ms: Some(5000),
            after: Some(PageKey { submitted_at_ms: 4000, id: "bt_aa".into() }),
            ..query()
        };
        let p = plan_list(&q).unwrap();
        assert_eq!(p.lo.as_deref(), Some("0000000001000#"));
        assert_eq!(p.hi.as_deref(), Some("0000000004000#bt_aa"));
        let q = ListQuery {
            to_ms: Some(3000),
            after: Some(PageKey { submitted_at_ms: 4000, id: "bt_aa".into() }),
            ..query()
        };
        assert_eq!(plan_list(&q).unwrap().hi.as_deref(), Some("0000000003000#"));
        // Empty ranges need no query.
        assert!(plan_list(&ListQuery { from_ms: Some(5000), to_ms: Some(5000), ..query() }).is_none());
        assert!(plan_list(&ListQuery { to_ms: Some(0), ..query() }).is_none());
    }

    #[test]
    fn progress_is_a_valid_number() {
        assert_eq!(progress_text(0.5), "0.500000");
        assert_eq!(progress_text(f64::NAN), "0.000000");
        assert_eq!(progress_text(1e-300), "0.000000");
        assert_eq!(progress_text(7.0), "1.000000");
    }
}
