//! Signed cursors: an opaque `payload.mac` string that carries a position in a listing or in a
//! result array. The payload is base64url JSON; the MAC (under the master key, with a domain per
//! kind) binds it to the caller and to whatever the position only makes sense for (the list's
//! filters, the job and array), so a client can neither forge one nor move it to another query.

use std::future::Future;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;
use crate::ports::StoreError;
use crate::secrets::MasterKey;

/// Every listing's answer to a `cursor` that does not open under its seal.
pub const INVALID_LIST_CURSOR: &str =
    "cursor: invalid, or from a different query (cursors are bound to the filters and the caller)";

/// What a cursor pages. Each kind signs under its own domain, so one is never read as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorKind {
    /// `GET /v1/backtest/jobs`: bound to the caller and the filters.
    JobList,
    /// `GET /v1/backtest/jobs/{id}?expand=...`: bound to the caller (the job and array are in
    /// the position and checked by the reader).
    ResultPage,
    /// `GET /v1/strategies`: bound to the caller.
    StrategyList,
    /// `GET /v1/backtest/sweeps`: bound to the caller and the status filter.
    SweepList,
    /// `GET /v1/backtest/sweeps/{id}?expand=leaderboard`: bound to the caller (the sweep is in
    /// the position and checked by the reader).
    SweepLeaderboard,
}

impl CursorKind {
    fn domain(self) -> &'static str {
        match self {
            CursorKind::JobList => "pipai-list-cursor-v1",
            CursorKind::ResultPage => "pipai-result-cursor-v1",
            CursorKind::StrategyList => "pipai-strategy-cursor-v1",
            CursorKind::SweepList => "pipai-sweep-list-cursor-v1",
            CursorKind::SweepLeaderboard => "pipai-sweep-leaderboard-cursor-v1",
        }
    }
}

/// Seals and opens cursors of one kind under one binding (for example `"{user}|{filters}"`).
pub struct CursorSeal<'a> {
    pub master: &'a MasterKey,
    pub kind: CursorKind,
    pub binding: String,
}

impl CursorSeal<'_> {
    fn mac(&self, payload: &str) -> String {
        self.master.mac(self.kind.domain(), format!("{}|{payload}", self.binding).as_bytes())
    }

    pub fn seal<T: Serialize>(&self, position: &T) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).expect("positions serialize"));
        let mac = self.mac(&payload);
        format!("{payload}.{mac}")
    }

    /// The position in `cursor`, or `None` when it was not sealed by this seal (tampered, from
    /// another caller or query, or not a cursor at all).
    pub fn open<T: DeserializeOwned>(&self, cursor: &str) -> Option<T> {
        let (payload, mac) = cursor.split_once('.')?;
        if !constant_time_eq(self.mac(payload).as_bytes(), mac.as_bytes()) {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}

impl CursorSeal<'_> {
    /// One page of a listing (jobs, strategies, sweeps): the position `cursor` names (400
    /// [`INVALID_LIST_CURSOR`] when it does not open), then `fetch(after, limit + 1)`; the first
    /// `limit` items are the page and, when there were more, `next_cursor` seals the position
    /// of the last of them (`key_of`).
    pub async fn list_page<T, K, Fut>(
        &self,
        cursor: Option<&str>,
        limit: usize,
        fetch: impl FnOnce(Option<K>, usize) -> Fut,
        key_of: impl Fn(&T) -> K,
    ) -> Result<(Vec<T>, Option<String>), ApiError>
    where
        K: Serialize + DeserializeOwned,
        Fut: Future<Output = Result<Vec<T>, StoreError>>,
    {
        let after = cursor
            .map(|c| self.open::<K>(c).ok_or_else(|| ApiError::InvalidParameter(INVALID_LIST_CURSOR.into())))
            .transpose()?;
        let mut items = fetch(after, limit + 1).await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = items.last().filter(|_| more).map(|last| self.seal(&key_of(last)));
        Ok((items, next_cursor))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_open_only_under_their_own_seal() {
        let master = MasterKey::generate();
        let seal = |kind, binding: &str| CursorSeal { master: &master, kind, binding: binding.to_string() };
        let cursor = seal(CursorKind::JobList, "u1|done").seal(&(7_i64, "bt_0a1b2c3d"));
        assert_eq!(seal(CursorKind::JobList, "u1|done").open::<(i64, String)>(&cursor).unwrap().0, 7);
        assert!(seal(CursorKind::JobList, "u2|done").open::<(i64, String)>(&cursor).is_none());
        assert!(seal(CursorKind::JobList, "u1|").open::<(i64, String)>(&cursor).is_none());
        assert!(seal(CursorKind::ResultPage, "u1|done").open::<(i64, String)>(&cursor).is_none());
        let tampered = format!("x{cursor}");
        assert!(seal(CursorKind::JobList, "u1|done").open::<(i64, String)>(&tampered).is_none());
        assert!(seal(CursorKind::JobList, "u1|done").open::<(i64, String)>("garbage").is_none());
    }

    #[tokio::test]
    async fn a_listing_pages_by_limit_plus_one_and_refuses_foreign_cursors() {
        let master = MasterKey::generate();
        let seal = CursorSeal { master: &master, kind: CursorKind::StrategyList, binding: "u1".into() };
        let items: Vec<u32> = (0..5).collect();
        let fetch = |after: Option<u32>, n: usize| {
            let page: Vec<u32> = items.iter().copied().filter(|i| after.is_none_or(|a| *i > a)).take(n).collect();
            async move { Ok::<_, StoreError>(page) }
        };
        let (page, next) = seal.list_page(None, 2, fetch, |i| *i).await.unwrap();
        assert_eq!(page, [0, 1]);
        let (page, next) = seal.list_page(next.as_deref(), 2, fetch, |i| *i).await.unwrap();
        assert_eq!(page, [2, 3]);
        let (page, next) = seal.list_page(next.as_deref(), 2, fetch, |i| *i).await.unwrap();
        assert_eq!((page, next), (vec![4], None), "no cursor after the last page");
        let other = CursorSeal { binding: "u2".into(), ..seal };
        let cursor = other.seal(&1_u32);
        let err = seal.list_page(Some(&cursor), 2, fetch, |i| *i).await.unwrap_err();
        assert_eq!(err.to_string(), INVALID_LIST_CURSOR);
    }
}
