//! [`NotificationLog`] on the jobs table: a job's `notifications` attribute (a list of maps) is
//! replaced as a whole, on a job that still exists; nothing else of the job is written. A
//! sweep's records are in its record on SweepsTable (`sweeps`: the item put back over the
//! version read).

use pipai_service::notifier::{NotificationLog, NotificationRecord};
use pipai_service::ports::{JobStore, StoreError};
use pipai_service::webhook::Subject;
use pipai_service::JobId;

use super::items::to_attr;
use super::transact::conditional;
use super::DynamoStore;
use crate::item::s;

impl DynamoStore {
    async fn record_job_notification(&self, id: &JobId, record: &NotificationRecord) -> Result<bool, StoreError> {
        let Some(job) = self.get_job(id).await? else { return Ok(false) };
        let mut all = job.webhook.notifications;
        match all.iter_mut().find(|r| r.event_id == record.event_id) {
            Some(r) => *r = record.clone(),
            None => all.push(record.clone()),
        }
        let value = to_attr(&all).map_err(|e| StoreError::new(format!("job {id}: notifications: {e}")))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.jobs_table)
            .key("job_id", s(id.as_str()))
            .update_expression("SET notifications = :n")
            .condition_expression("attribute_exists(job_id)")
            .expression_attribute_values(":n", value)
            .send()
            .await;
        Ok(conditional(result, "UpdateItem (record_notification)", &self.jobs_table)?.written())
    }
}

impl NotificationLog for DynamoStore {
    async fn record_notification(&self, subject: &Subject, record: &NotificationRecord) -> Result<bool, StoreError> {
        match subject {
            Subject::Job(id) => self.record_job_notification(id, record).await,
            Subject::Sweep(id) => self.record_sweep_notification(id, record).await,
        }
    }
}
