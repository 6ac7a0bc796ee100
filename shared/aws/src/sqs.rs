//! [`JobQueue`] on SQS.

use aws_config::SdkConfig;
use pipai_service::model::QueueMessage;
use pipai_service::ports::{JobQueue, StoreError};

use crate::error::store_err;
use crate::{env_lookup, required, ConfigError};

/// Sends `{"job_id": ...}` messages ([`QueueMessage`]) to the jobs queue.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsQueue {
    /// From `JOBS_QUEUE_URL`.
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Self::from_lookup(sdk, &env_lookup)
    }

    /// [`SqsQueue::from_env`] with the variables from `lookup`.
    pub fn from_lookup(sdk: &SdkConfig, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(SqsQueue { client: aws_sdk_sqs::Client::new(sdk), queue_url: required(lookup, "JOBS_QUEUE_URL")? })
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
