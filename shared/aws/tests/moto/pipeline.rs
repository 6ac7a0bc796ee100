//! Issue 3's delivery guarantees on the real adapters (DynamoDB, SQS, S3 in moto) through the
//! real Lambda handlers: `pipai_lambda::sqs::handle_batch` (the worker, subscribed to the jobs
//! queue and its dead-letter queue) and `pipai_lambda::stream::handle_batch` (the jobs table's
//! stream, which relays new jobs to the queue and gives slots back). Their events are built in
//! aws_lambda_events' shapes from what moto's SQS and DynamoDB Streams return, and each SQS
//! invocation is settled as Lambda's event source mapping does it: the messages the handler did
//! not report as failed are deleted, the failed ones come back after the visibility timeout, and
//! moto's redrive policy moves a message to the dead-letter queue after maxReceiveCount receives.
//!
//! - a message delivered again after its job is done changes nothing;
//! - duplicate deliveries racing while the job is queued run it once;
//! - a worker killed mid-run leaves a job that a later delivery takes over and finishes;
//! - a message that keeps failing ends in the dead-letter queue, its job in `failed`;
//! - and in every case the user's active-job slot is given back exactly once, whatever order and
//!   however often the stream delivers the job's records.
//!
//! Jobs are created through the signed API, so the slot bookkeeping is the real one; each user
//! also holds a second, never-run job, so a slot given back twice would show in the counter
//! (which never goes below 0). Every test has its own user, symbol and queue pair (with a short
//! visibility timeout: the deployed 12 minutes would make a redelivery take that long); the
//! tables, buckets and the jobs table's stream are the shared ones. Like the rest of this suite,
//! the tests assume nothing else consumes that stream (no `infra/local.sh` pump on this moto).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use pipai_aws::aws_config::SdkConfig;
use pipai_aws::{job_change, load_master_key_from_lookup, DynamoStore, S3MarketData, S3Results, SqsQueue};
use pipai_engine::time::iso;
use pipai_engine::{NoObserver, Timeframe};
use pipai_market_data::generate_1m;
use pipai_market_data::layout::split_by_month;
use pipai_market_data::time::ymd_ms;
use pipai_service::auth::sign_request;
use pipai_service::model::{ApiKeyRecord, JobRecord, JobStatus, KeyStatus};
use pipai_service::ports::{JobStore, KeyStore, MarketData, ResultStore, StoreError};
use pipai_service::worker::{load_job_bars, Worker, WorkerSettings};
use pipai_service::{Api, ApiRequest, ApiResponse, ApiSettings, Route};
use pipai_service::{JobId, KeyId, UserId};
use serde_json::{json, Value};

use crate::common::{jobs_stream_records, moto, now_ms, sdk, unique, unique_user};

use pipai_engine::time::DAY_MS;
/// How long a run holds its job between heartbeats in these tests (60 s deployed).
const LEASE_MS: i64 = 1_500;
/// How long any one wait may take before the test fails (a few seconds at most when things
/// work; the margin is for a loaded machine).
const PATIENCE: Duration = Duration::from_secs(60);

/// The API and the adapters, on moto's shared tables and buckets.
struct Stack {
    sdk: SdkConfig,
    api: Api<DynamoStore, S3Results, S3MarketData>,
    sqs: aws_sdk_sqs::Client,
}

struct User {
    id: UserId,
    key: KeyId,
    secret: String,
}

impl Stack {
    async fn new() -> Stack {
        let sdk = sdk().await;
        let lookup = moto().lookup();
        let api = Api {
            store: DynamoStore::from_lookup(&sdk, &lookup).unwrap(),
            results: S3Results::from_lookup(&sdk, &lookup).unwrap(),
            market: S3MarketData::from_lookup(&sdk, &lookup).unwrap(),
            master: load_master_key_from_lookup(&sdk, &lookup).await.unwrap(),
            settings: ApiSettings::default(),
        };
        Stack { sqs: aws_sdk_sqs::Client::new(&sdk), sdk, api }
    }

    fn store(&self) -> &DynamoStore {
        &self.api.store
    }

    fn worker(&self, settings: WorkerSettings) -> Worker<&DynamoStore, &S3Results, &S3MarketData> {
        Worker { store: &self.api.store, results: &self.api.results, market: &self.api.market, settings }
    }

    async fn job(&self, id: &JobId) -> JobRecord {
        self.store().get_job(id).await.unwrap().expect("the job exists")
    }

    async fn active_jobs(&self, user: &User) -> u32 {
        self.store().active_jobs(&user.id).await.unwrap()
    }

    /// A new user with an API key, stored as `pipai keys create` stores it.
    async fn user(&self) -> User {
        let (key, secret) = pipai_service::secrets::new_key_pair();
        let user = unique_user();
        let record = ApiKeyRecord {
            key_id: key.clone(),
            user_id: user.clone(),
            secret_ciphertext: self.api.master.encrypt_secret(key.as_str(), &secret),
            status: KeyStatus::Active,
            created_at_ms: now_ms(),
            label: "pipeline test".into(),
        };
        assert!(self.store().put_key(&record).await.unwrap());
        User { id: user, key, secret }
    }

    /// A signed request through the API handler, as the API functions serve it.
    async fn call(&self, user: &User, method: &str, path: &str, body: &[u8]) -> ApiResponse {
        // Two identical requests signed in the same millisecond would be a replay.
        static TICK: AtomicI64 = AtomicI64::new(0);
        let now = now_ms() + TICK.fetch_add(1, Ordering::Relaxed) % 1000;
        let headers = sign_request(user.key.as_str(), &user.secret, now, method, path, "", body);
        let req = ApiRequest {
            method: method.into(),
            path: path.into(),
            raw_query: String::new(),
            headers: headers
                .into_iter()
                .chain([("content-type".to_string(), "application/json".to_string())])
                .collect(),
            body: body.to_vec(),
        };
        self.api.handle(Route::of(method, path).expect("a known route"), &req, now).await
    }

    async fn create_job(&self, user: &User, body: &Value) -> JobId {
        let resp = self.call(user, "POST", "/v1/backtest/jobs", &serde_json::to_vec(body).unwrap()).await;
        assert_eq!(resp.status, 201, "{}", resp.body_json());
        resp.body_json()["id"].as_str().unwrap().parse().expect("a job id")
    }

    /// A fresh symbol with `days` of generated 1m bars from 2024-03-01, stored the way
    /// `pipai data ingest` stores them (monthly Parquet partitions and the catalog).
    async fn symbol_with_bars(&self, days: i64) -> (String, i64, i64) {
        let symbol = unique("P").to_uppercase();
        let (start, end) = (ymd_ms(2024, 3, 1), ymd_ms(2024, 3, 1) + days * DAY_MS);
        let bars = generate_1m(17, 100.0, start, end);
        let mut set = tokio::task::JoinSet::new();
        for (month, part) in split_by_month(&bars) {
            let (market, symbol) = (self.api.market.clone(), symbol.clone());
            set.spawn(async move { market.put_month(&symbol, Timeframe::M1, month, &part, true).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        (symbol, start, end)
    }

    /// The result artifacts stored for `id`: (key, ETag, LastModified).
    async fn artifacts(&self, id: &JobId) -> Vec<(String, String, i64)> {
        let out = self
            .api
            .results
            .client()
            .list_objects_v2()
            .bucket(moto().var("RESULTS_BUCKET"))
            .prefix(format!("results/{id}/"))
            .send()
            .await
            .unwrap();
        let mut found: Vec<_> = out
            .contents()
            .iter()
            .map(|o| {
                (
                    o.key().unwrap_or_default().to_string(),
                    o.e_tag().unwrap_or_default().to_string(),
                    o.last_modified().map(|t| t.secs()).unwrap_or_default(),
                )
            })
            .collect();
        found.sort();
        found
    }

    /// The done job as the API returns it is exactly what the engine computes offline on the same
    /// bars, and its arrays are stored under the deterministic keys, nothing else.
    async fn assert_result_is_the_offline_run(&self, user: &User, id: &JobId) {
        let job = self.job(id).await;
        let config = job.config;
        let mut data = Vec::new();
        for symbol in &config.symbols {
            data.push(
                load_job_bars(&self.api.market, symbol, config.timeframe, config.start_ms(), config.end_ms())
                    .await
                    .unwrap(),
            );
        }
        let offline = pipai_engine::run(&config, &data, &mut NoObserver).unwrap();
        let offline = serde_json::to_value(&offline.result).unwrap();

        let got = self.call(user, "GET", &format!("/v1/backtest/jobs/{id}"), b"").await;
        assert_eq!(got.status, 200, "{}", got.body_json());
        let got = got.body_json();
        assert_eq!((&got["status"], &got["progress"]), (&json!("done"), &json!(1.0)));
        assert!(got["error"].is_null());
        for key in ["metrics", "structured_metrics", "summary", "benchmark", "provenance"] {
            assert_eq!(got["result"][key], offline[key], "{key}");
        }
        let keys: Vec<String> = self.artifacts(id).await.into_iter().map(|(k, _, _)| k).collect();
        // The result's own objects, and beside them the downloadable files (docs/api.md, "Artifacts").
        let mut expected: Vec<String> = ["equity_curve.json", "result.json", "trades.json"]
            .into_iter()
            .chain(["equity.parquet", "equity.csv", "trades.parquet", "trades.csv", "bars.parquet", "report.html"])
            .map(|n| format!("results/{id}/{n}"))
            .collect();
        expected.sort();
        assert_eq!(keys, expected);
        for (name, want) in [("equity_curve.json", &offline["equity_curve"]), ("trades.json", &offline["trades"])] {
            let bytes = self.api.results.get_artifact(id, name).await.unwrap().unwrap();
            assert_eq!(&serde_json::from_slice::<Value>(&bytes).unwrap(), want, "{name}");
        }
        // result.json: the rest of the result and the arrays' page index, not the arrays again.
        let bytes = self.api.results.get_artifact(id, "result.json").await.unwrap().unwrap();
        let stored = serde_json::from_slice::<Value>(&bytes).unwrap();
        for key in ["metrics", "structured_metrics", "summary", "benchmark", "provenance"] {
            assert_eq!(stored[key], offline[key], "result.json {key}");
        }
        assert!(stored["pages"]["trades"].is_object() && stored.get("trades").is_none(), "{stored}");
        assert_eq!(stored["files"].as_array().map(Vec::len), Some(6), "{stored}");
    }

    /// The stream function's invocation on `records`; it must not report a failure.
    async fn deliver_stream(&self, relay: &SqsQueue, records: Vec<Value>) {
        let event: StreamEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
        let response = pipai_lambda::stream::handle_batch(self.store(), relay, event, job_change).await;
        assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
    }

    /// The job's stream records so far, once `ready` says they include what the caller needs.
    async fn stream_until(&self, id: &JobId, what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let records = jobs_stream_records(&self.sdk, id).await;
            if ready(&records) {
                return records;
            }
            assert!(Instant::now() < deadline, "no stream record with {what} for {id}: {records:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Relays the job's INSERT record through the stream function: one message on the queue.
    async fn relay_insert(&self, relay: &SqsQueue, id: &JobId) {
        let records = self.stream_until(id, "the INSERT", |r| r.iter().any(|r| r["eventName"] == "INSERT")).await;
        self.deliver_stream(relay, records.into_iter().filter(|r| r["eventName"] == "INSERT").collect()).await;
    }

    /// The slot bookkeeping on the job's terminal records, delivered out of order and twice, in
    /// two invocations at once: the slot comes back exactly once. Then the record of that release
    /// (`slot_released` set) is delivered too, with everything else again: nothing more changes.
    async fn assert_slot_released_once(&self, relay: &SqsQueue, user: &User, id: &JobId, terminal: &str) {
        let has_terminal = |r: &[Value]| transitions(r, "running", terminal) + transitions(r, "queued", terminal) > 0;
        let records = self.stream_until(id, &format!("status {terminal}"), has_terminal).await;
        assert_eq!(
            transitions(&records, "running", terminal) + transitions(&records, "queued", terminal),
            1,
            "the job became {terminal} once"
        );
        let modifies: Vec<Value> = records.into_iter().filter(|r| r["eventName"] == "MODIFY").collect();
        assert_eq!(self.active_jobs(user).await, 2, "this job and the held one");
        let reversed: Vec<Value> = modifies.iter().rev().cloned().collect();
        let twice: Vec<Value> = modifies.iter().chain(&modifies).cloned().collect();
        tokio::join!(self.deliver_stream(relay, reversed), self.deliver_stream(relay, twice));
        assert_eq!(self.active_jobs(user).await, 1, "one slot given back");
        assert!(self.job(id).await.slot_released);

        let records = self
            .stream_until(id, "slot_released", |r| {
                r.iter().any(|r| r["dynamodb"]["NewImage"]["slot_released"]["BOOL"] == true)
            })
            .await;
        let mut replay: Vec<Value> = records.into_iter().filter(|r| r["eventName"] == "MODIFY").rev().collect();
        replay.extend(modifies);
        self.deliver_stream(relay, replay).await;
        assert_eq!(self.active_jobs(user).await, 1, "still one slot given back");
    }
}

/// Transitions from status `from` to `to` among stream records.
fn transitions(records: &[Value], from: &str, to: &str) -> usize {
    let status = |r: &Value, image: &str| r["dynamodb"][image]["status"]["S"].as_str().map(str::to_string);
    records
        .iter()
        .filter(|r| r["eventName"] == "MODIFY")
        .filter(|r| status(r, "OldImage").as_deref() == Some(from) && status(r, "NewImage").as_deref() == Some(to))
        .count()
}

/// A `tpl_ma_cross` job on all of `symbol`'s bars at 1m.
fn job_body(symbol: &str, start: i64, end: i64) -> Value {
    json!({
        "template_id": "tpl_ma_cross",
        "params": {"fast": 5, "slow": 20, "direction": "both"},
        "symbols": [symbol],
        "timeframe": "1m",
        "start": iso(start),
        "end": iso(end - 60_000),
        "capital": "10000.00",
    })
}

/// This test's jobs queue and its dead-letter queue, made like template.yaml's pair (redrive
/// after `max_receive` receives) with a short visibility timeout.
struct Queues {
    url: String,
    arn: String,
    dlq_url: String,
    dlq_arn: String,
    /// What the worker function is configured with: the name from `JOBS_DLQ_URL`.
    dlq_name: String,
    region: String,
}

impl Queues {
    async fn new(stack: &Stack, visibility_s: u32, max_receive: u32) -> Queues {
        let sqs = &stack.sqs;
        let arn_of = |url: String| async move {
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap();
            let arn = attrs.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).unwrap().clone();
            (url, arn)
        };
        let dlq = sqs
            .create_queue()
            .queue_name(unique("pipai-test-dlq-"))
            .attributes(QueueAttributeName::VisibilityTimeout, "1")
            .send()
            .await
            .unwrap();
        let (dlq_url, dlq_arn) = arn_of(dlq.queue_url.unwrap()).await;
        let redrive = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive });
        let queue = sqs
            .create_queue()
            .queue_name(unique("pipai-test-jobs-"))
            .attributes(QueueAttributeName::VisibilityTimeout, visibility_s.to_string())
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .unwrap();
        let (url, arn) = arn_of(queue.queue_url.unwrap()).await;
        Queues {
            dlq_name: pipai_lambda::config::queue_name(&dlq_url).to_string(),
            url,
            arn,
            dlq_url,
            dlq_arn,
            region: stack.sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into()),
        }
    }

    /// The stream function's queue (its `JOBS_QUEUE_URL`).
    fn relay(&self, stack: &Stack) -> SqsQueue {
        SqsQueue::from_lookup(&stack.sdk, &|k: &str| (k == "JOBS_QUEUE_URL").then(|| self.url.clone())).unwrap()
    }

    /// Up to `max` messages of the queue at `url`, as Lambda's SQS records.
    async fn receive(&self, stack: &Stack, url: &str, max: i32, wait_s: i32) -> Vec<Value> {
        let arn = if url == self.dlq_url { &self.dlq_arn } else { &self.arn };
        let out = stack
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_s)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        out.messages()
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect())
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": self.region,
                })
            })
            .collect()
    }

    /// The next `n` messages of the queue at `url` (failing the test if they do not come).
    async fn receive_n(&self, stack: &Stack, url: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        let mut got = Vec::new();
        while got.len() < n {
            assert!(Instant::now() < deadline, "only {} of {n} messages arrived on {url}", got.len());
            got.extend(self.receive(stack, url, (n - got.len()).min(10) as i32, 1).await);
        }
        got
    }

    /// What the event source mapping does after an invocation: deletes every message of the
    /// batch the function did not report as failed. Returns how many stay (and come back).
    async fn settle(&self, stack: &Stack, url: &str, batch: &[Value], response: &SqsBatchResponse) -> usize {
        let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        for m in batch {
            if !failed.contains(&m["messageId"].as_str().unwrap()) {
                let handle = m["receiptHandle"].as_str().unwrap();
                stack.sqs.delete_message().queue_url(url).receipt_handle(handle).send().await.unwrap();
            }
        }
        failed.len()
    }

    /// Messages in the queue at `url`: (visible, in flight).
    async fn messages(&self, stack: &Stack, url: &str) -> (u32, u32) {
        let attrs = stack
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let count = |name: QueueAttributeName| -> u32 {
            attrs.attributes().and_then(|a| a.get(&name)).map(|v| v.parse().unwrap()).unwrap_or(0)
        };
        (
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Both queues are empty: nothing in flight, nothing waiting.
    async fn assert_empty(&self, stack: &Stack) {
        for url in [&self.url, &self.dlq_url] {
            assert_eq!(self.messages(stack, url).await, (0, 0), "{url} still holds messages");
        }
    }

    async fn delete(self, stack: &Stack) {
        for url in [self.url, self.dlq_url] {
            stack.sqs.delete_queue().queue_url(url).send().await.unwrap();
        }
    }
}

/// The worker function's invocation on `batch` (SQS records), with 15 minutes to go.
async fn invoke_worker<S: JobStore, R: ResultStore, M: MarketData>(
    worker: &Worker<S, R, M>,
    dead_letter_queue: &str,
    batch: &[Value],
) -> SqsBatchResponse {
    let event: SqsEvent = serde_json::from_value(json!({ "Records": batch })).unwrap();
    pipai_lambda::sqs::handle_batch(worker, dead_letter_queue, event, now_ms() + 900_000).await
}

/// maxReceiveCount of the jobs queue as template.yaml declares it (the shared moto queue is made
/// from the template).
async fn deployed_max_receive_count(stack: &Stack) -> u32 {
    let attrs = stack
        .sqs
        .get_queue_attributes()
        .queue_url(moto().var("JOBS_QUEUE_URL"))
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap();
    let policy = attrs.attributes().and_then(|a| a.get(&QueueAttributeName::RedrivePolicy)).expect("a redrive policy");
    let policy: Value = serde_json::from_str(policy).unwrap();
    let count = &policy["maxReceiveCount"];
    count.as_u64().or_else(|| count.as_str().and_then(|s| s.parse().ok())).expect("maxReceiveCount") as u32
}

/// Everything a test needs: a user holding one never-run job (so a slot given back twice would
/// show), its own symbol with `days` of bars, its own queues, and a job created through the API
/// whose INSERT the stream function has relayed to the queue.
/// The end of every duplicate-delivery story: the job ran once, its result is the offline run's,
/// nothing is left in the queues, the slot came back once; then the test's queues go.
async fn assert_one_run_done_and_clean_up(stack: &Stack, queues: Queues, relay: &SqsQueue, user: &User, id: &JobId) {
    stack.assert_result_is_the_offline_run(user, id).await;
    queues.assert_empty(stack).await;
    let records = jobs_stream_records(&stack.sdk, id).await;
    assert_eq!(transitions(&records, "queued", "running"), 1, "one run");
    stack.assert_slot_released_once(relay, user, id, "done").await;
    queues.delete(stack).await;
}

struct Scenario {
    stack: Stack,
    user: User,
    queues: Queues,
    relay: SqsQueue,
    id: JobId,
}

async fn scenario(days: i64, visibility_s: u32, max_receive: Option<u32>) -> Scenario {
    let stack = Stack::new().await;
    let max_receive = match max_receive {
        Some(n) => n,
        None => deployed_max_receive_count(&stack).await,
    };
    let (queues, (symbol, start, end), user) =
        tokio::join!(Queues::new(&stack, visibility_s, max_receive), stack.symbol_with_bars(days), stack.user());
    let relay = queues.relay(&stack);
    let body = job_body(&symbol, start, end);
    stack.create_job(&user, &body).await; // held: never enqueued, never run
    let id = stack.create_job(&user, &body).await;
    assert_eq!(stack.active_jobs(&user).await, 2);
    stack.relay_insert(&relay, &id).await;
    Scenario { stack, user, queues, relay, id }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_again_after_its_job_is_done_changes_nothing() {
    let Scenario { stack, user, queues, relay, id } = scenario(3, 1, Some(5)).await;
    let worker = stack.worker(WorkerSettings::default());

    let first = queues.receive_n(&stack, &queues.url, 1).await;
    let response = invoke_worker(&worker, &queues.dlq_name, &first).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
    let done = stack.job(&id).await;
    assert_eq!((done.status, done.attempts), (JobStatus::Done, 1));
    let artifacts = stack.artifacts(&id).await;

    // The delete after the invocation is lost: SQS delivers the same message again.
    let again = queues.receive_n(&stack, &queues.url, 1).await;
    assert_eq!(again[0]["messageId"], first[0]["messageId"]);
    assert_eq!(again[0]["attributes"]["ApproximateReceiveCount"], "2");
    let response = invoke_worker(&worker, &queues.dlq_name, &again).await;
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
    assert_eq!(queues.settle(&stack, &queues.url, &again, &response).await, 0);

    assert_eq!(stack.job(&id).await, done, "the second delivery changed the job");
    assert_eq!(stack.artifacts(&id).await, artifacts, "the second delivery rewrote the result");
    assert_one_run_done_and_clean_up(&stack, queues, &relay, &user, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_racing_while_the_job_is_queued_run_it_once() {
    let Scenario { stack, user, queues, relay, id } = scenario(3, 1, Some(5)).await;
    let worker = stack.worker(WorkerSettings::default());

    // The stream delivers the INSERT again (a retried batch): a second message for the job.
    stack.relay_insert(&relay, &id).await;
    let messages = queues.receive_n(&stack, &queues.url, 2).await;
    assert_ne!(messages[0]["messageId"], messages[1]["messageId"]);
    assert_eq!(messages[0]["body"], messages[1]["body"]);

    // Three invocations at once while the job is queued: one per message, and the first message
    // twice over (at-least-once delivery may hand one message to two pollers).
    let batches = [&messages[0..1], &messages[1..2], &messages[0..1]];
    let (r0, r1, r2) = tokio::join!(
        invoke_worker(&worker, &queues.dlq_name, batches[0]),
        invoke_worker(&worker, &queues.dlq_name, batches[1]),
        invoke_worker(&worker, &queues.dlq_name, batches[2]),
    );
    let done = stack.job(&id).await;
    assert_eq!((done.status, done.attempts), (JobStatus::Done, 1), "one claim ran the job");
    let mut left = 0;
    for (batch, response) in batches.iter().zip([&r0, &r1, &r2]) {
        left += queues.settle(&stack, &queues.url, batch, response).await;
    }
    assert!(left < 3, "one invocation ran the job: {r0:?} {r1:?} {r2:?}");

    // Those that found the job leased come back and are dropped now that it is done.
    let deadline = Instant::now() + PATIENCE;
    while queues.messages(&stack, &queues.url).await != (0, 0) {
        assert!(Instant::now() < deadline, "messages kept coming back");
        let batch = queues.receive(&stack, &queues.url, 10, 1).await;
        let response = invoke_worker(&worker, &queues.dlq_name, &batch).await;
        assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
        queues.settle(&stack, &queues.url, &batch, &response).await;
    }

    assert_eq!(stack.job(&id).await, done, "the late deliveries changed the job");
    assert_one_run_done_and_clean_up(&stack, queues, &relay, &user, &id).await;
}

/// S3 results whose writes never complete: a run using it is stuck at the latest when it stores
/// its result, so the test's kill always lands before the job could be completed.
#[derive(Clone)]
struct NeverStores {
    inner: S3Results,
    reached: Arc<AtomicBool>,
}

impl ResultStore for NeverStores {
    async fn put_artifact(&self, _: &JobId, _: &str, _: Vec<u8>, _: &str) -> Result<(), StoreError> {
        self.reached.store(true, Ordering::SeqCst);
        std::future::pending().await
    }

    async fn get_artifact(&self, job_id: &JobId, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_artifact(job_id, name).await
    }

    async fn get_artifact_range(
        &self,
        job_id: &JobId,
        name: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_artifact_range(job_id, name, range).await
    }
    async fn delete_artifacts(&self, job_id: &JobId) -> Result<usize, StoreError> {
        self.inner.delete_artifacts(job_id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_leaves_a_job_that_a_later_delivery_finishes() {
    // 180 days of 1m bars: the engine reports progress every 65,536 bars, so about 4 times.
    let Scenario { stack, user, queues, relay, id } = scenario(180, 2, Some(5)).await;

    // The first invocation runs the job and is killed mid-run (the task is aborted: its future
    // is dropped wherever it is, as when Lambda kills the process).
    let first = queues.receive_n(&stack, &queues.url, 1).await;
    let reached = Arc::new(AtomicBool::new(false));
    let doomed = Worker {
        store: stack.store().clone(),
        results: NeverStores { inner: stack.api.results.clone(), reached: reached.clone() },
        market: stack.api.market.clone(),
        // A heartbeat at every tick: progress is in the table as soon as the engine reports any.
        settings: WorkerSettings { lease_ms: LEASE_MS, heartbeat_ms: 0, min_write_gap_ms: 1, ..Default::default() },
    };
    let dlq_name = queues.dlq_name.clone();
    let run = tokio::spawn(async move { invoke_worker(&doomed, &dlq_name, &first).await });
    let deadline = Instant::now() + PATIENCE;
    loop {
        let job = stack.job(&id).await;
        if job.status == JobStatus::Running && job.progress > 0.0 {
            break;
        }
        assert!(!reached.load(Ordering::SeqCst), "the engine finished before it reported progress: {job:?}");
        assert!(!run.is_finished(), "the first run ended by itself: {job:?}");
        assert!(Instant::now() < deadline, "the job never ran: {job:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let killed = stack.job(&id).await;
    assert_eq!((killed.status, killed.attempts), (JobStatus::Running, 1));
    assert!(killed.progress > 0.0 && killed.progress < 1.0, "{}", killed.progress);
    let lease_until = killed.lease_until_ms.expect("a running job has a lease");

    // The message comes back after its visibility timeout; a delivery while the dead run's lease
    // lasts is retried, the first one after it takes the job over and completes it.
    let worker = stack.worker(WorkerSettings { lease_ms: LEASE_MS, ..WorkerSettings::default() });
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "the job was never taken over: {:?}", stack.job(&id).await);
        let batch = queues.receive(&stack, &queues.url, 10, 1).await;
        if batch.is_empty() {
            continue;
        }
        let at = now_ms();
        let response = invoke_worker(&worker, &queues.dlq_name, &batch).await;
        if queues.settle(&stack, &queues.url, &batch, &response).await == 0 {
            break;
        }
        assert!(at < lease_until, "retried although the dead run's lease had ended");
    }
    let done = stack.job(&id).await;
    assert_eq!((done.status, done.attempts, done.progress), (JobStatus::Done, 2, 1.0));
    assert_eq!(done.started_at_ms, killed.started_at_ms);
    assert_ne!(done.run_token, killed.run_token);
    stack.assert_result_is_the_offline_run(&user, &id).await;
    queues.assert_empty(&stack).await;
    stack.assert_slot_released_once(&relay, &user, &id, "done").await;
    queues.delete(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_ends_in_the_dead_letter_queue_and_its_job_fails_once() {
    let Scenario { stack, user, queues, relay, id } = scenario(3, 1, None).await;
    let max_receive = deployed_max_receive_count(&stack).await;

    // Every run of this job fails to store its result (the bucket is gone): a storage failure,
    // which the worker reports for retry, keeping the message.
    let lookup = moto().lookup();
    let gone = unique("pipai-gone-");
    let broken = S3Results::from_lookup(&stack.sdk, &|k: &str| {
        if k == "RESULTS_BUCKET" {
            Some(gone.clone())
        } else {
            lookup(k)
        }
    })
    .unwrap();
    let worker = Worker {
        store: stack.store(),
        results: &broken,
        market: &stack.api.market,
        settings: WorkerSettings { lease_ms: LEASE_MS, ..WorkerSettings::default() },
    };
    let mut receives = 0;
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "{receives} receives, then the message did not come back");
        // Longer than the visibility timeout: an empty answer means the message is gone.
        let batch = queues.receive(&stack, &queues.url, 10, 2).await;
        if batch.is_empty() && receives == max_receive {
            break;
        }
        if batch.is_empty() {
            continue;
        }
        receives += 1;
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0]["attributes"]["ApproximateReceiveCount"], receives.to_string());
        let response = invoke_worker(&worker, &queues.dlq_name, &batch).await;
        assert_eq!(queues.settle(&stack, &queues.url, &batch, &response).await, 1, "delivery {receives} failed");
    }
    let abandoned = stack.job(&id).await;
    assert_eq!(abandoned.status, JobStatus::Running, "claimed by a run that failed");

    // The redrive policy moved it to the dead-letter queue; its delivery there fails the job
    // (retried while the last failed run's lease lasts).
    let deadline = Instant::now() + PATIENCE;
    let dead = loop {
        assert!(Instant::now() < deadline, "the dead letter was never handled: {:?}", stack.job(&id).await);
        let batch = queues.receive(&stack, &queues.dlq_url, 10, 1).await;
        if batch.is_empty() {
            continue;
        }
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0]["body"], json!(format!("{{\"job_id\":\"{id}\"}}")));
        let at = now_ms();
        let response = invoke_worker(&worker, &queues.dlq_name, &batch).await;
        if queues.settle(&stack, &queues.dlq_url, &batch, &response).await == 0 {
            break batch[0].clone();
        }
        let job = stack.job(&id).await;
        assert!(job.status == JobStatus::Running && at < job.lease_until_ms.unwrap(), "retried a dead letter: {job:?}");
    };
    let failed = stack.job(&id).await;
    assert_eq!(failed.status, JobStatus::Failed);
    let error = failed.error.clone().unwrap();
    let receive_count = dead["attributes"]["ApproximateReceiveCount"].as_str().unwrap();
    assert_eq!(error.code, pipai_service::model::FailCode::Internal);
    assert_eq!(
        error.message,
        format!("the job could not be run: every delivery attempt failed ({receive_count} receives)")
    );
    let got = stack.call(&user, "GET", &format!("/v1/backtest/jobs/{id}"), b"").await.body_json();
    assert_eq!(got["status"], "failed");
    assert_eq!(got["error"], json!({"code": error.code, "message": error.message}));
    assert!(got["result"].is_null() && got["finished_at"].is_string());
    assert!(stack.artifacts(&id).await.is_empty());
    queues.assert_empty(&stack).await;

    stack.assert_slot_released_once(&relay, &user, &id, "failed").await;
    let failed = stack.job(&id).await;

    // The INSERT relayed once more enqueues the job again: a working worker drops the message,
    // and the failed job stays as it is.
    stack.relay_insert(&relay, &id).await;
    let late = queues.receive_n(&stack, &queues.url, 1).await;
    let response = invoke_worker(&stack.worker(WorkerSettings::default()), &queues.dlq_name, &late).await;
    assert_eq!(queues.settle(&stack, &queues.url, &late, &response).await, 0);
    assert_eq!(stack.job(&id).await, failed);
    assert_eq!(stack.active_jobs(&user).await, 1);
    queues.delete(&stack).await;
}
