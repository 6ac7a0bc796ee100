//! The notifier: delivers one completion event per message of the notifications queue, signed
//! with the creating key's secret, and records every attempt on its subject. A receiver's
//! failure changes nothing else about the subject (status, result stay as they are).
//!
//! Retries: a failed attempt `n` sends the next message (attempt `n + 1`) with a delay of
//! [`retry_delay_ms`] (`base * 2^(n-1)`, capped at 15 minutes: SQS's longest delay) and deletes
//! the current one; after [`MAX_ATTEMPTS`] the event is given up (recorded). With the default
//! base of 30 s that is 11 waits adding up to 1 h 45 min. A message whose handling fails on
//! storage is retried by the queue itself (visibility timeout; the queue's dead-letter queue
//! after `maxReceiveCount`).
//!
//! Duplicates: the stream may deliver a transition twice; both messages carry the same event
//! id and a message for an event already delivered (or given up) is dropped.

use std::future::Future;

use pipai_engine::time::iso;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ids::{JobId, KeyId, SweepId};
use crate::model::{JobRecord, JobStatus, JobWebhook, KeyStatus};
use crate::ports::{JobStore, KeyStore, StoreError};
use crate::secrets::MasterKey;
use crate::sweeps::{SweepRecord, SweepStore};
use crate::webhook::{retry_delay_ms, signed_headers, EventId, EventType, NotifyUrl, Subject, WebhookPolicy};
use crate::worker::Delivery;

/// Attempts per event, the first included.
pub const MAX_ATTEMPTS: u32 = 12;
/// Connect, send and first answer line, all within this.
pub const SEND_TIMEOUT_MS: u64 = 5_000;

/// A notifications-queue message: deliver `event_id` about `subject`, attempt `attempt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationMessage {
    pub event_id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub subject: Subject,
    pub attempt: u32,
}

impl NotificationMessage {
    /// The first attempt of the event of `subject` reaching terminal `status` (`None` otherwise).
    pub fn first(subject: Subject, status: JobStatus) -> Option<NotificationMessage> {
        let event_type = EventType::terminal(&subject, status)?;
        Some(NotificationMessage { event_id: EventId::of(&subject, &event_type), event_type, subject, attempt: 1 })
    }

    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("serializes")
    }

    pub fn parse(body: &str) -> Option<NotificationMessage> {
        serde_json::from_str(body).ok()
    }
}

/// One event's deliveries as stored on its subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub event_id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub attempts: u32,
    /// The receiver's HTTP status at the last attempt (`None`: no answer).
    pub last_status: Option<u16>,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
    pub last_attempt_at_ms: Option<i64>,
    pub next_attempt_at_ms: Option<i64>,
    pub delivered_at_ms: Option<i64>,
    /// Every attempt failed: no more will be made.
    pub gave_up: bool,
}

impl NotificationRecord {
    fn new(message: &NotificationMessage) -> Self {
        NotificationRecord {
            event_id: message.event_id.clone(),
            event_type: message.event_type.clone(),
            attempts: 0,
            last_status: None,
            last_error: None,
            last_attempt_at_ms: None,
            next_attempt_at_ms: None,
            delivered_at_ms: None,
            gave_up: false,
        }
    }

    fn finished(&self) -> bool {
        self.delivered_at_ms.is_some() || self.gave_up
    }
}

/// A record as the job (and sweep) view shows it: `{event_id, type, attempts, last_status, last_error,
/// last_attempt_at, next_attempt_at, delivered_at, gave_up}`.
#[derive(Debug, Serialize)]
pub struct NotificationView<'a> {
    pub event_id: &'a EventId,
    #[serde(rename = "type")]
    pub event_type: &'a EventType,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<&'a str>,
    pub last_attempt_at: Option<String>,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub gave_up: bool,
}

impl<'a> NotificationView<'a> {
    pub fn all(records: &'a [NotificationRecord]) -> Vec<NotificationView<'a>> {
        records
            .iter()
            .map(|r| NotificationView {
                event_id: &r.event_id,
                event_type: &r.event_type,
                attempts: r.attempts,
                last_status: r.last_status,
                last_error: r.last_error.as_deref(),
                last_attempt_at: r.last_attempt_at_ms.map(iso),
                next_attempt_at: r.next_attempt_at_ms.map(iso),
                delivered_at: r.delivered_at_ms.map(iso),
                gave_up: r.gave_up,
            })
            .collect()
    }
}

/// What the notifier needs of a subject, whichever kind it is.
#[derive(Debug, Clone)]
pub struct Target {
    pub notify_url: NotifyUrl,
    pub key_id: KeyId,
    /// When it reached its terminal state: the event's `created_at`.
    pub finished_at_ms: i64,
    /// The subject in list (summary) form, as `data`.
    pub summary: Box<RawValue>,
    pub notifications: Vec<NotificationRecord>,
}

impl Target {
    /// A job's target (`None` without a webhook or before it is terminal). `data` is the job as
    /// it was when it ended (no delivery records yet), so every delivery carries the same body.
    pub fn of_job(job: &JobRecord) -> Option<Target> {
        let finished_at_ms = job.finished_at_ms.filter(|_| job.status.is_terminal())?;
        Target::of(&job.webhook, finished_at_ms, || {
            let mut ended = job.clone();
            ended.webhook.notifications.clear();
            serde_json::value::to_raw_value(&ended.summary_view()).expect("job views serialize")
        })
    }

    /// A sweep's target, as a job's: `data` is the sweep's list (summary) form when it ended.
    pub fn of_sweep(sweep: &SweepRecord) -> Option<Target> {
        let finished_at_ms = sweep.finished_at_ms.filter(|_| sweep.status.is_terminal())?;
        Target::of(&sweep.webhook, finished_at_ms, || {
            let mut ended = sweep.clone();
            ended.webhook.notifications.clear();
            serde_json::value::to_raw_value(&ended.summary_view()).expect("sweep views serialize")
        })
    }

    fn of(webhook: &JobWebhook, finished_at_ms: i64, summary: impl FnOnce() -> Box<RawValue>) -> Option<Target> {
        let (Some(notify_url), Some(key_id)) = (&webhook.notify_url, &webhook.key_id) else { return None };
        Some(Target {
            notify_url: notify_url.clone(),
            key_id: key_id.clone(),
            finished_at_ms,
            summary: summary(),
            notifications: webhook.notifications.clone(),
        })
    }
}

/// Where notification records are kept (on the subject's item).
pub trait NotificationLog: Send + Sync {
    /// Replaces the subject's record with `record.event_id` (or adds it); `false` when the
    /// subject no longer exists. Touches nothing else of the subject.
    fn record_notification(
        &self,
        subject: &Subject,
        record: &NotificationRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The notifications queue.
pub trait NotificationQueue: Send + Sync {
    /// Sends `message`, to be received `delay_s` seconds from now (0 to 900).
    fn send_notification(
        &self,
        message: &NotificationMessage,
        delay_s: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One signed POST.
#[derive(Debug, Clone)]
pub struct WebhookPost<'a> {
    pub url: &'a NotifyUrl,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'a [u8],
}

/// What became of a POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The receiver answered with this status: 2xx is delivered, anything else (3xx included:
    /// redirects are never followed) failed.
    Answered(u16),
    /// No answer within [`SEND_TIMEOUT_MS`].
    TimedOut,
    /// The host did not resolve, or resolved to an address webhooks may not reach; nothing was sent.
    Refused(String),
    /// Connection, TLS or protocol failure.
    Failed(String),
}

/// Sends one HTTP POST (the adapter resolves the host itself, checks the addresses with
/// [`NotifyUrl::check_resolved`] and connects to the address it checked).
pub trait WebhookSender: Send + Sync {
    fn post(&self, post: &WebhookPost<'_>) -> impl Future<Output = SendOutcome> + Send;
}

#[derive(Debug, Clone)]
pub struct NotifierSettings {
    pub policy: WebhookPolicy,
    /// The first retry's delay; each further one doubles (`PIPAI_WEBHOOK_BACKOFF_BASE_MS`).
    pub backoff_base_ms: u64,
    pub max_attempts: u32,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        NotifierSettings { policy: WebhookPolicy::default(), backoff_base_ms: 30_000, max_attempts: MAX_ATTEMPTS }
    }
}

/// The event body: `{"id", "type", "created_at", "data"}`.
#[derive(Serialize)]
struct Event<'a> {
    id: &'a EventId,
    #[serde(rename = "type")]
    event_type: &'a EventType,
    created_at: String,
    data: &'a RawValue,
}

pub struct Notifier<S, Q, H> {
    /// The subjects, their notification records and the API keys.
    pub store: S,
    pub queue: Q,
    pub sender: H,
    pub master: MasterKey,
    pub settings: NotifierSettings,
}

impl<S, Q, H> Notifier<S, Q, H>
where
    S: JobStore + SweepStore + KeyStore + NotificationLog,
    Q: NotificationQueue,
    H: WebhookSender,
{
    async fn target(&self, subject: &Subject) -> Result<Option<Target>, StoreError> {
        match subject {
            Subject::Job(id) => Ok(self.store.get_job(id).await?.as_ref().and_then(Target::of_job)),
            Subject::Sweep(id) => Ok(self.store.get_sweep(id).await?.as_ref().and_then(Target::of_sweep)),
        }
    }

    /// The secret of the key that created the subject; `Err` says why it cannot sign.
    async fn secret(&self, key_id: &KeyId) -> Result<Result<String, String>, StoreError> {
        Ok(match self.store.get_key(key_id).await? {
            Some(k) if k.status == KeyStatus::Active => self
                .master
                .decrypt_secret(k.key_id.as_str(), &k.secret_ciphertext)
                .map_err(|e| format!("the API key that created it cannot sign: {e}")),
            Some(_) => Err("the API key that created it is disabled".into()),
            None => Err("the API key that created it no longer exists".into()),
        })
    }

    /// Handles one message. `Err` only for storage failures (the queue retries the message).
    #[tracing::instrument(skip_all, fields(event_id = %message.event_id, subject = message.subject.id(), attempt = message.attempt))]
    pub async fn process(&self, message: &NotificationMessage, now_ms: i64) -> Result<Delivery, StoreError> {
        let Some(target) = self.target(&message.subject).await? else {
            tracing::info!("no such subject, or it has no webhook: dropped");
            return Ok(Delivery::Done);
        };
        let existing = target.notifications.iter().find(|r| r.event_id == message.event_id);
        if existing.is_some_and(NotificationRecord::finished) {
            tracing::info!("already delivered or given up: duplicate dropped");
            return Ok(Delivery::Done);
        }
        let mut record = existing.cloned().unwrap_or_else(|| NotificationRecord::new(message));
        record.attempts = record.attempts.max(message.attempt);
        record.last_attempt_at_ms = Some(now_ms);
        record.next_attempt_at_ms = None;

        let outcome = match self.secret(&target.key_id).await? {
            Ok(secret) => {
                let event = Event {
                    id: &message.event_id,
                    event_type: &message.event_type,
                    created_at: iso(target.finished_at_ms),
                    data: &target.summary,
                };
                let body = serde_json::to_vec(&event).expect("events serialize");
                let headers = signed_headers(&secret, now_ms, &message.event_id, &body);
                Some(self.sender.post(&WebhookPost { url: &target.notify_url, headers, body: &body }).await)
            }
            Err(why) => {
                record.last_status = None;
                record.last_error = Some(why);
                None
            }
        };
        let delivered = match &outcome {
            Some(SendOutcome::Answered(status)) => {
                record.last_status = Some(*status);
                record.last_error = match status {
                    200..=299 => None,
                    300..=399 => Some("redirects are not followed".into()),
                    _ => Some(format!("the receiver answered {status}")),
                };
                (200..=299).contains(status)
            }
            Some(SendOutcome::TimedOut) => {
                record.last_status = None;
                record.last_error = Some(format!("no answer within {} s", SEND_TIMEOUT_MS / 1000));
                false
            }
            Some(SendOutcome::Refused(why) | SendOutcome::Failed(why)) => {
                record.last_status = None;
                record.last_error = Some(why.clone());
                false
            }
            None => false,
        };
        // A key that cannot sign will not sign later either.
        let retry = outcome.is_some() && !delivered && message.attempt < self.settings.max_attempts;
        if delivered {
            record.delivered_at_ms = Some(now_ms);
        } else if retry {
            let delay_ms = retry_delay_ms(self.settings.backoff_base_ms, message.attempt);
            record.next_attempt_at_ms = Some(now_ms + delay_ms as i64);
        } else {
            record.gave_up = true;
        }
        tracing::info!(?outcome, delivered, gave_up = record.gave_up, "webhook attempt");
        if !self.store.record_notification(&message.subject, &record).await? {
            return Ok(Delivery::Done);
        }
        if retry {
            let delay_ms = retry_delay_ms(self.settings.backoff_base_ms, message.attempt);
            let next = NotificationMessage { attempt: message.attempt + 1, ..message.clone() };
            self.queue.send_notification(&next, delay_ms.div_ceil(1000) as u32).await?;
        }
        Ok(Delivery::Done)
    }
}

/// The first notification of a job that just became terminal, for jobs with a webhook.
pub fn job_notification(job_id: &JobId, status: JobStatus) -> Option<NotificationMessage> {
    NotificationMessage::first(Subject::Job(job_id.clone()), status)
}

/// The first notification of a sweep that just became terminal, for sweeps with a webhook.
pub fn sweep_notification(sweep_id: &SweepId, status: JobStatus) -> Option<NotificationMessage> {
    NotificationMessage::first(Subject::Sweep(sweep_id.clone()), status)
}

// A reference to a port is a port.
impl<T: NotificationLog> NotificationLog for &T {
    fn record_notification(
        &self,
        subject: &Subject,
        record: &NotificationRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).record_notification(subject, record)
    }
}

impl<T: NotificationQueue> NotificationQueue for &T {
    fn send_notification(
        &self,
        message: &NotificationMessage,
        delay_s: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).send_notification(message, delay_s)
    }
}

impl<T: WebhookSender> WebhookSender for &T {
    fn post(&self, post: &WebhookPost<'_>) -> impl Future<Output = SendOutcome> + Send {
        (**self).post(post)
    }
}
