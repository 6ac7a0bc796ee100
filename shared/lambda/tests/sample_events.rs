//! Every sample event in `events/` goes through its function's handler, so the files used with
//! `cargo lambda invoke --data-file events/...` never drift from what the code accepts.

use std::path::PathBuf;

use aws_lambda_events::event::sqs::SqsEvent;
use pipai_engine::Timeframe;
use pipai_lambda::{http, sqs};
use pipai_service::api::Api;
use pipai_service::auth::sign_request;
use pipai_service::clock::now_ms;
use pipai_service::memory::MemoryStore;
use pipai_service::model::FailCode;
use pipai_service::model::{ApiKeyRecord, JobRecord, JobStatus, KeyStatus};
use pipai_service::ports::{JobStore, KeyStore};
use pipai_service::secrets::MasterKey;
use pipai_service::worker::{Worker, WorkerSettings};
use pipai_service::{JobId, Route};
use serde_json::Value;

const KEY: &str = "pk_demo0000000001";
const SECRET: &str = "demo-secret";

fn event(name: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events").join(name)).unwrap()
}

/// The sample's signature headers replaced by fresh ones for the demo key.
fn resign(raw: &str) -> String {
    let mut v: Value = serde_json::from_str(raw).unwrap();
    let now = now_ms();
    let method = v["requestContext"]["http"]["method"].as_str().unwrap().to_string();
    let path = v["rawPath"].as_str().unwrap().to_string();
    let query = v["rawQueryString"].as_str().unwrap().to_string();
    let body = v["body"].as_str().unwrap_or("").to_string();
    for (k, val) in sign_request(KEY, SECRET, now, &method, &path, &query, body.as_bytes()) {
        v["headers"][k] = Value::String(val);
    }
    v.to_string()
}

fn store_with_demo() -> &'static MemoryStore {
    let store: &'static MemoryStore = Box::leak(Box::new(MemoryStore::new()));
    let minutes = pipai_market_data::Preset::btcusdt().generate(1_735_689_600_000, 1_767_225_600_000);
    store.put_bars("BTCUSDT", Timeframe::H1, pipai_market_data::resample(&minutes, Timeframe::H1), true);
    store
}

async fn api(store: &'static MemoryStore) -> Api<&'static MemoryStore, &'static MemoryStore, &'static MemoryStore> {
    let master = MasterKey::generate();
    let key = ApiKeyRecord {
        key_id: KEY.parse().unwrap(),
        user_id: "demo".parse().unwrap(),
        secret_ciphertext: master.encrypt_secret(KEY, SECRET),
        status: KeyStatus::Active,
        created_at_ms: 0,
        label: "demo".into(),
    };
    store.put_key(&key).await.unwrap();
    Api { store, results: store, market: store, master, settings: Default::default() }
}

#[tokio::test]
async fn http_events_reach_their_routes() {
    let store = store_with_demo();
    let api = api(store).await;
    store.put_job_raw(JobRecord::new_queued(id("bt_3c91ef00"), "demo".parse().unwrap(), sample_config(), now_ms()));
    let cases = [
        ("create-job.json", Route::CreateJob, 201),
        ("get-job.json", Route::GetJob, 200),
        ("list-jobs.json", Route::ListJobs, 200),
        ("list-symbols.json", Route::ListSymbols, 200),
        ("list-templates.json", Route::ListTemplates, 200),
        ("cancel-job.json", Route::CancelJob, 200),
    ];
    for (file, route, status) in cases {
        serve_event(&api, file, route, status).await;
    }
    assert_eq!(store.get_job(&id("bt_3c91ef00")).await.unwrap().unwrap().status, JobStatus::Cancelled);
}

/// The sample `file` as committed is refused (stale signature: 401, never a 500); re-signed, it
/// is served with `status` and the weight header.
async fn serve_event(
    api: &Api<&'static MemoryStore, &'static MemoryStore, &'static MemoryStore>,
    file: &str,
    route: Route,
    status: u16,
) {
    let raw = event(file);
    let stale = lambda_http::request::from_str(&raw).unwrap();
    assert_eq!(http::handle(api, route, stale).await.unwrap().status(), 401, "{file} as committed");
    let req = lambda_http::request::from_str(&resign(&raw)).unwrap();
    let resp = http::handle(api, route, req).await.unwrap();
    let body = String::from_utf8_lossy(resp.body().as_ref()).to_string();
    assert_eq!(resp.status(), status, "{file}: {body}");
    assert!(resp.headers().get("x-pipai-used-weight-1m").is_some(), "{file}");
    if status != 204 {
        serde_json::from_str::<Value>(&body).unwrap_or_else(|e| panic!("{file}: not JSON ({e}): {body}"));
    }
}

fn id(text: &str) -> JobId {
    text.parse().unwrap()
}

/// The resolved config of the create-job sample's body.
fn sample_config() -> pipai_engine::JobConfig {
    let event: Value = serde_json::from_str(&event("create-job.json")).unwrap();
    pipai_engine::JobConfig::from_json_bytes(event["body"].as_str().unwrap().as_bytes(), chrono::Utc::now()).unwrap()
}

#[tokio::test]
async fn sqs_events_run_and_dead_letter_jobs() {
    let store = store_with_demo();
    let config = sample_config();
    for job in ["bt_3c91ef00", "bt_88a21000"] {
        store.put_job_raw(JobRecord::new_queued(id(job), "demo".parse().unwrap(), config.clone(), now_ms()));
    }
    let worker = Worker { store, results: store, market: store, settings: WorkerSettings::default() };
    let batch: SqsEvent = serde_json::from_str(&event("job-worker.json")).unwrap();
    let resp = sqs::handle_batch(&worker, "pipai-local-JobsDeadLetterQueue", batch, now_ms() + 60_000).await;
    assert!(resp.batch_item_failures.is_empty());
    for job in ["bt_3c91ef00", "bt_88a21000"] {
        assert_eq!(store.get_job(&id(job)).await.unwrap().unwrap().status, JobStatus::Done);
    }
    // The dead-letter sample for a job that is already done changes nothing; for a queued one it fails it.
    store.put_job_raw(JobRecord::new_queued(id("bt_3c91ef00"), "demo".parse().unwrap(), config, now_ms()));
    let dead: SqsEvent = serde_json::from_str(&event("job-worker-dead-letter.json")).unwrap();
    let resp = sqs::handle_batch(&worker, "pipai-local-JobsDeadLetterQueue", dead, now_ms() + 60_000).await;
    assert!(resp.batch_item_failures.is_empty());
    let job = store.get_job(&id("bt_3c91ef00")).await.unwrap().unwrap();
    assert_eq!((job.status, job.error.unwrap().code), (JobStatus::Failed, FailCode::Internal));
}

/// The strategy samples, in an order that leaves each one's strategy there for the next.
#[tokio::test]
async fn strategy_events_reach_their_routes() {
    use pipai_service::ports::{StrategyCreateOutcome, StrategyStore};
    let store = store_with_demo();
    let api = api(store).await;
    let config = serde_json::json!({"template_id": "tpl_grid", "params": {"grid_levels": 8, "upper_price": "72000",
                                    "lower_price": "60000"}});
    let strategy = pipai_service::model::StrategyRecord {
        id: "st_3c91ef00".parse().unwrap(),
        user_id: "demo".parse().unwrap(),
        name: "demo".into(),
        description: None,
        version: 1,
        config: pipai_engine::StrategyConfig::from_value(&config, chrono::Utc::now()).unwrap(),
        created_at_ms: now_ms(),
        updated_at_ms: now_ms(),
    };
    assert_eq!(store.create_strategy(&strategy).await.unwrap(), StrategyCreateOutcome::Created);
    let cases = [
        ("create-strategy.json", Route::CreateStrategy, 201),
        ("get-strategy.json", Route::GetStrategy, 200),
        ("list-strategies.json", Route::ListStrategies, 200),
        ("update-strategy.json", Route::UpdateStrategy, 200),
        ("delete-strategy.json", Route::DeleteStrategy, 204),
    ];
    for (file, route, status) in cases {
        serve_event(&api, file, route, status).await;
    }
    assert_eq!(store.get_strategy(&"st_3c91ef00".parse().unwrap()).await.unwrap(), None);
}

// ---- Deleting and comparing jobs.

#[tokio::test]
async fn delete_and_compare_events_reach_their_routes() {
    let store = store_with_demo();
    let api = api(store).await;
    for (job, status) in [("bt_3c91ef00", JobStatus::Failed), ("bt_88a21000", JobStatus::Cancelled)] {
        let mut record = JobRecord::new_queued(id(job), "demo".parse().unwrap(), sample_config(), now_ms());
        (record.status, record.finished_at_ms, record.slot_released) = (status, Some(now_ms()), true);
        store.put_job_raw(record);
    }
    for (file, route, status) in
        [("compare-jobs.json", Route::CompareJobs, 200), ("delete-job.json", Route::DeleteJob, 204)]
    {
        let raw = event(file);
        let stale = lambda_http::request::from_str(&raw).unwrap();
        assert_eq!(http::handle(&api, route, stale).await.unwrap().status(), 401, "{file} as committed");
        let req = lambda_http::request::from_str(&resign(&raw)).unwrap();
        let resp = http::handle(&api, route, req).await.unwrap();
        assert_eq!(resp.status(), status, "{file}: {:?}", String::from_utf8_lossy(resp.body().as_ref()));
        assert!(resp.headers().get("x-pipai-used-weight-1m").is_some(), "{file}");
    }
    assert!(store.get_job(&id("bt_88a21000")).await.unwrap().is_none());
}

// ---- A done job's downloadable files.

/// The job is run by the worker (which uploads its files), then the sample lists them: each
/// presigned URL of the memory store gives a file's bytes; before the run the route is a 409.
#[tokio::test]
async fn get_artifacts_event_reaches_its_route() {
    let store = store_with_demo();
    let api = api(store).await;
    store.put_job_raw(JobRecord::new_queued(id("bt_3c91ef00"), "demo".parse().unwrap(), sample_config(), now_ms()));
    serve_event(&api, "get-artifacts.json", Route::GetArtifacts, 409).await;
    let worker = Worker { store, results: store, market: store, settings: WorkerSettings::default() };
    worker.process(&id("bt_3c91ef00"), now_ms() + 60_000).await.unwrap();
    serve_event(&api, "get-artifacts.json", Route::GetArtifacts, 200).await;
    let req = lambda_http::request::from_str(&resign(&event("get-artifacts.json"))).unwrap();
    let resp = http::handle(&api, Route::GetArtifacts, req).await.unwrap();
    let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    let names: Vec<&str> = body["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["equity.parquet", "equity.csv", "trades.parquet", "trades.csv", "bars.parquet", "report.html"]);
    for f in body["files"].as_array().unwrap() {
        let bytes = store.artifact_of_url(f["url"].as_str().unwrap()).expect("the url points at the file");
        assert_eq!(bytes.len() as u64, f["bytes"].as_u64().unwrap(), "{f}");
    }
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
}

// ---------------------------------------------------------------- completion webhooks

/// Answers every POST with 204 and counts them (no network).
#[derive(Default)]
struct Accepting(std::sync::atomic::AtomicUsize);

impl pipai_service::notifier::WebhookSender for Accepting {
    async fn post(&self, _: &pipai_service::notifier::WebhookPost<'_>) -> pipai_service::notifier::SendOutcome {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        pipai_service::notifier::SendOutcome::Answered(204)
    }
}

#[tokio::test]
async fn the_notifier_sample_delivers_its_event() {
    let store = store_with_demo();
    let master = api(store).await.master;
    let mut job = JobRecord::new_queued(id("bt_3c91ef00"), "demo".parse().unwrap(), sample_config(), now_ms());
    job.status = JobStatus::Done;
    job.finished_at_ms = Some(now_ms());
    job.webhook.notify_url = Some("https://93.184.216.34/hook".to_string().try_into().unwrap());
    job.webhook.key_id = Some(KEY.parse().unwrap());
    store.put_job_raw(job);
    let notifier = pipai_service::notifier::Notifier {
        store,
        queue: store,
        sender: Accepting::default(),
        master,
        settings: Default::default(),
    };
    let batch: SqsEvent = serde_json::from_str(&event("job-notifier.json")).unwrap();
    let resp = sqs::handle_notifications(&notifier, batch).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(notifier.sender.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    let job = store.get_job(&id("bt_3c91ef00")).await.unwrap().unwrap();
    let record = &job.webhook.notifications[0];
    assert_eq!((record.event_id.as_str(), record.attempts), ("evt_d9ed65e216594e22949b21ad6109bd5f", 1));
    assert!(record.delivered_at_ms.is_some());
}

// ---- Sweeps.

#[tokio::test]
async fn sweep_events_reach_their_routes() {
    use pipai_service::sweeps::{SweepRecord, SweepStore};
    let store = store_with_demo();
    let api = api(store).await;
    let body = event("create-sweep.json");
    let body: Value = serde_json::from_str(&body).unwrap();
    let spec = pipai_engine::sweep::SweepSpec::from_json_bytes(body["body"].as_str().unwrap().as_bytes()).unwrap();
    let sweep = SweepRecord::new_queued("sw_3c91ef00".parse().unwrap(), "demo".parse().unwrap(), &spec, 4, 1, now_ms());
    store.create_sweep(&sweep, 5).await.unwrap();
    for (file, route, status) in [
        ("create-sweep.json", Route::CreateSweep, 201),
        ("get-sweep.json", Route::GetSweep, 200),
        ("list-sweeps.json", Route::ListSweeps, 200),
        ("cancel-sweep.json", Route::CancelSweep, 200),
    ] {
        serve_event(&api, file, route, status).await;
    }
}

#[tokio::test]
async fn the_sweep_worker_sample_runs_its_chunk() {
    use pipai_service::sweep_worker::SweepWorker;
    use pipai_service::sweeps::{SweepRecord, SweepStore};
    let store = store_with_demo();
    let create: Value = serde_json::from_str(&event("create-sweep.json")).unwrap();
    let spec = pipai_engine::sweep::SweepSpec::from_json_bytes(create["body"].as_str().unwrap().as_bytes()).unwrap();
    let sweep = SweepRecord::new_queued("sw_3c91ef00".parse().unwrap(), "demo".parse().unwrap(), &spec, 4, 1, now_ms());
    store.create_sweep(&sweep, 5).await.unwrap();
    let worker = SweepWorker { store, market: store };
    let batch: SqsEvent = serde_json::from_str(&event("sweep-worker.json")).unwrap();
    let resp = pipai_lambda::sweeps::handle_chunk_batch(&worker, "pipai-local-SweepChunksDeadLetterQueue", batch).await;
    assert!(resp.batch_item_failures.is_empty());
    let done = store.get_sweep(&sweep.id).await.unwrap().unwrap();
    assert_eq!((done.status, done.completed), (JobStatus::Done, 4));

    // The stream's ranking step on the sweeps table's sample record, the sweep now done.
    let stream: aws_lambda_events::event::dynamodb::Event = serde_json::from_str(&event("sweep-events.json")).unwrap();
    let ended = |_: &aws_lambda_events::event::dynamodb::EventRecord| {
        Ok(Some(pipai_service::sweep_events::SweepChange {
            kind: pipai_service::events::ChangeKind::Modify,
            sweep: done.clone(),
            old_status: Some(JobStatus::Running),
        }))
    };
    for _ in 0..2 {
        let resp = pipai_lambda::sweeps::handle_stream_batch(store, store, store, store, stream.clone(), ended).await;
        assert!(resp.batch_item_failures.is_empty());
    }
    let ranked = store.get_sweep(&sweep.id).await.unwrap().unwrap().ranking.expect("the ranking is stored");
    assert_eq!(store.ranking_pages(&sweep.id), usize::from(ranked.total > 0));
}

#[tokio::test]
async fn the_sweep_events_sample_relays_the_new_sweep_and_notifies_the_ended_one() {
    use aws_lambda_events::event::dynamodb::{Event, EventRecord};
    use pipai_service::events::ChangeKind;
    use pipai_service::sweep_events::SweepChange;
    use pipai_service::sweeps::SweepRecord;
    let store = store_with_demo();
    let create: Value = serde_json::from_str(&event("create-sweep.json")).unwrap();
    let spec = pipai_engine::sweep::SweepSpec::from_json_bytes(create["body"].as_str().unwrap().as_bytes()).unwrap();
    let queued =
        SweepRecord::new_queued("sw_3c91ef00".parse().unwrap(), "demo".parse().unwrap(), &spec, 4, 1, now_ms());
    let mut done = queued.clone();
    done.status = JobStatus::Done;
    done.finished_at_ms = Some(now_ms());
    done.webhook.notify_url = Some("https://93.184.216.34/hook".to_string().try_into().unwrap());
    done.webhook.key_id = Some(KEY.parse().unwrap());
    // The images' decoding is pipai-aws's (`sweep_change`, tested on this same file there).
    let decode = |r: &EventRecord| {
        Ok(Some(match r.event_name.as_str() {
            "INSERT" => SweepChange { kind: ChangeKind::Insert, sweep: queued.clone(), old_status: None },
            _ => SweepChange { kind: ChangeKind::Modify, sweep: done.clone(), old_status: Some(JobStatus::Running) },
        }))
    };
    let batch: Event = serde_json::from_str(&event("sweep-events.json")).unwrap();
    assert_eq!(batch.records.len(), 2);
    let resp = pipai_lambda::sweeps::handle_stream_batch(store, store, store, store, batch, decode).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(store.drain_chunk_queue(), [(queued.id.clone(), 0)], "the insert's chunk");
    let notes = store.drain_notifications();
    assert_eq!(notes.len(), 1, "the end's notification");
    assert_eq!(notes[0].0.event_type.to_string(), "sweep.done");
}
