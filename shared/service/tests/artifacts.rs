//! GET /v1/backtest/jobs/{id}/artifacts over the in-memory ports: the worker's files and their
//! list, 409 before done, 404 for another user, and a job whose files cannot be uploaded stays
//! done with its whole result (the route then says so with a 409).

mod common;

use std::ops::Range;

use common::*;
use pipai_service::clock::now_ms;
use pipai_service::memory::MemoryStore;
use pipai_service::ports::*;
use pipai_service::worker::{Worker, WorkerSettings};
use pipai_service::JobId;

fn at() -> i64 {
    static TICK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    now_ms() + TICK.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The memory store, whose uploads of anything but the result's own JSON objects fail.
struct FilesFail(&'static MemoryStore);

impl ResultStore for FilesFail {
    async fn put_artifact(&self, job_id: &JobId, name: &str, bytes: Vec<u8>, ct: &str) -> Result<(), StoreError> {
        if name.ends_with(".json") {
            self.0.put_artifact(job_id, name, bytes, ct).await
        } else {
            Err(StoreError::new(format!("{name}: the upload failed (test)")))
        }
    }
    async fn get_artifact(&self, job_id: &JobId, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get_artifact(job_id, name).await
    }
    async fn get_artifact_range(
        &self,
        job_id: &JobId,
        name: &str,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get_artifact_range(job_id, name, range).await
    }
    async fn delete_artifacts(&self, job_id: &JobId) -> Result<usize, StoreError> {
        self.0.delete_artifacts(job_id).await
    }
}

async fn create(kit: &Kit, client: &Client) -> JobId {
    let resp = kit.call(client, "POST", "/v1/backtest/jobs", &body(&seed_body()), at()).await;
    assert_eq!(resp.status, 201, "{}", resp.body_json());
    job_id(resp.body_json()["id"].as_str().unwrap())
}

fn path(id: &JobId) -> String {
    format!("/v1/backtest/jobs/{id}/artifacts")
}

#[tokio::test]
async fn a_done_jobs_files_are_listed_with_urls_to_their_bytes() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = create(&kit, &alice).await;
    assert_error(&kit.call(&alice, "GET", &path(&id), b"", at()).await, 409, "INVALID_STATE", "queued");
    let worker =
        Worker { store: kit.store, results: kit.store, market: kit.store, settings: WorkerSettings::default() };
    worker.process(&id, now_ms() + 60_000).await.unwrap();

    let resp = kit.call(&alice, "GET", &path(&id), b"", at()).await;
    assert_eq!(resp.status, 200);
    let b = resp.body_json();
    let files = b["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["equity.parquet", "equity.csv", "trades.parquet", "trades.csv", "bars.parquet", "report.html"]);
    for f in files {
        assert_eq!(f.as_object().unwrap().len(), 5, "{f}");
        let bytes = kit.store.artifact_of_url(f["url"].as_str().unwrap()).unwrap();
        assert_eq!(bytes.len() as u64, f["bytes"].as_u64().unwrap());
        assert!(f["url"].as_str().unwrap().ends_with("expires_in=1800"), "{f}");
    }
    let report = String::from_utf8(kit.store.artifact_of_url(files[5]["url"].as_str().unwrap()).unwrap()).unwrap();
    assert!(report.contains("config_sha256") && report.contains("<svg"));
    let expires = pipai_engine::time::parse_iso_ms(b["expires_at"].as_str().unwrap()).unwrap();
    assert!((now_ms() + 29 * 60_000..=now_ms() + 30 * 60_000 + 1_000).contains(&expires), "{b}");

    let bob = kit.client("bob").await;
    assert_error(&kit.call(&bob, "GET", &path(&id), b"", at()).await, 404, "NOT_FOUND", "no job");
    assert_error(
        &kit.call(&alice, "GET", &format!("{}?x=1", path(&id)), b"", at()).await,
        400,
        "INVALID_PARAMETER",
        "x",
    );
    // Deleted with the job.
    assert_eq!(kit.call(&alice, "DELETE", &format!("/v1/backtest/jobs/{id}"), b"", at()).await.status, 204);
    assert_eq!(kit.store.artifact_count(&id), 0);
    assert_error(&kit.call(&alice, "GET", &path(&id), b"", at()).await, 404, "NOT_FOUND", "no job");
}

#[tokio::test]
async fn files_that_cannot_be_uploaded_leave_the_job_done_with_its_result() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = create(&kit, &alice).await;
    let worker = Worker {
        store: kit.store,
        results: FilesFail(kit.store),
        market: kit.store,
        settings: WorkerSettings::default(),
    };
    worker.process(&id, now_ms() + 60_000).await.unwrap();
    let job = kit.call(&alice, "GET", &format!("/v1/backtest/jobs/{id}"), b"", at()).await.body_json();
    assert_eq!(job["status"], "done", "{job}");
    assert!(!job["result"]["trades"].as_array().unwrap().is_empty());
    assert_eq!(job["result"]["provenance"]["data"][0]["symbol"], "BTCUSDT");
    assert_error(&kit.call(&alice, "GET", &path(&id), b"", at()).await, 409, "INVALID_STATE", "no downloadable files");
}

#[tokio::test]
async fn files_give_way_to_the_result_near_the_deadline() {
    let kit = kit();
    let alice = kit.client("alice").await;
    let id = create(&kit, &alice).await;
    // The run has its margin left (10 s), the files need twice that: none are made.
    let settings = WorkerSettings { deadline_margin_ms: 10_000, ..WorkerSettings::default() };
    let worker = Worker { store: kit.store, results: kit.store, market: kit.store, settings };
    worker.process(&id, now_ms() + 20_000).await.unwrap();
    let job = kit.call(&alice, "GET", &format!("/v1/backtest/jobs/{id}"), b"", at()).await.body_json();
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(kit.store.artifact_count(&id), 3, "the result's own objects only");
    assert_error(&kit.call(&alice, "GET", &path(&id), b"", at()).await, 409, "INVALID_STATE", "no downloadable files");
}
