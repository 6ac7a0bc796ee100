//! [`SweepStore`] on DynamoDB.
//!
//! SweepsTable (key `pk` = sweep id, sort key `sk`):
//! - the sweep item, `sk` = `sweep`: `user_id`, `status`, `version`, `submitted_key` =
//!   `{submitted_at:013}#{sweep_id}` (GSI `by_user` on `user_id` / `submitted_key`; chunk items
//!   carry no `user_id`, so the index holds sweeps only) and `record`, the whole
//!   [`SweepRecord`] as JSON text (its top 20 included: well under the 400 KB item limit).
//! - a chunk's items, `sk` = `chunk#{chunk:06}#{part:04}`: the [`ChunkRecord`] as JSON text cut
//!   into parts of at most [`PART_BYTES`] (a chunk of 500 ranked configs is about 1.5 MB); part 0
//!   carries `parts`.
//!
//! The slot counter stays in UsersTable (`active_jobs`, shared with jobs), so creating a sweep,
//! and its terminal update, are cross-table transactions exactly like a job's create and slot
//! release. [`SweepStore::record_chunk`] is one transaction: part 0 put only if absent (a
//! duplicate delivery is refused whole), the other parts, the sweep put only if its `version` is
//! the one read (optimistic concurrency between chunks and cancel), and, when the new state is
//! terminal, the counter decrement.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use pipai_service::ids::{SweepId, UserId};
use pipai_service::ports::{CreateOutcome, StoreError};
use pipai_service::sweeps::*;
use serde::{Deserialize, Serialize};

use super::items::{from_item, to_item};
use super::transact::{build_err, conditional, CONDITION_FAILED};
use super::DynamoStore;
use crate::error::{bad_item, store_err};
use crate::item::{n, s, Item};

const BY_USER: &str = "by_user";
const SWEEP_SK: &str = "sweep";
/// The largest piece of a chunk's JSON in one item (DynamoDB's item limit is 400 KB).
pub const PART_BYTES: usize = 300_000;
/// Re-reads of a sweep when a cancel races a chunk.
const CANCEL_ATTEMPTS: usize = 20;

#[derive(Serialize, Deserialize)]
struct SweepItem {
    pk: String,
    sk: String,
    user_id: String,
    status: String,
    version: u64,
    submitted_key: String,
    record: String,
}

#[derive(Serialize, Deserialize)]
struct ChunkPart {
    pk: String,
    sk: String,
    chunk: u32,
    part: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parts: Option<u32>,
    data: String,
}

fn submitted_key(ms: i64, id: &SweepId) -> String {
    format!("{:013}#{id}", ms.max(0))
}

/// `text` cut into pieces of at most `max` bytes, on character boundaries.
fn pieces(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(max);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    if out.is_empty() {
        out.push("");
    }
    out
}

impl DynamoStore {
    fn sweeps_table(&self) -> Result<&str, StoreError> {
        self.sweeps_table.as_deref().ok_or_else(|| StoreError::new("SWEEPS_TABLE is not set for this function"))
    }

    fn sweep_put(&self, sweep: &SweepRecord) -> Result<Put, StoreError> {
        let item = SweepItem {
            pk: sweep.id.to_string(),
            sk: SWEEP_SK.into(),
            user_id: sweep.user_id.to_string(),
            status: sweep.status.as_str().into(),
            version: sweep.version,
            submitted_key: submitted_key(sweep.submitted_at_ms, &sweep.id),
            record: serde_json::to_string(sweep).map_err(|e| StoreError::new(format!("sweep {}: {e}", sweep.id)))?,
        };
        let item = to_item(&item).map_err(|e| StoreError::new(format!("sweep {}: {e}", sweep.id)))?;
        Put::builder().table_name(self.sweeps_table()?).set_item(Some(item)).build().map_err(|e| build_err("Put", e))
    }

    fn parse_sweep(&self, item: &Item) -> Result<SweepRecord, StoreError> {
        let table = self.sweeps_table.as_deref().unwrap_or("SweepsTable");
        let stored: SweepItem = from_item(item).map_err(|e| bad_item("sweep", table, e))?;
        serde_json::from_str(&stored.record).map_err(|e| bad_item("sweep", table, format!("{}: {e}", stored.pk)))
    }

    /// Writes `updated` over the stored version `updated.version - 1` (and `extra` items before
    /// it), giving the slot back when `updated` ends the sweep. `Ok(None)`: written; else the
    /// cancellation codes, indexed like the items (`extra` first, then the sweep, the counter).
    async fn write_sweep(
        &self,
        op: &str,
        extra: Vec<TransactWriteItem>,
        updated: &SweepRecord,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut record = updated.clone();
        let ends = record.status.is_terminal() && !record.slot_released;
        record.slot_released |= ends;
        let put = self.sweep_put(&record)?;
        let put = Put::builder()
            .table_name(put.table_name())
            .set_item(Some(put.item().clone()))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(updated.version - 1))
            .build()
            .map_err(|e| build_err("Put", e))?;
        let mut items = extra;
        items.push(TransactWriteItem::builder().put(put).build());
        if ends {
            items.push(TransactWriteItem::builder().update(self.slot_back(&updated.user_id)?).build());
        }
        let with_counter = items.clone();
        match self.transact(op, with_counter).await? {
            None => Ok(None),
            // The counter had drifted to 0: write without it, still exactly once.
            Some(codes) if ends && codes.last().map(String::as_str) == Some(CONDITION_FAILED) => {
                let without: Vec<TransactWriteItem> = items[..items.len() - 1].to_vec();
                tracing::warn!(sweep_id = %updated.id, "active_jobs already 0; sweep ends without a decrement");
                self.transact(op, without).await
            }
            Some(codes) => Ok(Some(codes)),
        }
    }
}

impl SweepStore for DynamoStore {
    async fn create_sweep(&self, sweep: &SweepRecord, max_active: u32) -> Result<CreateOutcome, StoreError> {
        let put = self.sweep_put(sweep)?;
        let put = Put::builder()
            .table_name(put.table_name())
            .set_item(Some(put.item().clone()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| build_err("Put", e))?;
        let take = self.take_slot(&sweep.user_id, max_active)?;
        let items =
            vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(take).build()];
        let Some(codes) = self.transact("create_sweep", items).await? else { return Ok(CreateOutcome::Created) };
        let code = |i: usize| codes.get(i).map(String::as_str);
        if code(0) == Some(CONDITION_FAILED) {
            return Ok(CreateOutcome::IdTaken);
        }
        if code(1) == Some(CONDITION_FAILED)
            || (codes.is_empty() && self.active_jobs(&sweep.user_id).await? >= max_active)
        {
            return Ok(CreateOutcome::TooManyActive);
        }
        Err(self.unexpected_cancel("create_sweep", &codes))
    }

    async fn get_sweep(&self, id: &SweepId) -> Result<Option<SweepRecord>, StoreError> {
        let table = self.sweeps_table()?;
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key("pk", s(id))
            .key("sk", s(SWEEP_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_err("dynamodb", "GetItem", table, e))?;
        out.item.map(|item| self.parse_sweep(&item)).transpose()
    }

    async fn list_sweeps(&self, q: &SweepListQuery) -> Result<Vec<SweepRecord>, StoreError> {
        let table = self.sweeps_table()?;
        let mut out = Vec::new();
        let hi = q.after.as_ref().map(|a| submitted_key(a.submitted_at_ms, &a.id));
        let mut start: Option<Item> = None;
        while out.len() < q.limit {
            let mut req = self
                .client
                .query()
                .table_name(table)
                .index_name(BY_USER)
                .scan_index_forward(false)
                .limit(1000)
                .set_exclusive_start_key(start)
                .expression_attribute_values(":u", s(q.user_id.as_str()));
            req = match &hi {
                Some(hi) => req
                    .key_condition_expression("user_id = :u AND submitted_key < :hi")
                    .expression_attribute_values(":hi", s(hi)),
                None => req.key_condition_expression("user_id = :u"),
            };
            let page = req.send().await.map_err(|e| store_err("dynamodb", "Query by_user", table, e))?;
            for item in page.items() {
                let sweep = self.parse_sweep(item)?;
                if q.status.is_none_or(|st| st == sweep.status) && out.len() < q.limit {
                    out.push(sweep);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn cancel_sweep(
        &self,
        id: &SweepId,
        user_id: &UserId,
        now_ms: i64,
    ) -> Result<SweepCancelOutcome, StoreError> {
        for _ in 0..CANCEL_ATTEMPTS {
            let sweep = match self.get_sweep(id).await? {
                Some(w) if &w.user_id == user_id => w,
                _ => return Ok(SweepCancelOutcome::NotFound),
            };
            if sweep.status.is_terminal() {
                return Ok(SweepCancelOutcome::AlreadyTerminal(sweep.status));
            }
            let mut cancelled = sweep;
            cancelled.status = pipai_service::model::JobStatus::Cancelled;
            cancelled.finished_at_ms = Some(now_ms);
            cancelled.version += 1;
            if self.write_sweep("cancel_sweep", Vec::new(), &cancelled).await?.is_none() {
                cancelled.slot_released = true;
                return Ok(SweepCancelOutcome::Cancelled(Box::new(cancelled)));
            }
        }
        Err(StoreError::new(format!("cancel_sweep {id}: the sweep kept changing")))
    }

    async fn record_chunk(&self, chunk: &ChunkRecord, updated: &SweepRecord) -> Result<ChunkOutcome, StoreError> {
        let table = self.sweeps_table()?.to_string();
        let json = serde_json::to_string(chunk).map_err(|e| StoreError::new(format!("chunk {}: {e}", chunk.chunk)))?;
        let parts = pieces(&json, PART_BYTES);
        let mut items = Vec::with_capacity(parts.len() + 2);
        for (i, data) in parts.iter().enumerate() {
            let part = ChunkPart {
                pk: chunk.sweep_id.to_string(),
                sk: format!("chunk#{:06}#{i:04}", chunk.chunk),
                chunk: chunk.chunk,
                part: i as u32,
                parts: (i == 0).then_some(parts.len() as u32),
                data: (*data).to_string(),
            };
            let item = to_item(&part).map_err(|e| StoreError::new(format!("chunk {}: {e}", chunk.chunk)))?;
            let mut put = Put::builder().table_name(&table).set_item(Some(item));
            if i == 0 {
                put = put.condition_expression("attribute_not_exists(pk)");
            }
            items.push(TransactWriteItem::builder().put(put.build().map_err(|e| build_err("Put", e))?).build());
        }
        let n_parts = items.len();
        let Some(codes) = self.write_sweep("record_chunk", items, updated).await? else {
            return Ok(ChunkOutcome::Recorded);
        };
        if codes.first().map(String::as_str) == Some(CONDITION_FAILED) {
            return Ok(ChunkOutcome::Duplicate);
        }
        if codes.get(n_parts).map(String::as_str) == Some(CONDITION_FAILED) || codes.is_empty() {
            return Ok(match self.get_sweep(&updated.id).await? {
                None => ChunkOutcome::NotFound,
                Some(_) => ChunkOutcome::VersionConflict,
            });
        }
        Err(self.unexpected_cancel("record_chunk", &codes))
    }

    async fn get_chunks(&self, id: &SweepId) -> Result<Vec<ChunkRecord>, StoreError> {
        let table = self.sweeps_table()?;
        let mut parts: Vec<ChunkPart> = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(table)
                .consistent_read(true)
                .key_condition_expression("pk = :p AND begins_with(sk, :c)")
                .expression_attribute_values(":p", s(id))
                .expression_attribute_values(":c", s("chunk#"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_err("dynamodb", "Query chunks", table, e))?;
            for item in page.items() {
                parts.push(from_item(item).map_err(|e| bad_item("sweep chunk", table, e))?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        // Sorted by `sk`: each chunk's parts in order, chunks in order.
        let mut out = Vec::new();
        let mut json = String::new();
        for (i, part) in parts.iter().enumerate() {
            json.push_str(&part.data);
            let last = parts.get(i + 1).is_none_or(|next| next.chunk != part.chunk);
            if last {
                out.push(
                    serde_json::from_str(&json).map_err(|e| bad_item("sweep chunk", table, format!("{id}: {e}")))?,
                );
                json.clear();
            }
        }
        Ok(out)
    }

    async fn mark_ranking(&self, id: &SweepId, mark: &RankingMark) -> Result<MarkOutcome, StoreError> {
        for _ in 0..CANCEL_ATTEMPTS {
            let Some(sweep) = self.get_sweep(id).await? else { return Ok(MarkOutcome::NotFound) };
            if !sweep.status.is_terminal() {
                return Ok(MarkOutcome::NotEnded);
            }
            if sweep.ranking.is_some() {
                return Ok(MarkOutcome::AlreadyMarked);
            }
            let mut marked = sweep;
            marked.ranking = Some(*mark);
            marked.version += 1;
            // Terminal with its slot given back: a put conditional on the version, nothing else.
            if self.write_sweep("mark_ranking", Vec::new(), &marked).await?.is_none() {
                return Ok(MarkOutcome::Marked);
            }
        }
        Err(StoreError::new(format!("mark_ranking {id}: the sweep kept changing")))
    }
}

// ---- Completion webhooks: a sweep's notification records (`NotificationLog`, in `notifications`).

impl DynamoStore {
    /// Replaces the sweep's record with `record.event_id` (or adds it): the sweep item put back
    /// whole with its version bumped, only over the version read (a chunk or a cancel in between
    /// is read again). `false` when there is no such sweep.
    pub(super) async fn record_sweep_notification(
        &self,
        id: &SweepId,
        record: &pipai_service::notifier::NotificationRecord,
    ) -> Result<bool, StoreError> {
        for _ in 0..CANCEL_ATTEMPTS {
            let Some(mut sweep) = self.get_sweep(id).await? else { return Ok(false) };
            let all = &mut sweep.webhook.notifications;
            match all.iter_mut().find(|r| r.event_id == record.event_id) {
                Some(r) => *r = record.clone(),
                None => all.push(record.clone()),
            }
            sweep.version += 1;
            let put = self.sweep_put(&sweep)?;
            let result = self
                .client
                .put_item()
                .table_name(put.table_name())
                .set_item(Some(put.item().clone()))
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(sweep.version - 1))
                .send()
                .await;
            if conditional(result, "PutItem (record_notification)", put.table_name())?.written() {
                return Ok(true);
            }
        }
        Err(StoreError::new(format!("record_notification {id}: the sweep kept changing")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cut_on_character_boundaries_and_join_back() {
        let text = "aé€".repeat(1000);
        for max in [1, 4, 7, 300] {
            let p = pieces(&text, max.max(4));
            assert!(p.iter().all(|x| x.len() <= max.max(4)));
            assert_eq!(p.concat(), text);
        }
        assert_eq!(pieces("", 10), vec![""]);
    }
}
