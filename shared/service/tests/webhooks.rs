//! Completion webhooks over the in-memory ports: `notify_url` at creation, the stream's
//! enqueue on a terminal transition, and the notifier with a scripted fake sender (no network).

mod common;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;

use common::*;
use pipai_service::api::ApiSettings;
use pipai_service::clock::now_ms;
use pipai_service::events::{apply_change, ChangeKind, JobChange};
use pipai_service::memory::MemoryStore;
use pipai_service::model::JobStatus;
use pipai_service::notifier::*;
use pipai_service::ports::JobStore;
use pipai_service::webhook::{self, BoxFuture, HostResolver, Resolver, WebhookPolicy, WebhookSettings};
use pipai_service::worker::{Delivery, Worker, WorkerSettings};
use pipai_service::JobId;
use serde_json::{json, Value};

/// A public address literal: accepted without name resolution, and never contacted (fake sender).
const HOOK: &str = "https://93.184.216.34/hooks/pipai";

/// Answers from a table: `hooks.example.com` is public, `rebind.example.com` private.
struct TableResolver;

impl HostResolver for TableResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<IpAddr>, String>> {
        let found = match host {
            "hooks.example.com" => Ok(vec!["93.184.216.34".parse().unwrap()]),
            "rebind.example.com" => Ok(vec!["93.184.216.34".parse().unwrap(), "10.1.2.3".parse().unwrap()]),
            _ => Err("NXDOMAIN".to_string()),
        };
        Box::pin(async move { found })
    }
}

fn webhook_kit() -> Kit {
    kit_with(ApiSettings {
        webhooks: WebhookSettings { policy: WebhookPolicy::default(), resolver: Resolver::new(TableResolver) },
        ..ApiSettings::default()
    })
}

/// One request the fake sender got: the URL, the headers, the body.
type Sent = (String, Vec<(&'static str, String)>, Vec<u8>);

/// A sender that answers from a script (then times out) and remembers every request.
#[derive(Default)]
struct FakeSender {
    script: Mutex<VecDeque<SendOutcome>>,
    seen: Mutex<Vec<Sent>>,
}

impl FakeSender {
    fn answering(outcomes: impl IntoIterator<Item = SendOutcome>) -> Self {
        FakeSender { script: Mutex::new(outcomes.into_iter().collect()), ..Default::default() }
    }
}

impl WebhookSender for FakeSender {
    async fn post(&self, post: &WebhookPost<'_>) -> SendOutcome {
        self.seen.lock().unwrap().push((post.url.to_string(), post.headers.clone(), post.body.to_vec()));
        self.script.lock().unwrap().pop_front().unwrap_or(SendOutcome::TimedOut)
    }
}

fn notifier(kit: &Kit, sender: FakeSender) -> Notifier<&'static MemoryStore, &'static MemoryStore, FakeSender> {
    Notifier {
        store: kit.store,
        queue: kit.store,
        sender,
        master: kit.api.master.clone(),
        settings: NotifierSettings { backoff_base_ms: 1_000, ..NotifierSettings::default() },
    }
}

fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()).unwrap()
}

/// Checks a sent request's signature with `secret`.
fn signed_by(secret: &str, headers: &[(&'static str, String)], raw: &[u8]) -> Result<(), webhook::VerifyError> {
    let h = |name| header(headers, name);
    webhook::verify(
        secret,
        h(webhook::HEADER_TIMESTAMP),
        h(webhook::HEADER_EVENT_ID),
        raw,
        h(webhook::HEADER_SIGNATURE),
        None,
    )
}

async fn create(kit: &Kit, client: &Client, b: &Value) -> (u16, Value) {
    static TICK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let at = now_ms() + TICK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let resp = kit.call(client, "POST", "/v1/backtest/jobs", &body(b), at).await;
    (resp.status, resp.body_json())
}

fn with_hook(url: &str) -> Value {
    let mut b = seed_body();
    b["notify_url"] = json!(url);
    b
}

/// The stream record of the job's current state, coming from `old`.
async fn change(store: &MemoryStore, id: &JobId, old: Option<JobStatus>) -> JobChange {
    let j = store.get_job(id).await.unwrap().unwrap();
    JobChange {
        kind: ChangeKind::Modify,
        notify: j.webhook.notify_url.is_some(),
        job_id: j.id,
        user_id: Some(j.user_id),
        status: Some(j.status),
        slot_released: j.slot_released,
        old_status: old,
    }
}

async fn get(kit: &Kit, client: &Client, id: &str) -> Value {
    kit.call(client, "GET", &format!("/v1/backtest/jobs/{id}"), b"", now_ms()).await.body_json()
}

/// Creates a job with the webhook, runs it to done and lets the stream enqueue its notification.
async fn done_job_with_hook(kit: &Kit, client: &Client) -> (JobId, NotificationMessage) {
    let (status, created) = create(kit, client, &with_hook(HOOK)).await;
    assert_eq!(status, 201, "{created}");
    let id: JobId = created["id"].as_str().unwrap().parse().unwrap();
    let worker =
        Worker { store: kit.store, results: kit.store, market: kit.store, settings: WorkerSettings::default() };
    assert_eq!(worker.process(&id, i64::MAX / 2).await.unwrap(), Delivery::Done);
    apply_change(&kit.store, &kit.store, &change(kit.store, &id, Some(JobStatus::Running)).await).await.unwrap();
    let mut queued = kit.store.drain_notifications();
    assert_eq!(queued.len(), 1);
    let (message, delay) = queued.pop().unwrap();
    assert_eq!((message.attempt, delay, message.event_type.to_string()), (1, 0, "job.done".to_string()));
    (id, message)
}

#[tokio::test]
async fn notify_url_is_kept_beside_the_config_and_shown_on_the_job() {
    let kit = webhook_kit();
    let alice = kit.client("alice").await;
    let (status, job) = create(&kit, &alice, &with_hook(HOOK)).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["notify_url"], HOOK);
    assert_eq!(job["notifications"], json!([]));
    let (_, plain) = create(&kit, &alice, &seed_body()).await;
    assert_eq!(job["config"], plain["config"], "the config (and its hash) does not change with a webhook");
    assert!(plain.get("notify_url").is_none() && plain.get("notifications").is_none());
    let (status, named) = create(&kit, &alice, &with_hook("https://hooks.example.com/in")).await;
    assert_eq!(status, 201, "{named}");
    let (status, null) = create(&kit, &alice, &{
        let mut b = seed_body();
        b["notify_url"] = Value::Null;
        b
    })
    .await;
    assert_eq!((status, null.get("notify_url")), (201, None));
}

#[tokio::test]
async fn refused_notify_urls_are_400_on_notify_url() {
    let kit = webhook_kit();
    let alice = kit.client("alice").await;
    for (url, needle) in [
        (json!("https://10.0.0.1/x"), "private address"),
        (json!("https://169.254.169.254/"), "metadata"),
        (json!("http://example.com"), "https://"),
        (json!("http://127.0.0.1:8080/"), "http"),
        (json!("https://localhost/"), "local"),
        (json!("https://[::ffff:127.0.0.1]/"), "loopback"),
        (json!("https://rebind.example.com/x"), "resolves to 10.1.2.3"),
        (json!("https://nowhere.example.org/x"), "could not be resolved"),
        (json!("https://u:p@hooks.example.com/"), "user name"),
        (json!(42), "must be a string"),
    ] {
        let resp = kit.call(&alice, "POST", "/v1/backtest/jobs", &body(&with_hook_value(url.clone())), now_ms()).await;
        assert_error(&resp, 400, "INVALID_PARAMETER", "notify_url: ");
        assert!(resp.body_json()["message"].as_str().unwrap().contains(needle), "{url}: {}", resp.body_json());
    }
    assert_eq!(kit.store.active_jobs(&user("alice")), 0, "nothing was created");
}

fn with_hook_value(url: Value) -> Value {
    let mut b = seed_body();
    b["notify_url"] = url;
    b
}

#[tokio::test]
async fn the_local_allowance_accepts_http_127_0_0_1_only() {
    let kit = kit_with(ApiSettings {
        webhooks: WebhookSettings { policy: WebhookPolicy { allow_http_loopback: true }, ..Default::default() },
        ..ApiSettings::default()
    });
    let alice = kit.client("alice").await;
    assert_eq!(create(&kit, &alice, &with_hook("http://127.0.0.1:8080/hook")).await.0, 201);
    assert_eq!(create(&kit, &alice, &with_hook("http://localhost:8080/hook")).await.0, 400);
    assert_eq!(create(&kit, &alice, &with_hook("https://127.0.0.1:8080/hook")).await.0, 400);
}

#[tokio::test]
async fn only_a_transition_into_a_terminal_state_enqueues_and_only_with_a_webhook() {
    let kit = webhook_kit();
    let alice = kit.client("alice").await;
    let (_, job) = create(&kit, &alice, &with_hook(HOOK)).await;
    let id: JobId = job["id"].as_str().unwrap().parse().unwrap();
    let (_, plain) = create(&kit, &alice, &seed_body()).await;
    let plain_id: JobId = plain["id"].as_str().unwrap().parse().unwrap();
    for job in [&id, &plain_id] {
        let resp = kit.call(&alice, "POST", &format!("/v1/backtest/jobs/{job}/cancel"), b"", now_ms()).await;
        assert_eq!(resp.status, 200);
    }
    let transition = change(kit.store, &id, Some(JobStatus::Queued)).await;
    apply_change(&kit.store, &kit.store, &transition).await.unwrap();
    apply_change(&kit.store, &kit.store, &transition).await.unwrap(); // a replayed record
    let later = change(kit.store, &id, Some(JobStatus::Cancelled)).await; // e.g. the slot flag's write
    apply_change(&kit.store, &kit.store, &later).await.unwrap();
    apply_change(&kit.store, &kit.store, &change(kit.store, &plain_id, Some(JobStatus::Queued)).await).await.unwrap();
    let queued = kit.store.drain_notifications();
    assert_eq!(queued.len(), 2, "the transition and its replay, nothing else");
    assert_eq!(queued[0], queued[1], "duplicates carry the same event id");
    assert_eq!(queued[0].0.event_type.to_string(), "job.cancelled");
}

#[tokio::test]
async fn a_500_then_200_is_delivered_on_attempt_2_with_the_same_event_id() {
    let kit = webhook_kit();
    let alice = kit.client("alice").await;
    let (id, first) = done_job_with_hook(&kit, &alice).await;
    let before = get(&kit, &alice, id.as_str()).await;
    let n = notifier(&kit, FakeSender::answering([SendOutcome::Answered(500), SendOutcome::Answered(204)]));

    assert_eq!(n.process(&first, now_ms()).await.unwrap(), Delivery::Done);
    let mut retry = kit.store.drain_notifications();
    assert_eq!(retry.len(), 1);
    let (second, delay_s) = retry.pop().unwrap();
    assert_eq!((second.attempt, delay_s, &second.event_id), (2, 1, &first.event_id));
    let job = get(&kit, &alice, id.as_str()).await;
    let record = &job["notifications"][0];
    assert_eq!((record["attempts"].as_u64(), record["last_status"].as_u64()), (Some(1), Some(500)));
    assert!(record["delivered_at"].is_null() && record["next_attempt_at"].is_string());

    assert_eq!(n.process(&second, now_ms()).await.unwrap(), Delivery::Done);
    assert!(kit.store.drain_notifications().is_empty(), "delivered: no more attempts");
    let job = get(&kit, &alice, id.as_str()).await;
    let record = &job["notifications"][0];
    assert_eq!((record["attempts"].as_u64(), record["last_status"].as_u64()), (Some(2), Some(204)));
    assert!(record["delivered_at"].is_string() && record["last_error"].is_null());
    assert_eq!(record["event_id"], first.event_id.as_str());
    for key in ["status", "result", "finished_at", "config", "error"] {
        assert_eq!(job[key], before[key], "{key} unchanged by the receiver");
    }

    // Both requests: same event id and body, signed with alice's secret over the exact body.
    let seen = n.sender.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].2, seen[1].2, "every delivery of an event has the same body");
    for (url, headers, raw) in seen.iter() {
        assert_eq!(url, HOOK);
        assert_eq!(header(headers, webhook::HEADER_EVENT_ID), first.event_id.as_str());
        assert_eq!(signed_by(&alice.secret, headers, raw), Ok(()));
        let event: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(event["id"], first.event_id.as_str());
        assert_eq!(event["type"], "job.done");
        assert_eq!(event["created_at"], before["finished_at"]);
        assert_eq!(event["data"]["id"], id.as_str());
        assert_eq!(event["data"]["status"], "done");
        assert!(
            event["data"]["result"]["metrics"].is_object() && event["data"]["result"].get("equity_curve").is_none(),
            "list form"
        );
    }

    // A late duplicate of the first message is dropped: nothing is sent again.
    assert_eq!(n.process(&first, now_ms()).await.unwrap(), Delivery::Done);
    assert_eq!(n.sender.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_receiver_that_never_answers_changes_nothing_but_the_record_and_is_given_up_on() {
    let kit = webhook_kit();
    let alice = kit.client("alice").await;
    let (id, mut message) = done_job_with_hook(&kit, &alice).await;
    let before = get(&kit, &alice, id.as_str()).await;
    let n = notifier(&kit, FakeSender::default()); // times out, always
    let mut delays = vec![];
    loop {
        assert_eq!(n.process(&message, now_ms()).await.unwrap(), Delivery::Done);
        match kit.store.drain_notifications().pop() {
            Some((next, delay_s)) => {
                delays.push(delay_s);
                message = next;
            }
            None => break,
        }
    }
    assert_eq!(message.attempt, MAX_ATTEMPTS);
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]);
    let job = get(&kit, &alice, id.as_str()).await;
    let record = &job["notifications"][0];
    assert_eq!(record["attempts"].as_u64(), Some(u64::from(MAX_ATTEMPTS)));
    assert_eq!((record["gave_up"].as_bool(), record["last_status"].as_u64()), (Some(true), None));
    assert!(record["last_error"].as_str().unwrap().contains("no answer"));
    for key in ["status", "result", "finished_at", "progress", "error"] {
        assert_eq!(job[key], before[key], "{key} unchanged");
    }
    assert_eq!(kit.store.active_jobs(&user("alice")), 0);
}

#[tokio::test]
async fn redirects_and_refused_addresses_are_failures() {
    let kit = webhook_kit();
    let alice = kit.client("alice").await;
    let (id, first) = done_job_with_hook(&kit, &alice).await;
    let n = notifier(
        &kit,
        FakeSender::answering([SendOutcome::Answered(302), SendOutcome::Refused("host resolves to 10.0.0.1".into())]),
    );
    n.process(&first, now_ms()).await.unwrap();
    let (second, _) = kit.store.drain_notifications().pop().unwrap();
    let job = get(&kit, &alice, id.as_str()).await;
    assert_eq!(job["notifications"][0]["last_error"], "redirects are not followed");
    n.process(&second, now_ms()).await.unwrap();
    let job = get(&kit, &alice, id.as_str()).await;
    assert_eq!(job["notifications"][0]["last_error"], "host resolves to 10.0.0.1");
    assert_eq!(job["notifications"][0]["attempts"], 2);
}

// ---------------------------------------------------------------- sweeps

mod sweeps {
    use pipai_service::sweep_api::relay_sweep_insert;
    use pipai_service::sweep_events::{notify_sweep_end, SweepChange};
    use pipai_service::sweep_worker::SweepWorker;
    use pipai_service::sweeps::SweepStore;
    use pipai_service::webhook::Subject;
    use pipai_service::SweepId;

    use super::*;

    /// Two configs on one symbol: one chunk.
    fn sweep_body(hook: Option<&str>) -> Value {
        let mut b = json!({
            "base": {"template_id": "tpl_ma_cross", "params": {"direction": "long"}, "symbols": ["BTCUSDT"],
                     "timeframe": "1h", "start": "2025-01-01T00:00:00Z", "end": "2025-03-31T23:00:00Z",
                     "capital": "10000.00", "fee_model": "fixed_bps", "fee_bps": "5"},
            "space": {"params.fast": [5, 10], "params.slow": [50]}
        });
        if let Some(url) = hook {
            b["notify_url"] = json!(url);
        }
        b
    }

    async fn create_sweep(kit: &Kit, client: &Client, b: &Value) -> (u16, Value) {
        static TICK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let at = now_ms() + TICK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = kit.call(client, "POST", "/v1/backtest/sweeps", &body(b), at).await;
        (resp.status, resp.body_json())
    }

    async fn created(kit: &Kit, client: &Client, hook: Option<&str>) -> SweepId {
        let (status, sweep) = create_sweep(kit, client, &sweep_body(hook)).await;
        assert_eq!(status, 201, "{sweep}");
        sweep["id"].as_str().unwrap().parse().unwrap()
    }

    /// The relay, then every chunk through the worker (`fail`: as from the dead-letter queue).
    async fn run(kit: &Kit, id: &SweepId, fail: bool) {
        let sweep = kit.store.get_sweep(id).await.unwrap().unwrap();
        relay_sweep_insert(&kit.store, &sweep).await.unwrap();
        let worker = SweepWorker { store: kit.store, market: kit.store };
        for (id, chunk) in kit.store.drain_chunk_queue() {
            let outcome =
                if fail { worker.fail_chunk(&id, chunk).await } else { worker.process_chunk(&id, chunk).await };
            assert_eq!(outcome.unwrap(), Delivery::Done);
        }
    }

    /// The stream record of the sweep's current state, coming from `old`.
    async fn sweep_change(store: &MemoryStore, id: &SweepId, old: Option<JobStatus>) -> SweepChange {
        let sweep = store.get_sweep(id).await.unwrap().unwrap();
        SweepChange { kind: ChangeKind::Modify, sweep, old_status: old }
    }

    async fn get_sweep(kit: &Kit, client: &Client, id: &SweepId) -> Value {
        kit.call(client, "GET", &format!("/v1/backtest/sweeps/{id}"), b"", now_ms()).await.body_json()
    }

    #[tokio::test]
    async fn a_sweep_keeps_its_notify_url_beside_the_request_under_the_job_rules() {
        let kit = webhook_kit();
        let alice = kit.client("alice").await;
        let (status, sweep) = create_sweep(&kit, &alice, &sweep_body(Some(HOOK))).await;
        assert_eq!(status, 201, "{sweep}");
        assert_eq!((&sweep["notify_url"], &sweep["notifications"]), (&json!(HOOK), &json!([])));
        assert!(sweep["config"].get("notify_url").is_none(), "beside the request, not in it");
        let stored = kit.store.get_sweep(&sweep["id"].as_str().unwrap().parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(stored.webhook.key_id.as_ref(), Some(&alice.key), "the creating key signs");
        let list = kit.call(&alice, "GET", "/v1/backtest/sweeps", b"", now_ms()).await.body_json();
        assert_eq!(list["data"][0]["notify_url"], HOOK, "every view, the list's too");

        let (_, plain) = create_sweep(&kit, &alice, &sweep_body(None)).await;
        assert!(plain.get("notify_url").is_none() && plain.get("notifications").is_none());
        for (url, needle) in
            [("https://10.0.0.1/x", "private address"), ("https://rebind.example.com/x", "resolves to")]
        {
            let (status, err) = create_sweep(&kit, &alice, &sweep_body(Some(url))).await;
            assert_eq!(status, 400, "{err}");
            assert!(err["message"].as_str().unwrap().starts_with("notify_url: "), "{err}");
            assert!(err["message"].as_str().unwrap().contains(needle), "{err}");
            let mut dry = sweep_body(Some(url));
            dry["dry_run"] = json!(true);
            assert_eq!(create_sweep(&kit, &alice, &dry).await.0, 400, "a dry run checks it too");
        }
        assert_eq!(kit.store.active_jobs(&user("alice")), 2, "the two accepted sweeps only");
    }

    #[tokio::test]
    async fn done_failed_and_cancelled_sweeps_each_enqueue_one_event_and_plain_ones_none() {
        let kit = webhook_kit();
        let alice = kit.client("alice").await;
        let done = created(&kit, &alice, Some(HOOK)).await;
        let failed = created(&kit, &alice, Some(HOOK)).await;
        let cancelled = created(&kit, &alice, Some(HOOK)).await;
        let plain = created(&kit, &alice, None).await;
        run(&kit, &done, false).await;
        run(&kit, &failed, true).await;
        run(&kit, &plain, false).await;
        let resp = kit.call(&alice, "POST", &format!("/v1/backtest/sweeps/{cancelled}/cancel"), b"", now_ms()).await;
        assert_eq!(resp.status, 200);

        let mut types = vec![];
        for (id, old) in [(&done, JobStatus::Running), (&failed, JobStatus::Running), (&cancelled, JobStatus::Queued)] {
            let ended = sweep_change(kit.store, id, Some(old)).await;
            assert!(notify_sweep_end(&kit.store, &ended).await.unwrap());
            // A later write to the ended sweep (a notification record) is no transition.
            let later = sweep_change(kit.store, id, Some(ended.sweep.status)).await;
            assert!(!notify_sweep_end(&kit.store, &later).await.unwrap());
            let queued = kit.store.drain_notifications();
            assert_eq!(queued.len(), 1, "{id}");
            let (message, delay) = &queued[0];
            assert_eq!((&message.subject, message.attempt, *delay), (&Subject::Sweep(id.clone()), 1, 0));
            types.push(message.event_type.to_string());
        }
        assert_eq!(types, ["sweep.done", "sweep.failed", "sweep.cancelled"]);
        let plain_end = sweep_change(kit.store, &plain, Some(JobStatus::Running)).await;
        assert_eq!(plain_end.sweep.status, JobStatus::Done);
        assert!(!notify_sweep_end(&kit.store, &plain_end).await.unwrap(), "no notify_url, no message");
        let running = SweepChange { old_status: Some(JobStatus::Queued), ..plain_end.clone() };
        let insert =
            SweepChange { kind: ChangeKind::Insert, old_status: None, ..sweep_change(kit.store, &done, None).await };
        assert!(!notify_sweep_end(&kit.store, &running).await.unwrap());
        assert!(notify_sweep_end(&kit.store, &insert).await.unwrap(), "an insert of a terminal sweep ends it too");
        kit.store.drain_notifications();
        assert!(kit.store.drain_notifications().is_empty());
    }

    #[tokio::test]
    async fn a_sweep_event_is_signed_by_its_key_carries_its_summary_and_is_delivered_once() {
        let kit = webhook_kit();
        let alice = kit.client("alice").await;
        let id = created(&kit, &alice, Some(HOOK)).await;
        run(&kit, &id, false).await;
        let transition = sweep_change(kit.store, &id, Some(JobStatus::Running)).await;
        notify_sweep_end(&kit.store, &transition).await.unwrap();
        notify_sweep_end(&kit.store, &transition).await.unwrap(); // a replayed stream record
        let queued = kit.store.drain_notifications();
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[0], queued[1], "duplicates carry the same event id");
        let before = get_sweep(&kit, &alice, &id).await;

        let n = notifier(&kit, FakeSender::answering([SendOutcome::Answered(204), SendOutcome::Answered(204)]));
        for (message, _) in &queued {
            assert_eq!(n.process(message, now_ms()).await.unwrap(), Delivery::Done);
        }
        assert!(kit.store.drain_notifications().is_empty(), "delivered: no retry");
        let seen = n.sender.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "the replay is dropped once delivered");
        let (url, headers, raw) = &seen[0];
        assert_eq!(url, HOOK);
        assert_eq!(signed_by(&alice.secret, headers, raw), Ok(()));
        let event: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!((&event["id"], &event["type"]), (&json!(queued[0].0.event_id.as_str()), &json!("sweep.done")));
        assert_eq!(event["created_at"], before["finished_at"]);
        assert_eq!((&event["data"]["id"], &event["data"]["status"]), (&json!(id.as_str()), &json!("done")));
        assert_eq!(event["data"]["notifications"], json!([]), "the sweep as it ended");
        assert!(event["data"].get("leaderboard").is_none() && event["data"].get("config").is_none(), "list form");
        assert_eq!(event["data"]["best"], before["best"]);

        let after = get_sweep(&kit, &alice, &id).await;
        let record = &after["notifications"][0];
        assert_eq!(record["event_id"], queued[0].0.event_id.as_str());
        assert_eq!((record["attempts"].as_u64(), record["last_status"].as_u64()), (Some(1), Some(204)));
        assert!(record["delivered_at"].is_string());
        for key in ["status", "finished_at", "completed", "failed", "best", "leaderboard", "config"] {
            assert_eq!(after[key], before[key], "{key} unchanged by the delivery");
        }
    }
}
