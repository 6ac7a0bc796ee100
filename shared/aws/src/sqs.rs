//! [`JobQueue`] on SQS.

use aws_config::SdkConfig;
use pipai_service::model::QueueMessage;
use pipai_service::notifier::{NotificationMessage, NotificationQueue};
use pipai_service::ports::{JobQueue, StoreError};

use crate::error::store_err;
use crate::{env_lookup, required, ConfigError};

/// Sends `{"job_id": ...}` messages ([`QueueMessage`]) to the jobs queue, and completion
/// notifications ([`NotificationMessage`]) to the notifications queue.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    /// `NOTIFICATIONS_QUEUE_URL`: only the functions that send notifications have it.
    notifications_url: Option<String>,
}

impl SqsQueue {
    /// From `JOBS_QUEUE_URL` and, where notifications are sent, `NOTIFICATIONS_QUEUE_URL`.
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Self::from_lookup(sdk, &env_lookup)
    }

    /// [`SqsQueue::from_env`] with the variables from `lookup`.
    pub fn from_lookup(sdk: &SdkConfig, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(SqsQueue {
            client: aws_sdk_sqs::Client::new(sdk),
            queue_url: required(lookup, "JOBS_QUEUE_URL")?,
            notifications_url: lookup("NOTIFICATIONS_QUEUE_URL").filter(|v| !v.is_empty()),
        })
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

impl JobQueue for SqsQueue {
    async fn enqueue(&self, job_id: &pipai_service::JobId) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(QueueMessage::body(job_id))
            .send()
            .await
            .map_err(|e| store_err("sqs", "SendMessage", &self.queue_url, e))?;
        Ok(())
    }
}

impl NotificationQueue for SqsQueue {
    async fn send_notification(&self, message: &NotificationMessage, delay_s: u32) -> Result<(), StoreError> {
        let url = self
            .notifications_url
            .as_deref()
            .ok_or_else(|| StoreError::new("sqs SendMessage: NOTIFICATIONS_QUEUE_URL is not set for this function"))?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(message.body())
            .delay_seconds(delay_s.min(900) as i32)
            .send()
            .await
            .map_err(|e| store_err("sqs", "SendMessage", url, e))?;
        Ok(())
    }
}
