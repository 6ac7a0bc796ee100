//! [`ResultStore`] on S3, and the S3 client setup shared with the market data.

use std::ops::Range;

use aws_config::SdkConfig;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use pipai_service::ports::{ResultStore, StoreError};
use pipai_service::{JobId, SweepId};

use crate::error::store_err;
use crate::{env_lookup, required, ConfigError};

/// An S3 client from the shared config; path-style addressing when an endpoint is overridden
/// (moto, and most S3-compatible servers, do not serve virtual-hosted bucket names).
pub(crate) fn s3_client(sdk: &SdkConfig, lookup: &dyn Fn(&str) -> Option<String>) -> aws_sdk_s3::Client {
    let overridden = sdk.endpoint_url().is_some() || lookup("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
    let conf = aws_sdk_s3::config::Builder::from(sdk).force_path_style(overridden).build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// One segment of an artifact path: not empty, no `/`, not `.` or `..`.
fn path_part(p: &str) -> bool {
    !p.is_empty() && p != "." && p != ".." && !p.contains('/')
}

/// Result artifacts at `s3://{RESULTS_BUCKET}/results/{job_id}/{name}`.
#[derive(Clone, Debug)]
pub struct S3Results {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Results {
    /// From `RESULTS_BUCKET`.
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Self::from_lookup(sdk, &env_lookup)
    }

    /// [`S3Results::from_env`] with the variables from `lookup`.
    pub fn from_lookup(sdk: &SdkConfig, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(S3Results { client: s3_client(sdk, lookup), bucket: required(lookup, "RESULTS_BUCKET")? })
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// `results/{job_id}/{name}`; neither part may be empty, contain `/` or be `..`.
    pub fn key(job_id: &str, name: &str) -> Result<String, StoreError> {
        match Self::prefix(job_id) {
            Ok(prefix) if path_part(name) => Ok(prefix + name),
            _ => Err(StoreError::new(format!("invalid artifact path {job_id:?}/{name:?}"))),
        }
    }

    /// `sweeps/{sweep_id}/ranking/{page:06}.json`: a page of an ended sweep's full ranking (a
    /// sweep id is `sw_` and letters or digits, never a path separator).
    pub fn ranking_key(sweep_id: &SweepId, page: u32) -> String {
        format!("sweeps/{sweep_id}/ranking/{page:06}.json")
    }

    /// `results/{job_id}/`, under which every artifact of the job is.
    pub fn prefix(job_id: &str) -> Result<String, StoreError> {
        if path_part(job_id) {
            Ok(format!("results/{job_id}/"))
        } else {
            Err(StoreError::new(format!("invalid job id for an artifact path {job_id:?}")))
        }
    }
}

impl ResultStore for S3Results {
    async fn put_artifact(
        &self,
        job_id: &JobId,
        name: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.put_key(&Self::key(job_id.as_str(), name)?, bytes, content_type).await
    }

    async fn get_artifact(&self, job_id: &JobId, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_object(job_id, name, None).await
    }

    async fn put_sweep_ranking_page(&self, sweep_id: &SweepId, page: u32, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.put_key(&Self::ranking_key(sweep_id, page), bytes, "application/json").await
    }

    async fn get_sweep_ranking_page(&self, sweep_id: &SweepId, page: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_key(&Self::ranking_key(sweep_id, page), None).await
    }

    async fn get_artifact_range(
        &self,
        job_id: &JobId,
        name: &str,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if range.start >= range.end {
            return Err(StoreError::new(format!("{job_id}/{name}: empty range {range:?}")));
        }
        let got = self.get_object(job_id, name, Some(&range)).await?;
        match got {
            // S3 answers a range reaching past the end with what there is: not what was asked.
            Some(bytes) if bytes.len() as u64 != range.end - range.start => Err(StoreError::new(format!(
                "{job_id}/{name}: range {range:?} returned {} bytes (past the end of the object)",
                bytes.len()
            ))),
            got => Ok(got),
        }
    }

    async fn delete_artifacts(&self, job_id: &JobId) -> Result<usize, StoreError> {
        let prefix = Self::prefix(job_id.as_str())?;
        let resource = || format!("s3://{}/{prefix}", self.bucket);
        let mut removed = 0;
        // Listed and deleted a page (at most 1000 keys, DeleteObjects' limit) at a time.
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_err("s3", "ListObjectsV2", &resource(), e))?;
            let objects = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::caused_by(format!("s3 DeleteObjects on {}: a key", resource()), e))?;
            if objects.is_empty() {
                continue;
            }
            let count = objects.len();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StoreError::caused_by(format!("s3 DeleteObjects on {}", resource()), e))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| store_err("s3", "DeleteObjects", &resource(), e))?;
            if let Some(failed) = out.errors().first() {
                return Err(StoreError::new(format!(
                    "s3 DeleteObjects on {}: {} of {count} keys not deleted, first {:?}: {:?}",
                    resource(),
                    out.errors().len(),
                    failed.key().unwrap_or("?"),
                    failed.code().unwrap_or("?")
                )));
            }
            removed += count;
        }
        Ok(removed)
    }

    /// A presigned GetObject of `results/{job_id}/{name}`, signed locally by the SDK against the
    /// client's endpoint (the configured one: moto locally), path-style when that is overridden.
    async fn presign_artifact(
        &self,
        job_id: &JobId,
        name: &str,
        expires_in: std::time::Duration,
    ) -> Result<String, StoreError> {
        let key = Self::key(job_id.as_str(), name)?;
        let resource = || format!("s3://{}/{key}", self.bucket);
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|e| StoreError::caused_by(format!("presigning {}", resource()), e))?;
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .presigned(config)
            .await
            .map_err(|e| store_err("s3", "GetObject (presign)", &resource(), e))?;
        Ok(presigned.uri().to_string())
    }
}

impl S3Results {
    /// GetObject, of the whole object or of the bytes `range`; `None` if there is no such key.
    async fn get_object(
        &self,
        job_id: &JobId,
        name: &str,
        range: Option<&Range<u64>>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_key(&Self::key(job_id.as_str(), name)?, range).await
    }

    /// PutObject of `bytes` at `key`.
    async fn put_key(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| store_err("s3", "PutObject", &format!("s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    /// GetObject of `key`, of the whole object or of the bytes `range`; `None` if no such key.
    async fn get_key(&self, key: &str, range: Option<&Range<u64>>) -> Result<Option<Vec<u8>>, StoreError> {
        let resource = || format!("s3://{}/{key}", self.bucket);
        // HTTP ranges are inclusive at both ends.
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range.map(|r| format!("bytes={}-{}", r.start, r.end - 1)));
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) => {
                return match e.as_service_error() {
                    Some(GetObjectError::NoSuchKey(_)) => Ok(None),
                    _ => Err(store_err("s3", "GetObject", &resource(), e)),
                }
            }
        };
        let body = out.body.collect().await.map_err(|e| store_err("s3", "GetObject (body)", &resource(), e))?;
        Ok(Some(body.into_bytes().to_vec()))
    }
}
