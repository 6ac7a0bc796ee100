//! `/v1/backtest/sweeps`: create (and dry run), get (and `expand=leaderboard`), list, cancel.
//!
//! `Route::CreateSweep` charges 5 instead of 20 for a dry run ([`Route::charged_weight`]).

use pipai_engine::quoted;
use pipai_engine::sweep::spec::merge_over;
use pipai_engine::sweep::{estimate, group};
use serde::{Deserialize, Serialize};

use crate::api::{parse_limit, query_params, reject_query, status_param, Api, Route};
use crate::auth::Principal;
use crate::cursor::{CursorKind, CursorSeal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::SweepId;
use crate::model::{JobStatus, ListPage};
use crate::ports::*;
use crate::strategies::now_of;
use crate::sweep_ranking::ranking_slice;
use crate::sweeps::*;

/// What a dry run costs: the route's weight is charged only after the body says which.
pub const DRY_RUN_WEIGHT: u32 = 5;
/// `expand=leaderboard` page sizes.
pub const LEADERBOARD_PAGE: usize = 100;
pub const MAX_LEADERBOARD_PAGE: usize = 1000;

impl Route {
    /// The weight charged for `req`: the route's, but [`DRY_RUN_WEIGHT`] for a create-sweep
    /// body asking for a dry run. Read after authentication, before anything else: one field
    /// of the body, never trusted beyond that (the body is parsed properly by the handler).
    pub fn charged_weight(self, req: &ApiRequest) -> u32 {
        match self {
            Route::CreateSweep if asks_dry_run(&req.body) => DRY_RUN_WEIGHT,
            _ => self.weight(),
        }
    }
}

/// The one field read before charging: whether the body asks for a dry run. Anything that is
/// not a JSON object with `"dry_run": true` is charged the full weight (and parsed properly).
fn asks_dry_run(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        dry_run: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Peek>(body).is_ok_and(|p| p.dry_run == Some(serde_json::Value::Bool(true)))
}

/// Where a leaderboard page starts.
#[derive(Debug, Serialize, Deserialize)]
struct LeaderboardPosition {
    #[serde(rename = "w")]
    sweep_id: SweepId,
    #[serde(rename = "o")]
    offset: usize,
}

/// One `expand=leaderboard` page.
#[derive(Serialize)]
struct LeaderboardPage<'a> {
    id: &'a SweepId,
    data: Vec<pipai_engine::sweep::LeaderboardEntry>,
    total: usize,
    next_cursor: Option<String>,
}

/// The `{id}` segment of `/v1/backtest/sweeps/{id}[/...]`.
fn sweep_path_id(req: &ApiRequest) -> &str {
    req.path.trim_end_matches('/').split('/').nth(4).unwrap_or_default()
}

impl<S, R, M> Api<S, R, M>
where
    S: ApiStore,
    R: ResultStore,
    M: MarketData,
{
    pub(crate) async fn create_sweep(
        &self,
        req: &ApiRequest,
        who: &Principal,
        now_ms: i64,
    ) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        let mut spec = pipai_engine::sweep::SweepSpec::from_json_bytes(&req.body)?;
        if let Some(text) = spec.strategy_id.clone() {
            let strategy = self.usable_strategy(&text, who, "base.strategy_id").await?;
            spec.base = merge_over(&strategy.config.to_map(), &spec.base);
        }
        let now = now_of(now_ms);
        let configs = spec.expand(&spec.base, now)?;
        // Coverage once per distinct (symbols, timeframe, window): each group's bars.
        for (key, _) in group(&configs) {
            for (i, symbol) in key.symbols.iter().enumerate() {
                self.check_coverage(i, symbol, key.timeframe, key.start_ms, key.end_ms).await?;
            }
        }
        // The webhook is kept beside the request (as a job's beside its config), checked here.
        let webhook = self.webhook_of(spec.notify_url.take().map(serde_json::Value::String), who).await?;
        let cost = estimate::estimate(&configs, &spec.validation);
        if spec.dry_run {
            return Ok(ApiResponse::json(200, &cost));
        }
        let n_chunks = u32::try_from(cost.chunks).map_err(|_| ApiError::Internal("chunk count overflows".into()))?;
        let mut sweep =
            SweepRecord::new_queued(SweepId::random(), who.user_id.clone(), &spec, configs.len(), n_chunks, now_ms);
        sweep.webhook = webhook;
        for _ in 0..5 {
            match self.store.create_sweep(&sweep, self.settings.max_active_jobs).await? {
                CreateOutcome::Created => {
                    return Ok(ApiResponse::json(201, &sweep.view())
                        .with_header("location", format!("/v1/backtest/sweeps/{}", sweep.id)));
                }
                CreateOutcome::IdTaken => sweep.id = SweepId::random(),
                CreateOutcome::TooManyActive => return Err(self.too_many_active("jobs and sweeps")),
            }
        }
        Err(ApiError::Internal("five sweep id collisions in a row".into()))
    }

    async fn owned_sweep(&self, req: &ApiRequest, who: &Principal) -> Result<SweepRecord, ApiError> {
        let id: SweepId = sweep_path_id(req)
            .parse()
            .map_err(|e: crate::ids::IdError| ApiError::InvalidParameter(format!("id: {e}")))?;
        match self.store.get_sweep(&id).await? {
            Some(sweep) if sweep.user_id == who.user_id => Ok(sweep),
            _ => Err(ApiError::NotFound(format!("no sweep {id}"))),
        }
    }

    pub(crate) async fn get_sweep(&self, req: &ApiRequest, who: &Principal) -> Result<ApiResponse, ApiError> {
        let params = query_params(req, &["expand", "cursor", "limit"])?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let sweep = self.owned_sweep(req, who).await?;
        match get("expand") {
            None if get("cursor").is_some() || get("limit").is_some() => {
                Err(ApiError::InvalidParameter("cursor: only allowed with expand=leaderboard".into()))
            }
            None => Ok(ApiResponse::json(200, &sweep.view())),
            Some("leaderboard") => self.leaderboard_page(&sweep, who, get("cursor"), get("limit")).await,
            Some(other) => {
                Err(ApiError::InvalidParameter(format!("expand: must be leaderboard, got {}", quoted(other))))
            }
        }
    }

    /// The full ranking: every recorded chunk's ranked entries merged in the engine's order.
    async fn leaderboard_page(
        &self,
        sweep: &SweepRecord,
        who: &Principal,
        cursor: Option<&str>,
        limit: Option<&str>,
    ) -> Result<ApiResponse, ApiError> {
        let limit = limit.map(|v| parse_limit(v, MAX_LEADERBOARD_PAGE)).transpose()?.unwrap_or(LEADERBOARD_PAGE);
        let seal =
            CursorSeal { master: &self.master, kind: CursorKind::SweepLeaderboard, binding: who.user_id.to_string() };
        let offset = match cursor {
            None => 0,
            Some(c) => match seal.open::<LeaderboardPosition>(c) {
                Some(p) if p.sweep_id == sweep.id => p.offset,
                _ => return Err(ApiError::InvalidParameter("cursor: invalid, or from another sweep".into())),
            },
        };
        let (entries, total) = self.ranked(sweep, offset, limit).await?;
        let end = offset + entries.len();
        let data = entries.iter().enumerate().map(|(i, e)| e.at_rank(offset + i + 1));
        let page = LeaderboardPage {
            id: &sweep.id,
            data: data.collect(),
            total,
            next_cursor: (end < total)
                .then(|| seal.seal(&LeaderboardPosition { sweep_id: sweep.id.clone(), offset: end })),
        };
        Ok(ApiResponse::json(200, &page))
    }

    /// Up to `limit` ranked entries from `offset`, and how many there are: from the stored
    /// ranking of an ended sweep (only the pages holding them), else merged from every chunk.
    async fn ranked(
        &self,
        sweep: &SweepRecord,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<StoredEntry>, usize), ApiError> {
        if let Some(mark) = &sweep.ranking {
            let range = offset.min(mark.total)..offset.saturating_add(limit).min(mark.total);
            if let Some(entries) = ranking_slice(&self.results, &sweep.id, mark, range).await? {
                return Ok((entries, mark.total));
            }
        }
        let chunks = self.store.get_chunks(&sweep.id).await?;
        let ranked = merge_ranked(&sweep.spec()?, chunks.into_iter().flat_map(|c| c.entries));
        let total = ranked.len();
        let end = offset.saturating_add(limit).min(total);
        Ok((ranked.get(offset..end).map(<[StoredEntry]>::to_vec).unwrap_or_default(), total))
    }

    pub(crate) async fn list_sweeps(&self, req: &ApiRequest, who: &Principal) -> Result<ApiResponse, ApiError> {
        let params = query_params(req, &["status", "limit", "cursor"])?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let status = status_param(get("status"))?;
        let limit = get("limit").map(|v| parse_limit(v, 100)).transpose()?.unwrap_or(20);
        let seal = CursorSeal {
            master: &self.master,
            kind: CursorKind::SweepList,
            binding: format!("{}|{}", who.user_id, status.map(|s| s.as_str()).unwrap_or("")),
        };
        let fetch = |after, limit| async move {
            self.store.list_sweeps(&SweepListQuery { user_id: who.user_id.clone(), status, after, limit }).await
        };
        let key_of = |w: &SweepRecord| SweepPageKey { submitted_at_ms: w.submitted_at_ms, id: w.id.clone() };
        let (sweeps, next_cursor) = seal.list_page(get("cursor"), limit, fetch, key_of).await?;
        Ok(ApiResponse::json(
            200,
            &ListPage { data: sweeps.iter().map(SweepRecord::summary_view).collect(), next_cursor },
        ))
    }

    pub(crate) async fn cancel_sweep(
        &self,
        req: &ApiRequest,
        who: &Principal,
        now_ms: i64,
    ) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        let sweep = self.owned_sweep(req, who).await?;
        match self.store.cancel_sweep(&sweep.id, &who.user_id, now_ms).await? {
            SweepCancelOutcome::Cancelled(sweep) => Ok(ApiResponse::json(200, &sweep.view())),
            SweepCancelOutcome::AlreadyTerminal(status) => Err(ApiError::InvalidState(format!(
                "sweep {} is already {status}; only queued or running sweeps can be cancelled",
                sweep.id
            ))),
            SweepCancelOutcome::NotFound => Err(ApiError::NotFound(format!("no sweep {}", sweep.id))),
        }
    }
}

/// The outbox relay for sweeps (as `events::apply_change` is for jobs): a sweep stored as
/// `queued` sends one message per chunk. A duplicate send is harmless: a chunk is recorded once.
pub async fn relay_sweep_insert<Q: SweepQueue>(queue: &Q, sweep: &SweepRecord) -> Result<(), StoreError> {
    if sweep.status == JobStatus::Queued {
        queue.enqueue_chunks(&sweep.id, sweep.n_chunks).await?;
    }
    Ok(())
}
