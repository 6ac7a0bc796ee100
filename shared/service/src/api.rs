//! The public API: one entry point, [`Api::handle`], that authenticates, charges request weight,
//! runs the route's handler and turns any [`ApiError`] into `{code, message}` (the only place
//! that happens). Each Lambda function serves one [`Route`]; local tools can route any request
//! with [`Route::of`].

use pipai_engine::input::clipped;
use pipai_engine::result::{Metrics, StructuredMetrics, Summary};
use pipai_engine::time::{iso, parse_iso};
use pipai_engine::{quoted, templates, Timeframe};
use pipai_market_data::Coverage;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::ops::Range;
use tracing::Instrument;

use crate::auth::{self, Principal};
use crate::cursor::{CursorKind, CursorSeal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::JobId;
use crate::model::{JobRecord, JobStatus, JobWebhook, ListPage, ResultSummary, MAX_ACTIVE_JOBS};
use crate::pages::{json_array, ResultArray, ResultPages, RESULT_ARTIFACT};
use crate::ports::*;
use crate::secrets::MasterKey;

/// Every endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CreateJob,
    GetJob,
    ListJobs,
    CancelJob,
    ListSymbols,
    ListTemplates,
    // Stored strategies (`crate::strategies`).
    CreateStrategy,
    GetStrategy,
    ListStrategies,
    UpdateStrategy,
    DeleteStrategy,
    // Deleting and comparing jobs (handlers in compare.rs).
    DeleteJob,
    CompareJobs,
    // Sweeps (handlers in sweep_api.rs).
    CreateSweep,
    GetSweep,
    ListSweeps,
    CancelSweep,
    // A done job's downloadable files (handler in artifacts.rs).
    GetArtifacts,
}

impl Route {
    pub const ALL: [Route; 18] = [
        Route::CreateJob,
        Route::GetJob,
        Route::ListJobs,
        Route::CancelJob,
        Route::ListSymbols,
        Route::ListTemplates,
        Route::CreateStrategy,
        Route::GetStrategy,
        Route::ListStrategies,
        Route::UpdateStrategy,
        Route::DeleteStrategy,
        Route::DeleteJob,
        Route::CompareJobs,
        Route::CreateSweep,
        Route::GetSweep,
        Route::ListSweeps,
        Route::CancelSweep,
        Route::GetArtifacts,
    ];

    /// Request weight (seeds: create 20, list 5, get 2; the rest documented in docs/api.md).
    pub fn weight(self) -> u32 {
        match self {
            Route::CreateJob => 20,
            Route::GetJob => 2,
            Route::ListJobs => 5,
            Route::CancelJob => 5,
            Route::ListSymbols => 5,
            Route::ListTemplates => 1,
            Route::CreateStrategy => 10,
            Route::GetStrategy => 2,
            Route::ListStrategies => 5,
            Route::UpdateStrategy => 10,
            Route::DeleteStrategy => 5,
            Route::DeleteJob => 5,
            Route::CompareJobs => 10,
            Route::CreateSweep => 20,
            Route::GetSweep => 2,
            Route::ListSweeps => 5,
            Route::CancelSweep => 5,
            Route::GetArtifacts => 2,
        }
    }

    /// Method and path pattern, as API Gateway routes them.
    pub fn method_and_path(self) -> (&'static str, &'static str) {
        match self {
            Route::CreateJob => ("POST", "/v1/backtest/jobs"),
            Route::GetJob => ("GET", "/v1/backtest/jobs/{id}"),
            Route::ListJobs => ("GET", "/v1/backtest/jobs"),
            Route::CancelJob => ("POST", "/v1/backtest/jobs/{id}/cancel"),
            Route::ListSymbols => ("GET", "/v1/backtest/symbols"),
            Route::ListTemplates => ("GET", "/v1/backtest/templates"),
            Route::CreateStrategy => ("POST", "/v1/strategies"),
            Route::GetStrategy => ("GET", "/v1/strategies/{id}"),
            Route::ListStrategies => ("GET", "/v1/strategies"),
            Route::UpdateStrategy => ("PATCH", "/v1/strategies/{id}"),
            Route::DeleteStrategy => ("DELETE", "/v1/strategies/{id}"),
            Route::DeleteJob => ("DELETE", "/v1/backtest/jobs/{id}"),
            Route::CompareJobs => ("POST", "/v1/backtest/compare"),
            Route::CreateSweep => ("POST", "/v1/backtest/sweeps"),
            Route::GetSweep => ("GET", "/v1/backtest/sweeps/{id}"),
            Route::ListSweeps => ("GET", "/v1/backtest/sweeps"),
            Route::CancelSweep => ("POST", "/v1/backtest/sweeps/{id}/cancel"),
            Route::GetArtifacts => ("GET", "/v1/backtest/jobs/{id}/artifacts"),
        }
    }

    /// The route serving `method` and `path` (a path starting at `/v1/`).
    pub fn of(method: &str, path: &str) -> Option<Route> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        match (method, parts.as_slice()) {
            ("POST", ["", "v1", "backtest", "jobs"]) => Some(Route::CreateJob),
            ("GET", ["", "v1", "backtest", "jobs"]) => Some(Route::ListJobs),
            ("GET", ["", "v1", "backtest", "jobs", _]) => Some(Route::GetJob),
            ("POST", ["", "v1", "backtest", "jobs", _, "cancel"]) => Some(Route::CancelJob),
            ("GET", ["", "v1", "backtest", "symbols"]) => Some(Route::ListSymbols),
            ("GET", ["", "v1", "backtest", "templates"]) => Some(Route::ListTemplates),
            ("POST", ["", "v1", "strategies"]) => Some(Route::CreateStrategy),
            ("GET", ["", "v1", "strategies"]) => Some(Route::ListStrategies),
            ("GET", ["", "v1", "strategies", _]) => Some(Route::GetStrategy),
            ("PATCH", ["", "v1", "strategies", _]) => Some(Route::UpdateStrategy),
            ("DELETE", ["", "v1", "strategies", _]) => Some(Route::DeleteStrategy),
            ("DELETE", ["", "v1", "backtest", "jobs", _]) => Some(Route::DeleteJob),
            ("POST", ["", "v1", "backtest", "compare"]) => Some(Route::CompareJobs),
            ("POST", ["", "v1", "backtest", "sweeps"]) => Some(Route::CreateSweep),
            ("GET", ["", "v1", "backtest", "sweeps"]) => Some(Route::ListSweeps),
            ("GET", ["", "v1", "backtest", "sweeps", _]) => Some(Route::GetSweep),
            ("POST", ["", "v1", "backtest", "sweeps", _, "cancel"]) => Some(Route::CancelSweep),
            ("GET", ["", "v1", "backtest", "jobs", _, "artifacts"]) => Some(Route::GetArtifacts),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Request weight per key per 60 s window.
    pub weight_budget: u32,
    pub max_active_jobs: u32,
    /// A GET response larger than this returns its arrays in pages (Lambda's limit is 6 MB).
    pub response_budget_bytes: usize,
    /// `notify_url` rules and name resolution (completion webhooks).
    pub webhooks: crate::webhook::WebhookSettings,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            weight_budget: 1200,
            max_active_jobs: MAX_ACTIVE_JOBS,
            response_budget_bytes: 4 * 1024 * 1024,
            webhooks: Default::default(),
        }
    }
}

/// The API's dependencies. `S` holds jobs, keys and the request log; `R` the result arrays;
/// `M` the market data.
pub struct Api<S, R, M> {
    pub store: S,
    pub results: R,
    pub market: M,
    pub master: MasterKey,
    pub settings: ApiSettings,
}

/// Page sizes of the result arrays when a GET pages them (the stored page sizes).
pub use crate::pages::{EQUITY_PAGE, TRADES_PAGE};
pub const MAX_ARRAY_PAGE: usize = 10_000;

impl<S, R, M> Api<S, R, M>
where
    S: ApiStore,
    R: ResultStore,
    M: MarketData,
{
    /// Serves one request for `route`. Never fails: every error becomes its response. Logs of
    /// the request carry its route and, where the path names one, the job id.
    pub async fn handle(&self, route: Route, req: &ApiRequest, now_ms: i64) -> ApiResponse {
        let job_id = path_id(req).filter(|id| id.len() <= 16).unwrap_or_default();
        let span = tracing::info_span!("request", route = ?route, job_id);
        self.handle_in_span(route, req, now_ms).instrument(span).await
    }

    async fn handle_in_span(&self, route: Route, req: &ApiRequest, now_ms: i64) -> ApiResponse {
        let principal = match auth::authenticate(req, now_ms, &self.store, &self.store, &self.master).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        let used = match auth::charge_weight(
            &self.store,
            &principal.key_id,
            route.charged_weight(req),
            self.settings.weight_budget,
            now_ms,
        )
        .await
        {
            Ok(used) => used,
            Err((e, used)) => return e.into_response().with_header(auth::HEADER_USED_WEIGHT, used.to_string()),
        };
        let outcome = match route {
            Route::CreateJob => self.create_job(req, &principal, now_ms).await,
            Route::GetJob => self.get_job(req, &principal).await,
            Route::ListJobs => self.list_jobs(req, &principal).await,
            Route::CancelJob => self.cancel_job(req, &principal, now_ms).await,
            Route::ListSymbols => self.list_symbols(req).await,
            Route::ListTemplates => list_templates(req),
            Route::CreateStrategy => self.create_strategy(req, &principal, now_ms).await,
            Route::GetStrategy => self.get_strategy(req, &principal).await,
            Route::ListStrategies => self.list_strategies(req, &principal).await,
            Route::UpdateStrategy => self.update_strategy(req, &principal, now_ms).await,
            Route::DeleteStrategy => self.delete_strategy(req, &principal).await,
            Route::DeleteJob => self.delete_job(req, &principal).await,
            Route::CompareJobs => self.compare_jobs(req, &principal).await,
            Route::CreateSweep => self.create_sweep(req, &principal, now_ms).await,
            Route::GetSweep => self.get_sweep(req, &principal).await,
            Route::ListSweeps => self.list_sweeps(req, &principal).await,
            Route::CancelSweep => self.cancel_sweep(req, &principal, now_ms).await,
            Route::GetArtifacts => self.get_artifacts(req, &principal, now_ms).await,
        };
        outcome.unwrap_or_else(ApiError::into_response).with_header(auth::HEADER_USED_WEIGHT, used.to_string())
    }

    async fn create_job(&self, req: &ApiRequest, who: &Principal, now_ms: i64) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        // `notify_url` is the job's, not the config's: taken out before the config is parsed.
        let mut body = pipai_engine::parse_json_object_strict(&req.body)?;
        let notify_url = body.remove("notify_url");
        let (config, strategy_version) = self.job_config_of(body, who, now_ms).await?;
        for (i, symbol) in config.symbols.iter().enumerate() {
            self.check_coverage(i, symbol, config.timeframe, config.start_ms(), config.end_ms()).await?;
        }
        let mut job = JobRecord::new_queued(JobId::random(), who.user_id.clone(), config, now_ms);
        job.strategy_version = strategy_version;
        job.webhook = self.webhook_of(notify_url, who).await?;
        for _ in 0..5 {
            match self.store.create_job(&job, self.settings.max_active_jobs).await? {
                CreateOutcome::Created => {
                    return Ok(ApiResponse::json(201, &job.view(None::<()>))
                        .with_header("location", format!("/v1/backtest/jobs/{}", job.id)));
                }
                CreateOutcome::IdTaken => {
                    job.id = JobId::random();
                    continue;
                }
                CreateOutcome::TooManyActive => return Err(self.too_many_active("jobs")),
            }
        }
        Err(ApiError::Internal("five job id collisions in a row".into()))
    }

    /// A create body's `notify_url` (`null` or absent: none): every URL rule checked, signed
    /// later with the caller's key (jobs and sweeps alike).
    pub(crate) async fn webhook_of(
        &self,
        notify_url: Option<serde_json::Value>,
        who: &Principal,
    ) -> Result<JobWebhook, ApiError> {
        let Some(url) = notify_url.filter(|v| !v.is_null()) else { return Ok(JobWebhook::default()) };
        let url = self.settings.webhooks.accept(&url).await;
        Ok(JobWebhook {
            notify_url: Some(url.map_err(|e| ApiError::InvalidParameter(format!("notify_url: {e}")))?),
            key_id: Some(who.key_id.clone()),
            notifications: Vec::new(),
        })
    }

    /// 429: the user's active slots (jobs and sweeps share them) are all taken.
    pub(crate) fn too_many_active(&self, what: &str) -> ApiError {
        ApiError::RateLimited {
            message: format!(
                "you already have {} {what} queued or running; wait for one to finish or cancel one",
                self.settings.max_active_jobs
            ),
            retry_after_s: None,
        }
    }

    /// 400 unless `symbol`'s bars cover the window at `timeframe`, directly or from 1m bars.
    pub(crate) async fn check_coverage(
        &self,
        index: usize,
        symbol: &str,
        tf: Timeframe,
        start: i64,
        end: i64,
    ) -> Result<(), ApiError> {
        let direct = self.market.coverage(symbol, tf).await?;
        let field = format!("symbols[{index}]");
        let uncovered = match direct.as_ref().map(|c| c.check(start, end)) {
            Some(Ok(())) => return Ok(()),
            Some(Err(u)) => Some(u),
            None => None,
        };
        if tf != Timeframe::M1 {
            if let Some(minutes) = self.market.coverage(symbol, Timeframe::M1).await? {
                match minutes.check(start, end) {
                    Ok(()) => return Ok(()),
                    Err(u) if uncovered.is_none() => {
                        return Err(ApiError::InvalidParameter(format!("{field}: the window is not covered: {u}")))
                    }
                    Err(_) => {}
                }
            }
        }
        Err(ApiError::InvalidParameter(match uncovered {
            Some(u) => format!("{field}: the window is not covered: {u}"),
            None => format!("{field}: no market data for {symbol} (GET /v1/backtest/symbols lists what is available)"),
        }))
    }

    pub(crate) async fn owned_job(&self, req: &ApiRequest, who: &Principal) -> Result<JobRecord, ApiError> {
        let id: JobId = path_id(req)
            .unwrap_or_default()
            .parse()
            .map_err(|e: crate::ids::IdError| ApiError::InvalidParameter(format!("id: {e}")))?;
        match self.store.get_job(&id).await? {
            Some(job) if job.user_id == who.user_id => Ok(job),
            _ => Err(ApiError::NotFound(format!("no job {id}"))),
        }
    }

    async fn get_job(&self, req: &ApiRequest, who: &Principal) -> Result<ApiResponse, ApiError> {
        let params = query_params(req, &["expand", "cursor", "limit"])?;
        let job = self.owned_job(req, who).await?;
        if let Some(expand) = params.iter().find(|(k, _)| k == "expand").map(|(_, v)| v.as_str()) {
            return self.get_array_page(req, &job, who, expand, &params).await;
        }
        if params.iter().any(|(k, _)| k == "cursor" || k == "limit") {
            return Err(ApiError::InvalidParameter(
                "cursor: only allowed with expand=equity_curve or expand=trades".into(),
            ));
        }
        match (&job.status, &job.summary) {
            (JobStatus::Done, Some(summary)) => {
                let result = self.full_result(&job, who, summary).await?;
                Ok(ApiResponse::json(200, &job.view(Some(result))))
            }
            _ => Ok(ApiResponse::json(200, &job.view(None::<()>))),
        }
    }

    /// How a done job's arrays are stored (`result.json` says).
    async fn stored_arrays(&self, job_id: &JobId) -> Result<StoredArrays, ApiError> {
        Ok(self.stored_result(job_id).await?.0)
    }

    /// [`Self::stored_arrays`], and the `benchmark` and `provenance` stored beside them (as
    /// stored, never parsed; absent from results stored before they existed).
    async fn stored_result(&self, job_id: &JobId) -> Result<(StoredArrays, ResultExtras), ApiError> {
        #[derive(serde::Deserialize)]
        struct Paged {
            pages: Option<ResultPages>,
            // Not flattened: a RawValue cannot be read through serde's flatten buffer.
            #[serde(default)]
            benchmark: Option<Box<RawValue>>,
            #[serde(default)]
            provenance: Option<Box<RawValue>>,
        }
        #[derive(serde::Deserialize)]
        struct Whole<'a> {
            #[serde(borrow)]
            equity_curve: Vec<&'a RawValue>,
            #[serde(borrow)]
            trades: Vec<&'a RawValue>,
        }
        let bytes =
            self.results.get_artifact(job_id, RESULT_ARTIFACT).await?.ok_or_else(|| {
                ApiError::Internal(format!("{job_id}: {RESULT_ARTIFACT} missing from the result store"))
            })?;
        let damaged = |e: serde_json::Error| ApiError::Internal(format!("{job_id}: {RESULT_ARTIFACT}: {e}"));
        let paged: Paged = serde_json::from_slice(&bytes).map_err(damaged)?;
        let extras = ResultExtras { benchmark: paged.benchmark, provenance: paged.provenance };
        if let Some(pages) = paged.pages {
            return Ok((StoredArrays::Paged(pages), extras));
        }
        let whole: Whole = serde_json::from_slice(&bytes).map_err(damaged)?;
        let owned = |all: Vec<&RawValue>| all.into_iter().map(|e| e.get().to_owned()).collect();
        Ok((StoredArrays::Whole { equity_curve: owned(whole.equity_curve), trades: owned(whole.trades) }, extras))
    }

    /// The elements `range` (clamped to the array) of a stored array, as compact JSON: one
    /// ranged read of the pages covering them, nothing parsed.
    async fn read_elements(
        &self,
        job_id: &JobId,
        array: ResultArray,
        stored: &StoredArrays,
        range: Range<usize>,
    ) -> Result<Vec<String>, ApiError> {
        let index = match stored {
            StoredArrays::Paged(pages) => pages.get(array),
            StoredArrays::Whole { .. } => {
                let all = stored.whole(array);
                let end = range.end.min(all.len());
                return Ok(all[range.start.min(end)..end].to_vec());
            }
        };
        let Some(span) = index.span(range.clone()) else { return Ok(vec![]) };
        let name = array.artifact();
        let bytes = self
            .results
            .get_artifact_range(job_id, name, span.bytes.clone())
            .await?
            .ok_or_else(|| ApiError::Internal(format!("{job_id}: {name} missing from the result store")))?;
        let elements = span.slice(&bytes, range).map_err(|e| ApiError::Internal(format!("{job_id}: {name}: {e}")))?;
        Ok(elements.into_iter().map(str::to_owned).collect())
    }

    /// The seed's full result; when it would not fit the response budget (known from the page
    /// indexes before reading any array), the first page of each array and `pagination` cursors
    /// for the rest. The size is that of the whole job object it goes into.
    async fn full_result<'a>(
        &self,
        job: &JobRecord,
        who: &Principal,
        summary: &'a ResultSummary,
    ) -> Result<FullResult<'a>, ApiError> {
        let (stored, extras) = self.stored_result(&job.id).await?;
        let mut result = FullResult {
            metrics: &summary.metrics,
            structured_metrics: &summary.structured_metrics,
            summary: &summary.summary,
            benchmark: extras.benchmark,
            provenance: extras.provenance,
            equity_curve: raw_array(&[])?,
            trades: raw_array(&[])?,
            pagination: None,
        };
        let envelope = serialized_len(&job.view(Some(&result)));
        let arrays: u64 = ResultArray::ALL.iter().map(|a| stored.compact_json_len(*a) - 2).sum();
        let paged = envelope + arrays > self.settings.response_budget_bytes as u64;
        let first = |a: ResultArray| if paged { 0..a.page_size() } else { 0..usize::MAX };
        let (equity, trades) = tokio::join!(
            self.read_elements(&job.id, ResultArray::EquityCurve, &stored, first(ResultArray::EquityCurve)),
            self.read_elements(&job.id, ResultArray::Trades, &stored, first(ResultArray::Trades)),
        );
        let (equity, trades) = (equity?, trades?);
        if paged {
            let returned = [(ResultArray::EquityCurve, equity.len()), (ResultArray::Trades, trades.len())];
            result.pagination = Some(
                returned
                    .into_iter()
                    .map(|(array, returned)| {
                        let total = stored.count(array);
                        let next_cursor =
                            (returned < total).then(|| self.page_cursor(&job.id, who, array.name(), returned));
                        (array.name(), ArrayPagination { total, returned, next_cursor })
                    })
                    .collect(),
            );
        }
        result.equity_curve = raw_array(&equity)?;
        result.trades = raw_array(&trades)?;
        Ok(result)
    }

    fn page_seal(&self, who: &Principal) -> CursorSeal<'_> {
        CursorSeal { master: &self.master, kind: CursorKind::ResultPage, binding: who.user_id.to_string() }
    }

    fn page_cursor(&self, job_id: &JobId, who: &Principal, expand: &str, offset: usize) -> String {
        self.page_seal(who).seal(&PagePosition { job_id: job_id.clone(), expand: expand.to_string(), offset })
    }

    fn read_page_cursor(&self, cursor: &str, job_id: &JobId, who: &Principal, expand: &str) -> Result<usize, ApiError> {
        match self.page_seal(who).open::<PagePosition>(cursor) {
            Some(p) if &p.job_id == job_id && p.expand == expand => Ok(p.offset),
            _ => Err(ApiError::InvalidParameter("cursor: invalid, or from another job or expand".into())),
        }
    }

    async fn get_array_page(
        &self,
        _req: &ApiRequest,
        job: &JobRecord,
        who: &Principal,
        expand: &str,
        params: &[(String, String)],
    ) -> Result<ApiResponse, ApiError> {
        let array = ResultArray::parse(expand)
            .ok_or_else(|| ApiError::InvalidParameter("expand: must be equity_curve or trades".into()))?;
        if job.status != JobStatus::Done {
            return Err(ApiError::InvalidState(format!(
                "job {} is {}: results exist only when it is done",
                job.id, job.status
            )));
        }
        let limit = match params.iter().find(|(k, _)| k == "limit") {
            None => array.page_size(),
            Some((_, v)) => parse_limit(v, MAX_ARRAY_PAGE)?,
        };
        let offset = match params.iter().find(|(k, _)| k == "cursor") {
            None => 0,
            Some((_, c)) => self.read_page_cursor(c, &job.id, who, expand)?,
        };
        let stored = self.stored_arrays(&job.id).await?;
        let total = stored.count(array);
        let mut data = self.read_elements(&job.id, array, &stored, offset..offset.saturating_add(limit)).await?;
        // The response-size rule: fewer than `limit` elements (never none) rather than more than
        // the budget; the envelope is measured with the longest cursor it can carry.
        let mut page = ArrayPage {
            id: &job.id,
            expand,
            data: raw_array(&[])?,
            total,
            next_cursor: Some(self.page_cursor(&job.id, who, expand, total)),
        };
        let room = (self.settings.response_budget_bytes as u64).saturating_sub(serialized_len(&page));
        let mut used = 0;
        let fits = data
            .iter()
            .take_while(|e| {
                used += e.len() as u64 + u64::from(used > 0);
                used <= room
            })
            .count();
        data.truncate(fits.max(1));
        let end = offset + data.len();
        page.data = raw_array(&data)?;
        page.next_cursor = (end < total).then(|| self.page_cursor(&job.id, who, expand, end));
        Ok(ApiResponse::json(200, &page))
    }

    async fn list_jobs(&self, req: &ApiRequest, who: &Principal) -> Result<ApiResponse, ApiError> {
        let params = query_params(req, &["status", "template_id", "from", "to", "limit", "cursor"])?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let status = status_param(get("status"))?;
        let time = |k: &str| -> Result<Option<i64>, ApiError> {
            get(k)
                .map(|v| {
                    parse_iso(v).map(|t| t.timestamp_millis()).ok_or_else(|| {
                        ApiError::InvalidParameter(format!(
                            "{k}: {} is not an ISO 8601 UTC time like 2025-01-01T00:00:00Z",
                            quoted(v)
                        ))
                    })
                })
                .transpose()
        };
        let (from_ms, to_ms) = (time("from")?, time("to")?);
        let limit = match get("limit") {
            None => 20,
            Some(v) => parse_limit(v, 100)?,
        };
        let filters = format!(
            "{}|{}|{}|{}",
            status.map(|s| s.as_str()).unwrap_or(""),
            get("template_id").unwrap_or(""),
            from_ms.map(|v| v.to_string()).unwrap_or_default(),
            to_ms.map(|v| v.to_string()).unwrap_or_default()
        );
        let seal = CursorSeal {
            master: &self.master,
            kind: CursorKind::JobList,
            binding: format!("{}|{filters}", who.user_id),
        };
        let template_id = get("template_id").map(str::to_string);
        let fetch = |after, limit| async move {
            let query = ListQuery { user_id: who.user_id.clone(), status, template_id, from_ms, to_ms, after, limit };
            self.store.list_jobs(&query).await
        };
        let key_of = |j: &JobRecord| PageKey { submitted_at_ms: j.submitted_at_ms, id: j.id.clone() };
        let (jobs, next_cursor) = seal.list_page(get("cursor"), limit, fetch, key_of).await?;
        Ok(ApiResponse::json(200, &ListPage { data: jobs.iter().map(JobRecord::summary_view).collect(), next_cursor }))
    }

    async fn cancel_job(&self, req: &ApiRequest, who: &Principal, now_ms: i64) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        let job = self.owned_job(req, who).await?;
        match self.store.cancel_job(&job.id, &who.user_id, now_ms).await? {
            CancelOutcome::Cancelled(job) => Ok(ApiResponse::json(200, &job.view(None::<()>))),
            CancelOutcome::AlreadyTerminal(status) => Err(ApiError::InvalidState(format!(
                "job {} is already {status}; only queued or running jobs can be cancelled",
                job.id
            ))),
            CancelOutcome::NotFound => Err(ApiError::NotFound(format!("no job {}", job.id))),
        }
    }

    async fn list_symbols(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        let catalog = self.market.catalog().await?;
        let data: Vec<SymbolEntry> = catalog.iter().map(|(c, synthetic)| SymbolEntry::of(c, *synthetic)).collect();
        Ok(ApiResponse::json(200, &Data { data }))
    }
}

/// One stored series in `GET /v1/backtest/symbols`.
#[derive(Debug, Serialize)]
struct SymbolEntry<'a> {
    symbol: &'a str,
    timeframe: Timeframe,
    first_open_time: String,
    last_open_time: String,
    gaps: Vec<GapEntry>,
    /// 1m data serves every coarser timeframe by aggregation.
    derived_timeframes: Vec<Timeframe>,
    synthetic: bool,
}

#[derive(Debug, Serialize)]
struct GapEntry {
    from: String,
    to: String,
}

impl<'a> SymbolEntry<'a> {
    fn of(c: &'a Coverage, synthetic: bool) -> Self {
        let derived_timeframes = match c.timeframe {
            Timeframe::M1 => Timeframe::ALL.into_iter().filter(|t| *t != Timeframe::M1).collect(),
            _ => vec![],
        };
        SymbolEntry {
            symbol: &c.symbol,
            timeframe: c.timeframe,
            first_open_time: iso(c.first_open_time),
            last_open_time: iso(c.last_open_time),
            gaps: c.gaps.iter().map(|g| GapEntry { from: iso(g.from_ms), to: iso(g.to_ms) }).collect(),
            derived_timeframes,
            synthetic,
        }
    }
}

/// A done job's arrays as stored: in pages (`crate::pages`), or whole inside a `result.json`
/// written before pages existed (read in full, as they were then).
enum StoredArrays {
    Paged(ResultPages),
    Whole { equity_curve: Vec<String>, trades: Vec<String> },
}

impl StoredArrays {
    /// The elements of a `Whole` array (none for `Paged`).
    fn whole(&self, array: ResultArray) -> &[String] {
        match (self, array) {
            (StoredArrays::Paged(_), _) => &[],
            (StoredArrays::Whole { equity_curve, .. }, ResultArray::EquityCurve) => equity_curve,
            (StoredArrays::Whole { trades, .. }, ResultArray::Trades) => trades,
        }
    }

    fn count(&self, array: ResultArray) -> usize {
        match self {
            StoredArrays::Paged(pages) => pages.get(array).count(),
            StoredArrays::Whole { .. } => self.whole(array).len(),
        }
    }

    /// The array's length as compact JSON.
    fn compact_json_len(&self, array: ResultArray) -> u64 {
        match self {
            StoredArrays::Paged(pages) => pages.get(array).compact_json_len(),
            StoredArrays::Whole { .. } => {
                let all = self.whole(array);
                (all.iter().map(String::len).sum::<usize>() + all.len().saturating_sub(1) + 2) as u64
            }
        }
    }
}

/// `{"data": [...]}`: a listing that is never paged.
#[derive(Debug, Serialize)]
struct Data<T> {
    data: T,
}

/// A done job's `result`: the summary's parts, and the arrays as the stored JSON (never parsed).
#[derive(Serialize)]
struct FullResult<'a> {
    metrics: &'a Metrics,
    structured_metrics: &'a StructuredMetrics,
    summary: &'a Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    benchmark: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<Box<RawValue>>,
    equity_curve: Box<RawValue>,
    trades: Box<RawValue>,
    pagination: Option<BTreeMap<&'static str, ArrayPagination>>,
}

#[derive(Serialize)]
struct ArrayPagination {
    total: usize,
    returned: usize,
    next_cursor: Option<String>,
}

/// What `result.json` holds of a result beside its metrics and arrays, as stored.
struct ResultExtras {
    benchmark: Option<Box<RawValue>>,
    provenance: Option<Box<RawValue>>,
}

/// One `expand` page.
#[derive(Serialize)]
struct ArrayPage<'a> {
    id: &'a JobId,
    expand: &'a str,
    data: Box<RawValue>,
    total: usize,
    next_cursor: Option<String>,
}

/// `[e0,e1,...]` from stored elements; checked to be JSON (a guard against a damaged object,
/// cheaper than parsing into values).
fn raw_array(elements: &[String]) -> Result<Box<RawValue>, ApiError> {
    RawValue::from_string(json_array(elements.iter().map(String::as_str)))
        .map_err(|e| ApiError::Internal(format!("stored result elements are not JSON: {e}")))
}

fn serialized_len<T: Serialize>(value: &T) -> u64 {
    serde_json::to_vec(value).expect("responses serialize").len() as u64
}

fn list_templates(req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    reject_query(req, &[])?;
    Ok(ApiResponse::json(200, &Data { data: templates::catalog() }))
}

/// Where a result-array page starts: bound to the job and the array by the cursor.
#[derive(Debug, Serialize, Deserialize)]
struct PagePosition {
    #[serde(rename = "j")]
    job_id: JobId,
    #[serde(rename = "e")]
    expand: String,
    #[serde(rename = "o")]
    offset: usize,
}

/// The `{id}` segment of `/v1/backtest/jobs/{id}[/...]`.
fn path_id(req: &ApiRequest) -> Option<&str> {
    req.path.trim_end_matches('/').split('/').nth(4)
}

/// A listing's `status` query parameter (jobs and sweeps): one of the five statuses.
pub(crate) fn status_param(text: Option<&str>) -> Result<Option<JobStatus>, ApiError> {
    let parse = |s: &str| {
        s.parse::<JobStatus>().map_err(|_| {
            ApiError::InvalidParameter(format!(
                "status: unknown status {}; use one of queued, running, done, failed, cancelled",
                quoted(s)
            ))
        })
    };
    text.map(parse).transpose()
}

/// A `limit` query parameter: canonical decimal digits (no sign, no leading zero) from 1 to `max`.
pub(crate) fn parse_limit(text: &str, max: usize) -> Result<usize, ApiError> {
    let canonical =
        !text.is_empty() && text.len() <= 6 && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
    text.parse::<usize>().ok().filter(|n| canonical && (1..=max).contains(n)).ok_or_else(|| {
        ApiError::InvalidParameter(format!("limit: must be an integer from 1 to {max}, written in plain digits"))
    })
}

/// The query parameters, all of them known, each at most once.
pub(crate) fn query_params(req: &ApiRequest, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let params = auth::decode_query(&req.raw_query).map_err(ApiError::InvalidParameter)?;
    for (i, (name, _)) in params.iter().enumerate() {
        if !allowed.contains(&name.as_str()) {
            return Err(ApiError::InvalidParameter(if allowed.is_empty() {
                format!("{}: this endpoint takes no query parameters", clipped(name))
            } else {
                format!("{}: unknown query parameter; allowed: {}", clipped(name), allowed.join(", "))
            }));
        }
        if params[..i].iter().any(|(n, _)| n == name) {
            return Err(ApiError::InvalidParameter(format!("{name}: given more than once")));
        }
    }
    Ok(params)
}

pub(crate) fn reject_query(req: &ApiRequest, allowed: &[&str]) -> Result<(), ApiError> {
    query_params(req, allowed).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_from_method_and_path() {
        assert_eq!(Route::of("POST", "/v1/backtest/jobs"), Some(Route::CreateJob));
        assert_eq!(Route::of("GET", "/v1/backtest/jobs/"), Some(Route::ListJobs));
        assert_eq!(Route::of("GET", "/v1/backtest/jobs/bt_123456"), Some(Route::GetJob));
        assert_eq!(Route::of("POST", "/v1/backtest/jobs/bt_123456/cancel"), Some(Route::CancelJob));
        assert_eq!(Route::of("DELETE", "/v1/backtest/jobs/bt_123456"), Some(Route::DeleteJob));
        assert_eq!(Route::of("DELETE", "/v1/backtest/jobs"), None);
        for r in Route::ALL {
            let (m, p) = r.method_and_path();
            assert_eq!(Route::of(m, &p.replace("{id}", "bt_abcdef")), Some(r));
        }
    }
}
