//! StrategyStore on the strategies table: create, get, conditional update on version, delete,
//! and the list as a Query of `by_user_updated`, newest `updated_at` first.

use pipai_aws::DynamoStore;
use pipai_engine::StrategyConfig;
use pipai_service::model::StrategyRecord;
use pipai_service::ports::*;
use pipai_service::{StrategyId, UserId};
use serde_json::json;

use crate::common::{moto, sdk, unique_user};

async fn store() -> DynamoStore {
    DynamoStore::from_lookup(&sdk().await, &moto().lookup()).expect("store config")
}

fn strategy(user: &UserId, updated_at_ms: i64) -> StrategyRecord {
    let config = StrategyConfig::from_value(
        &json!({"template_id": "tpl_ma_cross", "params": {"fast": 5, "slow": 20}, "capital": "1000.50"}),
        chrono::Utc::now(),
    )
    .unwrap();
    StrategyRecord {
        id: StrategyId::random(),
        user_id: user.clone(),
        name: "ma".into(),
        description: Some("a description".into()),
        version: 1,
        config,
        created_at_ms: updated_at_ms,
        updated_at_ms,
    }
}

#[tokio::test]
async fn create_get_update_delete() {
    let store = store().await;
    let (alice, bob) = (unique_user(), unique_user());
    let s = strategy(&alice, 1_700_000_000_000);
    assert_eq!(store.get_strategy(&s.id).await.unwrap(), None);
    assert_eq!(store.create_strategy(&s).await.unwrap(), StrategyCreateOutcome::Created);
    assert_eq!(store.create_strategy(&s).await.unwrap(), StrategyCreateOutcome::IdTaken);
    assert_eq!(store.get_strategy(&s.id).await.unwrap(), Some(s.clone()));

    let v2 = StrategyRecord {
        version: 2,
        name: "v2".into(),
        description: None,
        updated_at_ms: s.updated_at_ms + 5,
        ..s.clone()
    };
    let stale = StrategyRecord { version: 2, name: "stale".into(), ..s.clone() };
    assert_eq!(store.update_strategy(&v2).await.unwrap(), StrategyUpdateOutcome::Updated);
    assert_eq!(store.update_strategy(&stale).await.unwrap(), StrategyUpdateOutcome::VersionConflict);
    let foreign = StrategyRecord { version: 3, user_id: bob.clone(), ..v2.clone() };
    assert_eq!(store.update_strategy(&foreign).await.unwrap(), StrategyUpdateOutcome::NotFound);
    assert_eq!(store.get_strategy(&s.id).await.unwrap(), Some(v2.clone()));

    assert_eq!(store.delete_strategy(&s.id, &bob).await.unwrap(), StrategyDeleteOutcome::NotFound);
    assert_eq!(store.delete_strategy(&s.id, &alice).await.unwrap(), StrategyDeleteOutcome::Deleted);
    assert_eq!(store.delete_strategy(&s.id, &alice).await.unwrap(), StrategyDeleteOutcome::NotFound);
    assert_eq!(store.get_strategy(&s.id).await.unwrap(), None);
    let gone = StrategyRecord { version: 3, ..v2 };
    assert_eq!(store.update_strategy(&gone).await.unwrap(), StrategyUpdateOutcome::NotFound);
}

#[tokio::test]
async fn concurrent_updates_of_one_version_write_once() {
    let store = store().await;
    let alice = unique_user();
    let s = strategy(&alice, 1_700_000_000_000);
    store.create_strategy(&s).await.unwrap();
    let updates: Vec<StrategyRecord> =
        (0..6).map(|i| StrategyRecord { version: 2, name: format!("n{i}"), ..s.clone() }).collect();
    let outcomes = futures_join(&store, &updates).await;
    assert_eq!(outcomes.iter().filter(|o| **o == StrategyUpdateOutcome::Updated).count(), 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, StrategyUpdateOutcome::Updated | StrategyUpdateOutcome::VersionConflict)));
}

async fn futures_join(store: &DynamoStore, updates: &[StrategyRecord]) -> Vec<StrategyUpdateOutcome> {
    let mut handles = vec![];
    for u in updates {
        let (store, u) = (store.clone(), u.clone());
        handles.push(tokio::spawn(async move { store.update_strategy(&u).await.unwrap() }));
    }
    let mut out = vec![];
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_list_is_newest_updated_first_per_user_and_pages() {
    let store = store().await;
    let (alice, bob) = (unique_user(), unique_user());
    let mut made = vec![];
    for i in 0..5 {
        let s = strategy(&alice, 1_700_000_000_000 + i * 1000);
        store.create_strategy(&s).await.unwrap();
        made.push(s);
    }
    store.create_strategy(&strategy(&bob, 1_800_000_000_000)).await.unwrap();
    // The oldest, updated, comes first.
    let bumped = StrategyRecord { version: 2, updated_at_ms: 1_700_000_100_000, ..made[0].clone() };
    assert_eq!(store.update_strategy(&bumped).await.unwrap(), StrategyUpdateOutcome::Updated);
    let want: Vec<StrategyId> = [0, 4, 3, 2, 1].iter().map(|&i| made[i].id.clone()).collect();

    let q = StrategyListQuery { user_id: alice.clone(), after: None, limit: 10 };
    let all: Vec<StrategyId> = store.list_strategies(&q).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(all, want);
    let mut walked = vec![];
    let mut after = None;
    loop {
        let page = store.list_strategies(&StrategyListQuery { user_id: alice.clone(), after, limit: 2 }).await.unwrap();
        walked.extend(page.iter().map(|s| s.id.clone()));
        match page.last() {
            Some(last) if page.len() == 2 => {
                after = Some(StrategyPageKey { updated_at_ms: last.updated_at_ms, id: last.id.clone() })
            }
            _ => break,
        }
    }
    assert_eq!(walked, want);
}
