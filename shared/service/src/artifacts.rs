//! `GET /v1/backtest/jobs/{id}/artifacts` (docs/api.md "Artifacts"): a done job's downloadable
//! files, each with a presigned GET URL that needs no signing.
//!
//! The worker uploads the files beside the result (`results/{id}/{name}`) and lists them in
//! `result.json` ([`crate::pages::StoredResult::files`]), so this route reads that one small
//! object and presigns, without listing the bucket. A done job without the list (its files could
//! not be written, or it finished before files existed) answers 409 INVALID_STATE saying so.

use std::time::Duration;

use pipai_engine::time::iso;
use serde::{Deserialize, Serialize};

use crate::api::{reject_query, Api};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::JobStatus;
use crate::pages::{StoredFile, RESULT_ARTIFACT};
use crate::ports::{ApiStore, MarketData, ResultStore};

/// How long a download URL works (the contract asks for at least 15 minutes).
pub const ARTIFACT_URL_TTL: Duration = Duration::from_secs(30 * 60);

/// The route's answer.
#[derive(Debug, Serialize)]
pub struct ArtifactList {
    /// When the URLs stop working (they were signed at or after the request time this counts from).
    pub expires_at: String,
    pub files: Vec<ArtifactLink>,
}

/// One file and where to GET it.
#[derive(Debug, Serialize)]
pub struct ArtifactLink {
    #[serde(flatten)]
    pub file: StoredFile,
    pub url: String,
}

/// The part of `result.json` this route reads.
#[derive(Deserialize)]
struct StoredFiles {
    #[serde(default)]
    files: Option<Vec<StoredFile>>,
}

impl<S, R, M> Api<S, R, M>
where
    S: ApiStore,
    R: ResultStore,
    M: MarketData,
{
    pub(crate) async fn get_artifacts(
        &self,
        req: &ApiRequest,
        who: &Principal,
        now_ms: i64,
    ) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        let job = self.owned_job(req, who).await?;
        if job.status != JobStatus::Done {
            return Err(ApiError::InvalidState(format!(
                "job {} is {}: artifacts exist only when it is done",
                job.id, job.status
            )));
        }
        let bytes = self.results.get_artifact(&job.id, RESULT_ARTIFACT).await?.ok_or_else(|| {
            ApiError::Internal(format!("{}: {RESULT_ARTIFACT} missing from the result store", job.id))
        })?;
        let stored: StoredFiles = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Internal(format!("{}: {RESULT_ARTIFACT}: {e}", job.id)))?;
        let Some(files) = stored.files else {
            return Err(ApiError::InvalidState(format!(
                "job {} is done but has no downloadable files (they could not be written, or the job ran before \
                 they existed); its result is complete: GET /v1/backtest/jobs/{}",
                job.id, job.id
            )));
        };
        let expires_at = iso(now_ms + ARTIFACT_URL_TTL.as_millis() as i64);
        let mut links = Vec::with_capacity(files.len());
        for file in files {
            let url = self.results.presign_artifact(&job.id, &file.name, ARTIFACT_URL_TTL).await?;
            links.push(ArtifactLink { file, url });
        }
        Ok(ApiResponse::json(200, &ArtifactList { expires_at, files: links }))
    }
}
