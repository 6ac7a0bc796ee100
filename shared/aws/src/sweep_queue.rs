//! [`SweepQueue`] on SQS (`SWEEP_CHUNKS_QUEUE_URL`), and the SweepsTable stream's decoder.

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use pipai_service::ids::SweepId;
use pipai_service::ports::StoreError;
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

/// The sweep an INSERT record of SweepsTable stored (`None`: a chunk item, or not an insert).
pub fn inserted_sweep(record: &EventRecord) -> Result<Option<SweepRecord>, String> {
    #[derive(serde::Deserialize)]
    struct Image {
        sk: Option<String>,
        record: Option<String>,
    }
    if record.event_name != "INSERT" {
        return Ok(None);
    }
    let at = |e: &dyn std::fmt::Display| format!("stream record {}: {e}", record.event_id);
    let image: Image = serde_dynamo::from_item(record.change.new_image.clone()).map_err(|e| at(&e))?;
    match (image.sk.as_deref(), image.record) {
        (Some("sweep"), Some(text)) => serde_json::from_str(&text).map(Some).map_err(|e| at(&e)),
        _ => Ok(None),
    }
}

/// The sweep a record of SweepsTable shows ended without a stored ranking yet (`None`: not a
/// sweep item, not terminal, or already marked): the stream's cue to store its ranking. The
/// stream carries new images only, so every write of a terminal sweep before the mark is a cue
/// (there is one: the terminal write; the mark's own write is not one).
pub fn ended_sweep(record: &EventRecord) -> Result<Option<SweepRecord>, String> {
    #[derive(serde::Deserialize)]
    struct Image {
        sk: Option<String>,
        record: Option<String>,
    }
    if record.event_name != "INSERT" && record.event_name != "MODIFY" {
        return Ok(None);
    }
    let at = |e: &dyn std::fmt::Display| format!("stream record {}: {e}", record.event_id);
    let image: Image = serde_dynamo::from_item(record.change.new_image.clone()).map_err(|e| at(&e))?;
    let sweep: SweepRecord = match (image.sk.as_deref(), image.record) {
        (Some("sweep"), Some(text)) => serde_json::from_str(&text).map_err(|e| at(&e))?,
        _ => return Ok(None),
    };
    Ok((sweep.status.is_terminal() && sweep.ranking.is_none()).then_some(sweep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_stream_event_decodes_to_its_sweep() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/sweep-events.json");
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let sweep = inserted_sweep(&event.records[0]).unwrap().expect("an inserted sweep");
        assert_eq!((sweep.id.as_str(), sweep.n_chunks), ("sw_3c91ef00", 1));
        assert!(sweep.spec().is_ok());
        let mut chunk = event.records[0].clone();
        chunk.change.new_image.insert("sk".into(), serde_dynamo::AttributeValue::S("chunk#000000#0000".into()));
        assert_eq!(inserted_sweep(&chunk).unwrap(), None);
    }

    #[test]
    fn an_ended_unranked_sweep_is_the_ranking_cue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/sweep-events.json");
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let queued = &event.records[0];
        assert_eq!(ended_sweep(queued).unwrap(), None, "queued");
        let with = |sweep: &SweepRecord| {
            let mut r = queued.clone();
            r.event_name = "MODIFY".into();
            let text = serde_json::to_string(sweep).unwrap();
            r.change.new_image.insert("record".into(), serde_dynamo::AttributeValue::S(text));
            r
        };
        let mut done = inserted_sweep(queued).unwrap().unwrap();
        done.status = pipai_service::model::JobStatus::Done;
        assert_eq!(ended_sweep(&with(&done)).unwrap(), Some(done.clone()));
        done.ranking = Some(pipai_service::sweeps::RankingMark { total: 3, page_size: 100 });
        assert_eq!(ended_sweep(&with(&done)).unwrap(), None, "marked");
    }
}
