//! `DELETE /v1/backtest/jobs/{id}` and `POST /v1/backtest/compare` (docs/api.md "Deleting a job",
//! "Compare").
//!
//! Delete: the job's item goes first, in one conditional delete (terminal, the caller's, its slot
//! given back: [`DeleteOutcome`]), then its result objects. A crash between the two leaves objects
//! no job points at, which the results bucket's lifecycle rule removes; the other order could
//! leave a `done` job whose result is missing. A terminal job whose slot the stream has not given
//! back yet has it given back here first (the release is conditional, so it happens exactly once
//! whoever gets there first, and the stream ignores the job's `REMOVE`).
//!
//! Compare reads only the jobs' items (their stored metrics), in one batched read.

use std::collections::HashMap;

use pipai_engine::input::{clipped, parse_json_object_strict};
use pipai_engine::metric_catalog::{self, Better, METRICS};
use pipai_engine::result::Metrics;
use pipai_engine::JobConfig;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::api::{reject_query, Api};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::JobId;
use crate::model::{JobRecord, JobStatus};
use crate::ports::{ApiStore, DeleteOutcome, MarketData, ResultStore};

/// How many jobs one compare takes.
pub const COMPARE_MIN_JOBS: usize = 2;
pub const COMPARE_MAX_JOBS: usize = 10;

impl<S, R, M> Api<S, R, M>
where
    S: ApiStore,
    R: ResultStore,
    M: MarketData,
{
    pub(crate) async fn delete_job(&self, req: &ApiRequest, who: &Principal) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        let job = self.owned_job(req, who).await?;
        // SlotHeld at most once in practice (the release below settles it); a bound all the same.
        for _ in 0..3 {
            match self.store.delete_job(&job.id, &who.user_id).await? {
                DeleteOutcome::Deleted => {
                    match self.results.delete_artifacts(&job.id).await {
                        Ok(removed) => tracing::info!(removed, "job deleted with its result objects"),
                        // The job is gone either way; the objects expire by the lifecycle rule.
                        Err(e) => tracing::warn!(
                            error = %crate::error::report(&e),
                            "job deleted; its result objects are left to the lifecycle rule"
                        ),
                    }
                    return Ok(ApiResponse { status: 204, headers: vec![], body: vec![] });
                }
                DeleteOutcome::NotTerminal(status) => {
                    return Err(ApiError::InvalidState(format!(
                        "job {} is {status}; cancel it first (only done, failed or cancelled jobs can be deleted)",
                        job.id
                    )))
                }
                DeleteOutcome::SlotHeld => {
                    let released = self.store.release_slot(&job.id, &who.user_id).await?;
                    tracing::info!(released, "terminal job's slot given back before deleting it");
                }
                DeleteOutcome::NotFound => return Err(ApiError::NotFound(format!("no job {}", job.id))),
            }
        }
        Err(ApiError::Internal(format!("job {}: its slot stayed held through three deletes", job.id)))
    }

    pub(crate) async fn compare_jobs(&self, req: &ApiRequest, who: &Principal) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        let ids = compare_request(&req.body)?;
        let found = self.store.get_jobs(&ids).await?;
        let mut by_id: HashMap<&JobId, &JobRecord> = found.iter().map(|j| (&j.id, j)).collect();
        let jobs = ids
            .iter()
            .map(|id| match by_id.remove(id) {
                Some(job) if job.user_id == who.user_id => Ok(job),
                _ => Err(ApiError::NotFound(format!("job_ids: no job {id}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ApiResponse::json(200, &Comparison::of(&jobs)))
    }
}

/// The ids of a compare body `{"job_ids": [...]}`: 2 to 10, distinct, each a job id.
pub fn compare_request(body: &[u8]) -> Result<Vec<JobId>, ApiError> {
    let mut object = parse_json_object_strict(body)?;
    if let Some(unknown) = object.keys().find(|k| k.as_str() != "job_ids") {
        return Err(ApiError::InvalidParameter(format!(
            "{}: unknown field; the body takes only job_ids",
            clipped(unknown)
        )));
    }
    let listed = match object.remove("job_ids") {
        Some(Value::Array(listed)) => listed,
        Some(_) => return Err(ApiError::InvalidParameter("job_ids: must be an array of job ids".into())),
        None => return Err(ApiError::InvalidParameter("job_ids: required (2 to 10 job ids)".into())),
    };
    if !(COMPARE_MIN_JOBS..=COMPARE_MAX_JOBS).contains(&listed.len()) {
        return Err(ApiError::InvalidParameter(format!(
            "job_ids: must list {COMPARE_MIN_JOBS} to {COMPARE_MAX_JOBS} distinct job ids, not {}",
            listed.len()
        )));
    }
    let mut ids: Vec<JobId> = Vec::with_capacity(listed.len());
    for (i, value) in listed.iter().enumerate() {
        let id: JobId = match value {
            Value::String(text) => {
                text.parse().map_err(|e| ApiError::InvalidParameter(format!("job_ids[{i}]: {e}")))?
            }
            _ => return Err(ApiError::InvalidParameter(format!("job_ids[{i}]: must be a job id string"))),
        };
        if let Some(first) = ids.iter().position(|seen| *seen == id) {
            return Err(ApiError::InvalidParameter(format!(
                "job_ids[{i}]: {id} repeats job_ids[{first}]; the ids must be distinct"
            )));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// The compare answer: `{runs, metric_diff}`.
#[derive(Debug, Serialize)]
pub struct Comparison<'a> {
    pub runs: Vec<Run<'a>>,
    pub metric_diff: MetricDiffs<'a>,
}

/// One compared job.
#[derive(Debug, Serialize)]
pub struct Run<'a> {
    pub id: &'a JobId,
    pub status: JobStatus,
    pub config: &'a JobConfig,
    /// The flat metrics of a done job (as its `result.metrics`); null otherwise.
    pub metrics: Option<&'a Metrics>,
}

/// Every metric of the catalog, in its order: `{name: MetricDiff}`.
pub type MetricDiffs<'a> = OrderedMap<&'static str, MetricDiff<'a>>;

/// One metric across the runs.
#[derive(Debug, Serialize)]
pub struct MetricDiff<'a> {
    pub values: RunValues<'a>,
    pub best_id: Option<&'a JobId>,
    pub higher_is_better: Option<bool>,
}

/// `{job id: decimal string or null}`, in request order.
pub type RunValues<'a> = OrderedMap<&'a JobId, Option<String>>;

/// A JSON object whose members keep the order they are listed in.
#[derive(Debug)]
pub struct OrderedMap<K, V>(pub Vec<(K, V)>);

impl<'a> Comparison<'a> {
    pub fn of(jobs: &[&'a JobRecord]) -> Self {
        let done = |j: &'a JobRecord| j.summary.as_ref().filter(|_| j.status == JobStatus::Done);
        let runs = jobs
            .iter()
            .map(|j| Run { id: &j.id, status: j.status, config: &j.config, metrics: done(j).map(|s| &s.metrics) })
            .collect();
        let diffs = METRICS
            .iter()
            .map(|&(name, better)| {
                let values: Vec<_> = jobs
                    .iter()
                    .map(|j| done(j).and_then(|s| metric_catalog::value(name, &s.metrics, &s.structured_metrics)))
                    .collect();
                let best_id = metric_catalog::best(&values, better).map(|i| &jobs[i].id);
                let shown = jobs.iter().zip(&values).map(|(j, v)| (&j.id, v.map(|d| d.to_string()))).collect();
                (
                    name,
                    MetricDiff {
                        values: OrderedMap(shown),
                        best_id,
                        higher_is_better: Better::higher_is_better(better),
                    },
                )
            })
            .collect();
        Comparison { runs, metric_diff: OrderedMap(diffs) }
    }
}

impl<K: Serialize, V: Serialize> Serialize for OrderedMap<K, V> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> String {
        match compare_request(body.as_bytes()) {
            Err(ApiError::InvalidParameter(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn compare_bodies_are_read_strictly() {
        let ok = compare_request(br#"{"job_ids": ["bt_aaaaaa", "bt_bbbbbb"]}"#).unwrap();
        assert_eq!(ok.iter().map(JobId::as_str).collect::<Vec<_>>(), ["bt_aaaaaa", "bt_bbbbbb"]);
        assert!(field_of(r#"{"job_ids": ["bt_aaaaaa"]}"#).starts_with("job_ids: must list 2 to 10"));
        let eleven: Vec<String> = (0..11).map(|i| format!("\"bt_{i:06x}\"")).collect();
        assert!(field_of(&format!(r#"{{"job_ids": [{}]}}"#, eleven.join(","))).contains("not 11"));
        assert!(field_of(r#"{"job_ids": ["bt_aaaaaa", "bt_aaaaaa"]}"#).starts_with("job_ids[1]: bt_aaaaaa repeats"));
        assert!(field_of(r#"{"job_ids": ["bt_aaaaaa", "nope"]}"#).starts_with("job_ids[1]:"));
        assert!(field_of(r#"{"job_ids": ["bt_aaaaaa", 7]}"#).starts_with("job_ids[1]:"));
        assert!(field_of(r#"{"job_ids": "bt_aaaaaa"}"#).starts_with("job_ids: must be an array"));
        assert!(field_of(r#"{}"#).starts_with("job_ids: required"));
        assert!(field_of(r#"{"job_ids": ["bt_aaaaaa", "bt_bbbbbb"], "x": 1}"#).starts_with("x: unknown field"));
        assert!(field_of(r#"{"job_ids": [], "job_ids": []}"#).starts_with("job_ids"));
        assert!(field_of(r#"[1]"#).starts_with("body"));
        assert!(field_of("{").starts_with("body"));
    }
}
