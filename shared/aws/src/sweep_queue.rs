//! [`SweepQueue`] on SQS (`SWEEP_CHUNKS_QUEUE_URL`), and the SweepsTable stream's decoder
//! ([`sweep_change`]).

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use pipai_service::events::ChangeKind;
use pipai_service::ids::SweepId;
use pipai_service::model::JobStatus;
use pipai_service::ports::StoreError;
use pipai_service::sweep_events::SweepChange;
use pipai_service::sweeps::{ChunkMessage, SweepQueue, SweepRecord};

use crate::error::store_err;
use crate::{env_lookup, required, ConfigError};

/// Sends `{"sweep_id", "chunk"}` messages ([`ChunkMessage`]) to the sweep chunks queue.
#[derive(Clone, Debug)]
pub struct SqsSweepQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsSweepQueue {
    /// From `SWEEP_CHUNKS_QUEUE_URL`.
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Self::from_lookup(sdk, &env_lookup)
    }

    pub fn from_lookup(sdk: &SdkConfig, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(SqsSweepQueue {
            client: aws_sdk_sqs::Client::new(sdk),
            queue_url: required(lookup, "SWEEP_CHUNKS_QUEUE_URL")?,
        })
    }
}

impl SweepQueue for SqsSweepQueue {
    async fn enqueue_chunks(&self, id: &SweepId, n_chunks: u32) -> Result<(), StoreError> {
        let chunks: Vec<u32> = (0..n_chunks).collect();
        // SendMessageBatch takes 10 entries at most.
        for group in chunks.chunks(10) {
            let entries = group
                .iter()
                .map(|&chunk| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("c{chunk}"))
                        .message_body(ChunkMessage { sweep_id: id.clone(), chunk }.body())
                        .build()
                        .map_err(|e| StoreError::new(format!("SendMessageBatch entry: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| store_err("sqs", "SendMessageBatch", &self.queue_url, e))?;
            if !out.failed().is_empty() {
                return Err(StoreError::new(format!(
                    "SendMessageBatch to {}: {} failed",
                    self.queue_url,
                    out.failed().len()
                )));
            }
        }
        Ok(())
    }
}

/// The sweep an INSERT or MODIFY record of SweepsTable holds, with the old image's status
/// (`None`: a chunk item, or a removal). The stream carries both images (`NEW_AND_OLD_IMAGES`),
/// so a transition into a terminal state is told from later writes to the terminal sweep.
pub fn sweep_change(record: &EventRecord) -> Result<Option<SweepChange>, String> {
    #[derive(serde::Deserialize)]
    struct Image {
        sk: Option<String>,
        status: Option<String>,
        record: Option<String>,
    }
    let kind = match record.event_name.as_str() {
        "INSERT" => ChangeKind::Insert,
        "MODIFY" => ChangeKind::Modify,
        _ => return Ok(None),
    };
    let at = |e: &dyn std::fmt::Display| format!("stream record {}: {e}", record.event_id);
    let image: Image = serde_dynamo::from_item(record.change.new_image.clone()).map_err(|e| at(&e))?;
    let sweep: SweepRecord = match (image.sk.as_deref(), image.record) {
        (Some("sweep"), Some(text)) => serde_json::from_str(&text).map_err(|e| at(&e))?,
        _ => return Ok(None),
    };
    let old_status = match kind {
        ChangeKind::Modify => serde_dynamo::from_item::<_, Image>(record.change.old_image.clone())
            .ok()
            .and_then(|old| old.status)
            .and_then(|s| s.parse::<JobStatus>().ok()),
        _ => None,
    };
    Ok(Some(SweepChange { kind, sweep, old_status }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_stream_event_decodes_to_its_sweep() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/sweep-events.json");
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let change = sweep_change(&event.records[0]).unwrap().expect("an inserted sweep");
        assert_eq!((change.kind, change.old_status), (ChangeKind::Insert, None));
        assert_eq!((change.sweep.id.as_str(), change.sweep.n_chunks), ("sw_3c91ef00", 1));
        assert!(change.sweep.spec().is_ok());
        let mut chunk = event.records[0].clone();
        chunk.change.new_image.insert("sk".into(), serde_dynamo::AttributeValue::S("chunk#000000#0000".into()));
        assert_eq!(sweep_change(&chunk).unwrap(), None);

        // The second record ends the sweep (a webhook sweep: its notification is due); a
        // REMOVE is no change.
        let ended = sweep_change(&event.records[1]).unwrap().expect("a modified sweep");
        assert_eq!(
            (ended.kind, ended.old_status, ended.sweep.status),
            (ChangeKind::Modify, Some(JobStatus::Running), JobStatus::Done)
        );
        assert!(ended.ends_the_sweep() && ended.sweep.webhook.notify_url.is_some());
        let mut removed = event.records[1].clone();
        removed.event_name = "REMOVE".into();
        assert_eq!(sweep_change(&removed).unwrap(), None);
    }

    #[test]
    fn an_ended_unranked_sweep_is_the_ranking_cue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/sweep-events.json");
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let queued = &event.records[0];
        let due = |r: &EventRecord| sweep_change(r).unwrap().is_some_and(|c| c.ranking_due());
        assert!(!due(queued), "queued");
        let with = |sweep: &SweepRecord| {
            let mut r = queued.clone();
            r.event_name = "MODIFY".into();
            let text = serde_json::to_string(sweep).unwrap();
            r.change.new_image.insert("record".into(), serde_dynamo::AttributeValue::S(text));
            r
        };
        let mut done = sweep_change(queued).unwrap().unwrap().sweep;
        done.status = pipai_service::model::JobStatus::Done;
        assert!(due(&with(&done)), "ended, not ranked");
        done.ranking = Some(pipai_service::sweeps::RankingMark { total: 3, page_size: 100 });
        assert!(!due(&with(&done)), "marked");
    }
}
