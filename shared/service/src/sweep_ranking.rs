//! An ended sweep's full ranking, stored once (docs/sweeps.md, "Leaderboard"): when the sweeps
//! table's stream sees a sweep terminal without a ranking, [`store_ranking`] merges every
//! recorded chunk's entries once, writes them in pages of [`RANKING_PAGE`] entries (the results
//! store: `sweeps/{id}/ranking/{page:06}.json` in the results bucket, under its lifecycle), then
//! marks the sweep (`ranking`). `expand=leaderboard` then reads only the pages a request
//! returns ([`ranking_slice`]); an unmarked sweep (running, or its ranking not written yet) is
//! merged from the chunks as before.
//!
//! Idempotent: a terminal sweep gets no more chunks, so a replayed stream record merges the same
//! entries into the same pages; a marked sweep is left alone.

use std::ops::Range;

use crate::ids::SweepId;
use crate::ports::{ResultStore, StoreError};
use crate::sweeps::*;

/// Entries per stored page (about 3 KB each: a page object is about 300 KB).
pub const RANKING_PAGE: usize = 100;

/// What [`store_ranking`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum RankingOutcome {
    /// The pages are written and the sweep marked.
    Stored(RankingMark),
    /// Marked before (a replayed record): nothing written.
    AlreadyStored,
    /// Not terminal (or gone): nothing written.
    NotEnded,
}

/// Stores the full ranking of the sweep `id` if it has ended and has none yet.
pub async fn store_ranking<S: SweepStore, R: ResultStore>(
    store: &S,
    results: &R,
    id: &SweepId,
) -> Result<RankingOutcome, StoreError> {
    let Some(sweep) = store.get_sweep(id).await? else { return Ok(RankingOutcome::NotEnded) };
    if !sweep.status.is_terminal() {
        return Ok(RankingOutcome::NotEnded);
    }
    if sweep.ranking.is_some() {
        return Ok(RankingOutcome::AlreadyStored);
    }
    let spec = sweep.spec()?;
    let ranked = merge_ranked(&spec, store.get_chunks(id).await?.into_iter().flat_map(|c| c.entries));
    for (page, entries) in ranked.chunks(RANKING_PAGE).enumerate() {
        let bytes = serde_json::to_vec(entries).map_err(|e| StoreError::caused_by(format!("{id}: ranking page"), e))?;
        results.put_sweep_ranking_page(id, page as u32, bytes).await?;
    }
    let mark = RankingMark { total: ranked.len(), page_size: RANKING_PAGE };
    Ok(match store.mark_ranking(id, &mark).await? {
        MarkOutcome::Marked => RankingOutcome::Stored(mark),
        MarkOutcome::AlreadyMarked => RankingOutcome::AlreadyStored,
        MarkOutcome::NotEnded | MarkOutcome::NotFound => RankingOutcome::NotEnded,
    })
}

/// Ranks `range` (0-based offsets, within `mark.total`) of a stored ranking, read from the
/// pages that hold them; `None` if a page is missing (the caller merges from the chunks).
pub async fn ranking_slice<R: ResultStore>(
    results: &R,
    id: &SweepId,
    mark: &RankingMark,
    range: Range<usize>,
) -> Result<Option<Vec<StoredEntry>>, StoreError> {
    let mut out = Vec::with_capacity(range.len());
    if range.is_empty() || mark.page_size == 0 {
        return Ok(Some(out));
    }
    let (first, last) = (range.start / mark.page_size, (range.end - 1) / mark.page_size);
    for page in first..=last {
        let Some(bytes) = results.get_sweep_ranking_page(id, page as u32).await? else {
            tracing::warn!(sweep_id = %id, page, "stored ranking page missing; merging from the chunks");
            return Ok(None);
        };
        let entries: Vec<StoredEntry> = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::caused_by(format!("{id}: ranking page {page} does not parse"), e))?;
        let at = page * mark.page_size;
        let from = range.start.max(at) - at;
        let to = (range.end.min(at + entries.len())).saturating_sub(at);
        out.extend(entries.into_iter().take(to).skip(from));
    }
    Ok(Some(out))
}
